#!/usr/bin/env bash
# Starts and stops the local stack of a profile: PostgreSQL, Redis (AOF on), the fake
# Discord (fake mode: DISCORD_TOKEN unset), the fcgi masters, nginx and the cron loop that
# runs the worker. Everything listens on 127.0.0.1 on the profile's ports; pids and logs go to
# .run/<profile>/, and .run/<profile>/stack.env tells tests and tools where everything is.
#
#   scripts/stack.sh start|stop|restart|status <profile>      profiles: dev (8080), test (18080), bench (38080)
#   scripts/stack.sh pg-stop|pg-start|redis-stop|redis-start <profile>   (used by tests)
#   scripts/stack.sh start <profile> --fresh                  wipe the profile's data first
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
profile=${2:-dev}
fresh=0
[ "${3:-}" = "--fresh" ] && fresh=1

case "$profile" in
  dev) BASE=8080 ;;
  test) BASE=18080 ;;
  bench) BASE=38080 ;;
  *) echo "stack: unknown profile '$profile' (dev, test, bench)" >&2; exit 2 ;;
esac

# GH_PORT_BASE moves every port of the profile (a second checkout's tests beside this one's).
BASE=${GH_PORT_BASE:-$BASE}
RUN="$REPO/.run/$profile"
BUILD_DIR=${GH_BUILD:-build}
case "$BUILD_DIR" in /*) BIN="$BUILD_DIR/bin" ;; *) BIN="$REPO/$BUILD_DIR/bin" ;; esac
HTTP_PORT=$BASE
FAKE_PORT=$((BASE + 1))
PG_PORT=$((BASE + 2))
REDIS_PORT=$((BASE + 3))
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
TEST_SEED=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
TEST_PUBKEY=03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8
FAKE_APP_ID=1234567890123456789
FAKE_TOKEN=fake-bot-token.guildhall.local-0000000000000000
DEMO_GUILD_ID=1098765432109876543

log() { echo "stack[$profile]: $*"; }
die() { echo "stack[$profile]: $*" >&2; exit 1; }

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# PostgreSQL refuses root: as root the data directory must be reachable by the postgres user.
# A checkout under a 0700 home is not, so then the data lives in /tmp (named after this checkout).
pg_data_dir() {
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$RUN" 2>/dev/null; then
    echo "$RUN/pg"
  else
    echo "/tmp/guildhall-pg-$(echo -n "$REPO" | sha1sum | cut -c1-12)/$profile"
  fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # description, seconds, command...
  local what=$1 secs=$2; shift 2
  local i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -ge $((secs * 10)) ] && die "$what did not come up within ${secs}s (see $RUN/logs/)"
    sleep 0.1
  done
}

write_env() {
  # Optional .env for the dev profile only: tests never read the developer's settings.
  if [ "$profile" = dev ] && [ -f "$REPO/.env" ]; then set -a; . "$REPO/.env"; set +a; fi
  if [ ! -f "$RUN/secrets.env" ]; then
    umask 077
    { echo "SESSION_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
      echo "ENCRYPTION_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
      echo "PG_PASSWORD=gh$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"; } > "$RUN/secrets.env"
    umask 022
  fi
  . "$RUN/secrets.env"
  if [ -z "${PG_PASSWORD:-}" ]; then
    PG_PASSWORD="gh$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"; echo "PG_PASSWORD=$PG_PASSWORD" >> "$RUN/secrets.env"
  fi
  local fake=1
  [ -n "${DISCORD_TOKEN:-}" ] && fake=0
  {
    echo "# written by scripts/stack.sh start $profile; do not edit"
    echo "GH_PROFILE=$profile"
    echo "GH_REPO=$REPO"
    echo "GH_RUN_DIR=$RUN"
    echo "GH_BIN=$BIN"
    echo "GH_FAKE_MODE=$fake"
    echo "GH_HTTP_URL=http://127.0.0.1:$HTTP_PORT"
    echo "GH_HTTP_PORT=$HTTP_PORT"
    echo "PUBLIC_URL=${PUBLIC_URL:-http://127.0.0.1:$HTTP_PORT}"
    echo "DATABASE_URL=postgresql://guildhall:$PG_PASSWORD@127.0.0.1:$PG_PORT/guildhall"
    echo "PG_PORT=$PG_PORT"
    echo "PG_DATA=$(pg_data_dir)"
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "REDIS_PORT=$REDIS_PORT"
    echo "SESSION_SECRET=$SESSION_SECRET"
    echo "ENCRYPTION_KEY=$ENCRYPTION_KEY"
    if [ $fake = 1 ]; then
      echo "GH_FAKE_DISCORD_URL=http://127.0.0.1:$FAKE_PORT"
      echo "DISCORD_API_BASE=http://127.0.0.1:$FAKE_PORT/api/v10"
      echo "DISCORD_OAUTH_AUTHORIZE_URL=http://127.0.0.1:$FAKE_PORT/oauth2/authorize"
      echo "DISCORD_PUBLIC_KEY=$TEST_PUBKEY"
      echo "GH_TEST_SIGNING_SEED=$TEST_SEED"
      echo "DISCORD_APPLICATION_ID=$FAKE_APP_ID"
      echo "DISCORD_CLIENT_ID=$FAKE_APP_ID"
      echo "DISCORD_CLIENT_SECRET=fake-client-secret"
      echo "DISCORD_TOKEN=$FAKE_TOKEN"
      echo "GH_DEMO_GUILD_ID=$DEMO_GUILD_ID"
      # The fake's users (test/lib/fixtures.mjs): in dev the demo guild's owner sees the operator
      # pages; in tests a user of no guild (dora) is the developer.
      if [ -z "${DEVELOPER_USER_IDS:-}" ]; then
        if [ "$profile" = dev ]; then DEVELOPER_USER_IDS=111122223333444455; else DEVELOPER_USER_IDS=444455556666777788; fi
      fi
      echo "PREMIUM_SKUS=${PREMIUM_SKUS:-1300000000000000001:premium,1300000000000000002:pro}"
    else
      for v in DISCORD_TOKEN DISCORD_APPLICATION_ID DISCORD_PUBLIC_KEY DISCORD_CLIENT_ID \
               DISCORD_CLIENT_SECRET DISCORD_API_BASE DISCORD_OAUTH_AUTHORIZE_URL DISCORD_GATEWAY_URL; do
        [ -n "${!v:-}" ] && echo "$v=${!v}"
      done
    fi
    [ "$profile" = bench ] && API_RATE_PROFILE=${API_RATE_PROFILE:-bench}
    for v in PREMIUM_URL MAIN_GUILD_ID DEVELOPER_USER_IDS ALERT_CHANNEL_ID LOG_LEVEL FCGI_CHILDREN \
             PG_POOL_MIN PG_POOL_MAX MAX_BODY_BYTES WORKER_CONCURRENCY API_RATE_PROFILE PREMIUM_SKUS \
             PREMIUM_GRACE_DAYS PREMIUM_TRIAL_DAYS TLS_CERT_FILE TLS_KEY_FILE; do
      [ -n "${!v:-}" ] && echo "$v=${!v}"
    done
    if [ "$profile" = dev ]; then echo "WORKER_TICK_S=${WORKER_TICK_S:-60}"; else echo "WORKER_TICK_S=${WORKER_TICK_S:-5}"; fi
    echo "JOB_LEASE_S=${JOB_LEASE_S:-10}"
  } > "$RUN/stack.env"
  chmod 600 "$RUN/stack.env"
}

load_env() { set -a; . "$RUN/stack.env"; set +a; }

# --- PostgreSQL ----------------------------------------------------------------------------
pg_start() {
  local data; data=$(pg_data_dir)
  [ -n "${PG_PASSWORD:-}" ] || . "$RUN/secrets.env"
  mkdir -p "$(dirname "$data")"
  if [ ! -s "$data/PG_VERSION" ]; then
    log "initdb $data"
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data" "$(dirname "$data")"
    chmod 700 "$data"
    local pw; pw=$(mktemp); echo guildhall > "$pw"; chmod 644 "$pw"
    as_pg "$PGBIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >"$RUN/logs/initdb.log" 2>&1 || { rm -f "$pw"; die "initdb failed (see $RUN/logs/initdb.log)"; }
    rm -f "$pw"
  fi
  if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then return 0; fi
  local pglog="$data/postgres.log"
  as_pg "$PGBIN/pg_ctl" -D "$data" -w -t 60 -l "$pglog" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c max_connections=200 -c fsync=$([ "$profile" = dev ] && echo on || echo off) -c synchronous_commit=$([ "$profile" = dev ] && echo on || echo off)" \
    start >/dev/null || die "PostgreSQL did not start (see $pglog)"
  ln -sf "$pglog" "$RUN/logs/postgres.log"
  as_pg psql -h "$data" -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'guildhall') THEN
    CREATE ROLE guildhall LOGIN CREATEDB;
  END IF;
  ALTER ROLE guildhall PASSWORD '$PG_PASSWORD';
END \$\$;
SQL
  if ! as_pg psql -h "$data" -p "$PG_PORT" -U postgres -d postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname='guildhall'" | grep -q 1; then
    as_pg psql -h "$data" -p "$PG_PORT" -U postgres -d postgres -q -c "CREATE DATABASE guildhall OWNER guildhall" >/dev/null
  fi
}

pg_stop() {
  local data; data=$(pg_data_dir)
  [ -s "$data/PG_VERSION" ] || return 0
  as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# --- Redis ---------------------------------------------------------------------------------
redis_start() {
  alive "$RUN/redis.pid" && return 0
  mkdir -p "$RUN/redis"
  cat > "$RUN/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $RUN/redis.pid
logfile $RUN/logs/redis.log
dir $RUN/redis
appendonly yes
appendfsync everysec
save ""
maxclients 10000
CONF
  redis-server "$RUN/redis.conf" || die "Redis did not start (see $RUN/logs/redis.log)"
  # ready means PONG: while it loads the AOF, Redis answers "LOADING" (and ping still exits 0)
  wait_for "Redis" 30 sh -c "redis-cli -p '$REDIS_PORT' ping | grep -qx PONG"
}

redis_stop() {
  if alive "$RUN/redis.pid"; then
    local pid; pid=$(cat "$RUN/redis.pid")
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    local i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  rm -f "$RUN/redis.pid"
}

# --- processes started in the background, tracked by pid file ------------------------------
spawn() { # name, command...
  local name=$1; shift
  nohup "$@" >>"$RUN/logs/$name.out" 2>&1 &
  echo $! > "$RUN/$name.spawn.pid"
}

stop_pidfile() { # pidfile [signal]
  local f=$1 sig=${2:-TERM}
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    local i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

start() {
  [ -x "$BIN/guildhall-interactions" ] || die "binaries missing in $BIN: run 'make all' first"
  if [ $fresh = 1 ]; then stop_all quiet; rm -rf "$RUN" "$(pg_data_dir)"; fi
  mkdir -p "$RUN/logs" "$RUN/nginx" "$RUN/backups"
  chmod 755 "$RUN" 2>/dev/null || true
  write_env
  load_env
  export GH_RUN_DIR="$RUN"
  pg_start
  redis_start
  "$BIN/guildhall-migrate" --dir "$REPO/sql" up >>"$RUN/logs/migrate.log" 2>&1 \
    || die "migrations failed: $(tail -3 "$RUN/logs/migrate.log")"

  if [ "$GH_FAKE_MODE" = 1 ]; then
    if ! alive "$RUN/fake-discord.spawn.pid"; then
      [ -d "$REPO/test/node_modules" ] || die "test/node_modules missing: run 'make deps'"
      DISCORD_PUBLIC_KEY_SEED=$TEST_SEED GH_INTERACTIONS_URL="$GH_HTTP_URL/interactions" \
      GH_WEBHOOKS_URL="http://127.0.0.1:$HTTP_PORT/webhooks/discord" \
      FAKE_APPLICATION_ID=$FAKE_APP_ID FAKE_BOT_TOKEN=$FAKE_TOKEN FAKE_CLIENT_SECRET=fake-client-secret \
        spawn fake-discord node "$REPO/test/fakes/discord/server.mjs" --port "$FAKE_PORT"
      wait_for "fake Discord" 20 curl -sf "http://127.0.0.1:$FAKE_PORT/_fake/health"
    fi
  fi

  for svc in interactions api; do
    alive "$RUN/$svc.spawn.pid" && continue
    rm -f "$RUN/$svc.sock"
    FCGI_SOCKET="$RUN/$svc.sock" LOG_FILE="$RUN/logs/$svc.log" spawn "$svc" "$BIN/guildhall-$svc"
    wait_for "guildhall-$svc" 20 test -S "$RUN/$svc.sock"
  done

  if ! alive "$RUN/nginx.pid"; then
    local workers=2
    [ "$profile" = bench ] && workers=1
    # PUBLIC_URL https (with TLS_CERT_FILE / TLS_KEY_FILE) adds the TLS server: docs/operations.md.
    # Local profiles trust loopback's X-Forwarded-For (tests act as many clients); production sets
    # REAL_IP_FROM to its load balancer, or leaves it unset.
    REAL_IP_FROM=${REAL_IP_FROM-127.0.0.1}
    REAL_IP_FROM="$REAL_IP_FROM" \
    GH_RUN_DIR="$RUN" GH_REPO="$REPO" GH_HTTP_PORT="$HTTP_PORT" NGINX_WORKERS="$workers" \
      "$REPO/scripts/render-nginx.sh" "$RUN/nginx.conf" || die "the nginx config could not be rendered (above)"
    nginx -p "$RUN/nginx" -e "$RUN/logs/nginx-error.log" -c "$RUN/nginx.conf" \
      || die "nginx did not start (see $RUN/logs/nginx-error.log)"
    wait_for "nginx" 10 curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/health"
  fi

  if ! alive "$RUN/cron.spawn.pid"; then
    LOG_FILE="$RUN/logs/worker.log" spawn cron "$REPO/scripts/cron-loop.sh" "$RUN" "$BIN"
  fi

  # gateway-lite: dev profile only (tests start their own with test/lib/gateway.mjs). Fake mode
  # allows the privileged intents the fake grants; a real bot sets GATEWAY_PRIVILEGED_INTENTS.
  if [ "$profile" = dev ] && [ -x "$BIN/guildhall-gateway" ] && ! alive "$RUN/gateway.spawn.pid"; then
    if [ "$GH_FAKE_MODE" = 1 ]; then
      GATEWAY_PRIVILEGED_INTENTS=${GATEWAY_PRIVILEGED_INTENTS-members,message_content} \
      LOG_FILE="$RUN/logs/gateway.log" spawn gateway "$BIN/guildhall-gateway"
    else
      LOG_FILE="$RUN/logs/gateway.log" spawn gateway "$BIN/guildhall-gateway"
    fi
  fi

  if [ "$GH_FAKE_MODE" = 1 ] && [ "$profile" = dev ]; then
    "$BIN/guildhall-register-commands" --guild "$DEMO_GUILD_ID" >>"$RUN/logs/register.log" 2>&1 \
      || log "warning: registering commands with the fake Discord failed (see $RUN/logs/register.log)"
    # The demo guild installs Guildhall the way a real one does: Discord's APPLICATION_AUTHORIZED
    # webhook event (sent by the fake) records it and makes its owner the installer.
    curl -sf -X POST -H 'Content-Type: application/json' \
      -d "{\"guild_id\":\"$DEMO_GUILD_ID\",\"user_id\":\"111122223333444455\"}" \
      "$GH_FAKE_DISCORD_URL/_fake/install" >>"$RUN/logs/register.log" 2>&1 \
      || log "warning: installing the demo guild through the fake Discord failed (see $RUN/logs/register.log)"
  fi

  log "up"
  echo "  dashboard      $GH_HTTP_URL/"
  echo "  interactions   $GH_HTTP_URL/interactions"
  echo "  health         $GH_HTTP_URL/health"
  echo "  metrics        $GH_HTTP_URL/metrics (loopback only)"
  [ "$GH_FAKE_MODE" = 1 ] && echo "  fake Discord   $GH_FAKE_DISCORD_URL (demo guild $DEMO_GUILD_ID; control API under /_fake/)"
  echo "  PostgreSQL     $DATABASE_URL"
  echo "  Redis          $REDIS_URL"
  [ -e "$RUN/gateway.spawn.pid" ] && echo "  gateway        guildhall-gateway (log $RUN/logs/gateway.log)"
  echo "  logs           $RUN/logs/   stop with: make stop"
}

stop_all() {
  [ -d "$RUN" ] || { [ "${1:-}" = quiet ] || log "not running"; return 0; }
  stop_pidfile "$RUN/cron.spawn.pid"
  stop_pidfile "$RUN/gateway.spawn.pid"
  if alive "$RUN/nginx.pid"; then
    kill -QUIT "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
    local i=0; while alive "$RUN/nginx.pid" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    alive "$RUN/nginx.pid" && kill -TERM "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
  fi
  stop_pidfile "$RUN/interactions.spawn.pid"
  stop_pidfile "$RUN/api.spawn.pid"
  stop_pidfile "$RUN/fake-discord.spawn.pid"
  for p in "$RUN"/peer-*.pid; do [ -e "$p" ] && stop_pidfile "$p"; done
  redis_stop
  pg_stop
  [ "${1:-}" = quiet ] || log "stopped"
}

status() {
  for f in "$RUN"/*.pid "$RUN"/*.spawn.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then echo "up    $(basename "$f") $(cat "$f")"; else echo "down  $(basename "$f")"; fi
  done
  as_pg "$PGBIN/pg_ctl" -D "$(pg_data_dir)" status >/dev/null 2>&1 && echo "up    postgres" || echo "down  postgres"
}

case "$cmd" in
  start) start ;;
  stop) stop_all ;;
  restart) stop_all; start ;;
  status) status ;;
  pg-stop) pg_stop ;;
  pg-start) mkdir -p "$RUN/logs"; pg_start ;;
  redis-stop) redis_stop ;;
  redis-start) mkdir -p "$RUN/logs"; redis_start ;;
  env) cat "$RUN/stack.env" ;;
  *) echo "usage: scripts/stack.sh start|stop|restart|status|pg-stop|pg-start|redis-stop|redis-start|env <dev|test|bench> [--fresh]" >&2; exit 2 ;;
esac
