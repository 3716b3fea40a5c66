#!/usr/bin/env bash
# Renders nginx/*.conf.tmpl into one nginx config and the directory of pieces it includes.
#
#   scripts/render-nginx.sh <out.conf>        writes <out.conf> and <out>.d/*.conf (out.conf minus .conf)
#
# Everything comes from the environment (scripts/stack.sh sets it from the profile):
#   GH_RUN_DIR           required: pid file, logs/ and nginx/ (temp paths) live under it
#   GH_HTTP_PORT         required: the plain HTTP port (the profile's port)
#   GH_REPO              the checkout whose static/ is served (default: this script's checkout)
#   PUBLIC_URL           default http://127.0.0.1:$GH_HTTP_PORT. https://host[:port] adds a TLS
#                        server on that port (default 443) and turns the HTTP server into a 301
#                        redirect to PUBLIC_URL, except /health, /metrics, /interactions, /webhooks/
#   TLS_CERT_FILE        PEM certificate chain (required and readable when PUBLIC_URL is https)
#   TLS_KEY_FILE         PEM private key       (required and readable when PUBLIC_URL is https)
#   INTERACTIONS_SOCKET  default $GH_RUN_DIR/interactions.sock
#   API_SOCKET           default $GH_RUN_DIR/api.sock
#   MAX_BODY_BYTES       default 262144
#   NGINX_WORKERS        default 2
#   NGINX_LISTEN_ADDR    default 127.0.0.1 (production: 0.0.0.0, or the public address)
#   NGINX_USER           the `user` directive's user; default: the invoking user when run as root
#                        (nginx as root needs it), none otherwise
# Nothing is written when a value is missing or wrong: the message names the variable.
set -euo pipefail

SCRIPT_REPO=$(cd "$(dirname "$0")/.." && pwd)
TMPL_DIR="$SCRIPT_REPO/nginx"

die() { echo "render-nginx: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: scripts/render-nginx.sh <out.conf>" >&2; exit 2; }
OUT=$1
case "$OUT" in
  *.conf) ;;
  *) die "the output file must end in .conf (got '$OUT')" ;;
esac
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
CONF_D="${OUT%.conf}.d"

# Values end up inside nginx directives unquoted: allow only characters that need no quoting
# (and none that sed's replacement treats specially).
safe() { # name value
  [ -n "$2" ] || die "$1 is empty"
  [[ "$2" =~ ^[A-Za-z0-9._/@:+-]+$ ]] \
    || die "$1 contains characters nginx would need quoted ('$2'); use a path of letters, digits, . _ / @ : + -"
}
port() { # name value
  if ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    die "$1 is not a port number (1-65535): '$2'"
  fi
}

RUN=${GH_RUN_DIR:-}
[ -n "$RUN" ] || die "GH_RUN_DIR is not set (the directory for nginx's pid file, logs/ and nginx/)"
safe GH_RUN_DIR "$RUN"
HTTP_PORT=${GH_HTTP_PORT:-}
[ -n "$HTTP_PORT" ] || die "GH_HTTP_PORT is not set (the plain HTTP port)"
port GH_HTTP_PORT "$HTTP_PORT"
REPO=${GH_REPO:-$SCRIPT_REPO}
safe GH_REPO "$REPO"
[ -d "$REPO/static" ] || die "GH_REPO has no static/ directory: '$REPO'"
INTERACTIONS_SOCKET=${INTERACTIONS_SOCKET:-$RUN/interactions.sock}
safe INTERACTIONS_SOCKET "$INTERACTIONS_SOCKET"
API_SOCKET=${API_SOCKET:-$RUN/api.sock}
safe API_SOCKET "$API_SOCKET"
MAX_BODY=${MAX_BODY_BYTES:-262144}
[[ "$MAX_BODY" =~ ^[0-9]+[kKmM]?$ ]] || die "MAX_BODY_BYTES is not a size (bytes, or with k/m): '$MAX_BODY'"
WORKERS=${NGINX_WORKERS:-2}
[[ "$WORKERS" =~ ^([1-9][0-9]{0,2}|auto)$ ]] || die "NGINX_WORKERS is not a count (1-999 or auto): '$WORKERS'"
LISTEN_ADDR=${NGINX_LISTEN_ADDR:-127.0.0.1}
[[ "$LISTEN_ADDR" =~ ^([0-9.]+|\[[0-9A-Fa-f:.]+\]|\*)$ ]] \
  || die "NGINX_LISTEN_ADDR is not an IPv4 address, [IPv6] or *: '$LISTEN_ADDR'"
USER_LINE=""
if [ -n "${NGINX_USER:-}" ]; then
  [[ "$NGINX_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "NGINX_USER is not a user name: '$NGINX_USER'"
  USER_LINE="user $NGINX_USER;"
elif [ "$(id -u)" -eq 0 ]; then
  USER_LINE="user $(id -un);"
fi

PUBLIC_URL=${PUBLIC_URL:-http://127.0.0.1:$HTTP_PORT}
TLS=0 PUBLIC_ORIGIN="" TLS_PORT="" CERT="" KEY=""
case "$PUBLIC_URL" in
  https://*)
    TLS=1
    # scheme://host[:port][/path]: the redirect goes to the origin plus the request's path.
    [[ "$PUBLIC_URL" =~ ^https://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:([0-9]+))?(/.*)?$ ]] \
      || die "PUBLIC_URL is not https://host[:port][/path]: '$PUBLIC_URL'"
    host=${BASH_REMATCH[1]}
    TLS_PORT=${BASH_REMATCH[3]:-443}
    port "PUBLIC_URL's port" "$TLS_PORT"
    [ "$TLS_PORT" != "$HTTP_PORT" ] \
      || die "PUBLIC_URL's port ($TLS_PORT) is GH_HTTP_PORT too: the TLS server needs a port of its own"
    if [ "$TLS_PORT" = 443 ]; then PUBLIC_ORIGIN="https://$host"; else PUBLIC_ORIGIN="https://$host:$TLS_PORT"; fi
    CERT=${TLS_CERT_FILE:-}
    KEY=${TLS_KEY_FILE:-}
    [ -n "$CERT" ] || die "PUBLIC_URL is https but TLS_CERT_FILE is not set (the PEM certificate chain)"
    if [ ! -f "$CERT" ] || [ ! -r "$CERT" ]; then die "TLS_CERT_FILE is not a readable file: '$CERT'"; fi
    [ -n "$KEY" ] || die "PUBLIC_URL is https but TLS_KEY_FILE is not set (the PEM private key)"
    if [ ! -f "$KEY" ] || [ ! -r "$KEY" ]; then die "TLS_KEY_FILE is not a readable file: '$KEY'"; fi
    case "$CERT" in /*) ;; *) CERT="$PWD/$CERT" ;; esac
    case "$KEY" in /*) ;; *) KEY="$PWD/$KEY" ;; esac
    safe TLS_CERT_FILE "$CERT"
    safe TLS_KEY_FILE "$KEY"
    ;;
  http://*) ;;
  *) die "PUBLIC_URL must start with http:// or https:// (got '$PUBLIC_URL')" ;;
esac
safe "the output path" "$OUT"

# REAL_IP_FROM: comma-separated addresses/CIDRs of trusted proxies whose X-Forwarded-For names the
# client (the API's per-IP rate limits and security events use it). Empty = trust none.
REAL_IP_LINES="# no trusted proxy (REAL_IP_FROM unset): the client is the TCP peer"
if [ -n "${REAL_IP_FROM:-}" ]; then
  REAL_IP_LINES="real_ip_header X-Forwarded-For; real_ip_recursive on;"
  IFS=',' read -r -a _proxies <<< "$REAL_IP_FROM"
  for p in "${_proxies[@]}"; do
    [[ "$p" =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ ]] || die "REAL_IP_FROM: '$p' is not an address or CIDR"
    REAL_IP_LINES="$REAL_IP_LINES set_real_ip_from $p;"
  done
fi

if [ $TLS = 1 ]; then
  servers="    include $CONF_D/server-redirect.conf;
    include $CONF_D/server-tls.conf;"
  pieces="headers common endpoints app server-redirect server-tls"
else
  servers="    include $CONF_D/server-http.conf;"
  pieces="headers common endpoints app server-http"
fi

render() { # template out
  sed -e "s|@RUN@|$RUN|g" -e "s|@REPO@|$REPO|g" -e "s|@CONF_D@|$CONF_D|g" \
      -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@TLS_PORT@|$TLS_PORT|g" \
      -e "s|@LISTEN_ADDR@|$LISTEN_ADDR|g" -e "s|@PUBLIC_ORIGIN@|$PUBLIC_ORIGIN|g" \
      -e "s|@TLS_CERT_FILE@|$CERT|g" -e "s|@TLS_KEY_FILE@|$KEY|g" \
      -e "s|@INTERACTIONS_SOCKET@|$INTERACTIONS_SOCKET|g" -e "s|@API_SOCKET@|$API_SOCKET|g" \
      -e "s|@MAX_BODY@|$MAX_BODY|g" -e "s|@USER_LINE@|$USER_LINE|g" -e "s|@WORKERS@|$WORKERS|g" \
      -e "s|@REAL_IP_LINES@|$REAL_IP_LINES|g" \
      "$1" > "$2"
  if grep -qE '@[A-Z_]+@' "$2"; then
    die "$(basename "$1") has a placeholder this script does not fill: $(grep -oE '@[A-Z_]+@' "$2" | sort -u | tr '\n' ' ')"
  fi
}

# Render into a scratch directory, then swap it in, so a failure leaves the old config whole.
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d "${CONF_D}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for p in $pieces; do
  [ -f "$TMPL_DIR/$p.conf.tmpl" ] || die "template missing: $TMPL_DIR/$p.conf.tmpl"
  render "$TMPL_DIR/$p.conf.tmpl" "$tmp/$p.conf"
done
# @SERVERS@ stands alone on its line in nginx.conf.tmpl: it becomes the server includes.
grep -qx '@SERVERS@' "$TMPL_DIR/nginx.conf.tmpl" || die "nginx.conf.tmpl lacks its @SERVERS@ line"
awk -v s="$servers" '$0 == "@SERVERS@" { print s; next } { print }' "$TMPL_DIR/nginx.conf.tmpl" > "$tmp/nginx.conf.tmpl"
render "$tmp/nginx.conf.tmpl" "$tmp/main.conf"
rm -f "$tmp/nginx.conf.tmpl"
mv "$tmp/main.conf" "$OUT.new"
rm -rf "$CONF_D"
mv "$tmp" "$CONF_D"
trap - EXIT
mv "$OUT.new" "$OUT"
chmod 644 "$OUT" "$CONF_D"/*.conf
chmod 755 "$CONF_D"
