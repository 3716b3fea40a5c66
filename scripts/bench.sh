#!/usr/bin/env bash
# make bench: the signed-command benchmark, side by side in one run.
# Starts the bench stack (127.0.0.1:38080) and the peers from ../shared/peers/ (express +
# discord-interactions, aiohttp + PyNaCl), pins every server to CPU 0 and wrk to CPU 1, signs a
# fresh pool of requests (unique ids, command `ping`) right before each run, and prints req/s,
# p50, p99 and CPU-seconds per request over every server-side process (from /proc), with our
# ratios. Fails on any non-2xx response or socket error.
# Then the job bench (test/bench/jobs.sh): jobs per worker CPU-second against BullMQ, timer lateness.
# Then the gateway bench (test/bench/gateway.sh): MESSAGE_CREATE per CPU-second of guildhall-gateway
# with every AutoMod rule and XP on against the discord.js peer, fed the same stream by the fake.
#   BENCH_SECONDS=10 BENCH_CONNS=64 scripts/bench.sh
#   scripts/bench.sh gateway      only the gateway bench (its own stack; BENCH_GW_* in gateway.sh)
#   BENCH_SKIP_JOBS=1 / BENCH_SKIP_GATEWAY=1 leave a section out of the full run
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
case "${1:-}" in
  gateway) exec test/bench/gateway.sh ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [gateway]" >&2; exit 2 ;;
esac
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-64}
BIG=${BENCH_BIG_CONNS:-1000}
PEERS_DIR=${GH_PEERS_DIR:-$REPO/../shared/peers}
RUN="$REPO/.run/bench"
SEED=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
PUB=03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8
ulimit -n 65536 2>/dev/null || true
fail=0

cleanup() { scripts/stack.sh stop bench >/dev/null 2>&1 || true; }
trap cleanup EXIT

LOG_LEVEL=${LOG_LEVEL:-info} scripts/stack.sh start bench --fresh >/dev/null || { echo "bench: stack did not start"; exit 1; }
set -a; . "$RUN/stack.env"; set +a
mkdir -p "$RUN/peers"

pg_pid=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null)
OUR_PIDS="$(cat "$RUN/nginx.pid") $(cat "$RUN/interactions.spawn.pid") $(cat "$RUN/redis.pid") $pg_pid $(cat "$RUN/cron.spawn.pid")"

peer_ok=()
if [ -d "$PEERS_DIR/express" ]; then
  rm -rf "$RUN/peers/express"; cp -r "$PEERS_DIR/express" "$RUN/peers/express"
  if (cd "$RUN/peers/express" && npm install --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    # exec: the pid we record is node's own (CPU is read from its process tree).
    (cd "$RUN/peers/express" && PUBLIC_KEY=$PUB PORT=38090 exec node server.mjs) >"$RUN/logs/peer-express.log" 2>&1 &
    echo $! > "$RUN/peer-express.pid"
    peer_ok+=(express)
  else echo "bench: express peer: npm install failed, skipped"; fi
fi
if [ -f "$PEERS_DIR/aiohttp/server.py" ]; then
  PUBLIC_KEY=$PUB PORT=38091 /usr/bin/python3 "$PEERS_DIR/aiohttp/server.py" >"$RUN/logs/peer-aiohttp.log" 2>&1 &
  echo $! > "$RUN/peer-aiohttp.pid"
  peer_ok+=(aiohttp)
fi
for i in $(seq 1 100); do
  ok=1
  for p in "${peer_ok[@]}"; do
    port=38090; [ "$p" = aiohttp ] && port=38091
    curl -s -o /dev/null "http://127.0.0.1:$port/" || ok=0
  done
  [ $ok = 1 ] && break; sleep 0.1
done

pin() { local p c; for p in "$@"; do
  taskset -a -cp 0 "$p" >/dev/null 2>&1
  for c in $(pgrep -P "$p"); do pin "$c"; done
done; }

declare -A RPS P50 P99 CPU
run_one() { # name url pids conns [front-tier pids]; WRK_SCRIPT (default: signed interactions)
  local name=$1 url=$2 pids=$3 conns=$4 front=${5:-}
  local script=${WRK_SCRIPT:-test/bench/interactions.lua}
  for p in $pids; do pin "$p"; done
  [ -z "${WRK_SCRIPT:-}" ] && node test/bench/sign-pool.mjs "$SEED" 8000 "$RUN/pool.lua" test/fixtures/interactions/command.json
  GH_BENCH_POOL="$RUN/pool.lua" taskset -c 1 wrk -t1 -c16 -d2s -s "$script" "$url" >/dev/null 2>&1
  [ -z "${WRK_SCRIPT:-}" ] && node test/bench/sign-pool.mjs "$SEED" 8000 "$RUN/pool.lua" test/fixtures/interactions/command.json
  local c0; c0=$(test/bench/cpu.py $pids)
  local f0=0; [ -n "$front" ] && f0=$(test/bench/cpu.py $front)
  local out; out=$(GH_BENCH_POOL="$RUN/pool.lua" taskset -c 1 wrk -t$([ "$conns" -gt 100 ] && echo 2 || echo 1) \
      -c"$conns" -d"${SECS}s" --latency -s "$script" "$url" 2>&1)
  local c1; c1=$(test/bench/cpu.py $pids)
  local f1=0; [ -n "$front" ] && f1=$(test/bench/cpu.py $front)
  echo "$out" > "$RUN/logs/wrk-$name-$conns.txt"
  local rps reqs p50 p99 non2xx sockerr
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  sockerr=$(echo "$out" | grep 'Socket errors' || true)
  local cpu; cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')
  local per; per=$(awk -v c="$cpu" -v n="$reqs" 'BEGIN{ if (n>0) printf "%.1f", c*1e6/n; else print "nan"}')
  local percpu; percpu=$(awk -v c="$cpu" -v n="$reqs" 'BEGIN{ if (c>0) printf "%.0f", n/c; else print 0}')
  printf '%-10s c=%-5s %9s req/s  p50 %-9s p99 %-9s  %6s µs CPU/req  %7s req per CPU-s' "$name" "$conns" "$rps" "$p50" "$p99" "$per" "$percpu"
  if [ -n "$front" ]; then
    printf '  (nginx + fcgi alone: %s µs CPU/req)' "$(awk -v a="$f0" -v b="$f1" -v n="$reqs" 'BEGIN{ if (n>0) printf "%.1f", (b-a)*1e6/n; else print "nan"}')"
  fi
  if [ -n "$non2xx" ] || [ -n "$sockerr" ]; then
    printf '  ERRORS: %s %s' "${non2xx:+non-2xx=$non2xx}" "$sockerr"; fail=1
  fi
  echo
  RPS[$name-$conns]=$rps; P50[$name-$conns]=$p50; P99[$name-$conns]=$p99; CPU[$name-$conns]=$percpu
}

echo "bench: signed APPLICATION_COMMAND (ping), ${SECS}s per run, servers pinned to CPU 0, wrk on CPU 1"
FRONT_PIDS="$(cat "$RUN/nginx.pid") $(cat "$RUN/interactions.spawn.pid")"
echo "(guildhall's CPU counts nginx, the fcgi master and children, Redis, PostgreSQL and the worker)"
run_one guildhall "$GH_HTTP_URL" "$OUR_PIDS" "$CONNS" "$FRONT_PIDS"
for p in "${peer_ok[@]}"; do
  port=38090; [ "$p" = aiohttp ] && port=38091
  run_one "$p" "http://127.0.0.1:$port" "$(cat "$RUN/peer-$p.pid")" "$CONNS"
done
run_one guildhall "$GH_HTTP_URL" "$OUR_PIDS" "$BIG" "$FRONT_PIDS"

ms() { echo "$1" | awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}'; }
echo
for p in "${peer_ok[@]}"; do
  r=$(awk -v a="${CPU[guildhall-$CONNS]}" -v b="${CPU[$p-$CONNS]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')
  t=$(awk -v a="${RPS[guildhall-$CONNS]}" -v b="${RPS[$p-$CONNS]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')
  echo "ratio guildhall/$p: ${r}x requests per CPU-second, ${t}x requests per second"
done
p99=$(ms "${P99[guildhall-$CONNS]}")
echo "guildhall p99 at $CONNS connections: ${p99} ms (goal < 15 ms); $BIG connections: p99 $(ms "${P99[guildhall-$BIG]}") ms"

# The dashboard API: one feature's settings read with a session (the bench rate-limit profile).
echo
echo "bench: GET /api/v1/guilds/{id}/settings/core with a session cookie, ${SECS}s, servers on CPU 0"
if cookie=$(GH_PROFILE=bench node test/bench/api-login.mjs 2>"$RUN/logs/api-login.log"); then
  API_PIDS="$(cat "$RUN/nginx.pid") $(cat "$RUN/api.spawn.pid") $(cat "$RUN/redis.pid") $pg_pid"
  GH_BENCH_COOKIE="$cookie" GH_BENCH_PATH="/api/v1/guilds/1098765432109876543/settings/core" \
    WRK_SCRIPT=test/bench/api.lua run_one api "$GH_HTTP_URL" "$API_PIDS" "$CONNS" \
    "$(cat "$RUN/nginx.pid") $(cat "$RUN/api.spawn.pid")"
  echo "api settings GET p99 at $CONNS connections: $(ms "${P99[api-$CONNS]}") ms (goal < 10 ms)"
else
  echo "bench: the API login failed (see $RUN/logs/api-login.log)"; fail=1
fi

# Moderation: /warn end to end (verify, checks, case insert, Redis count, mod-log job) over 100
# guilds x 1,000 targets, escalation and DMs off (test/bench/mod-warn.mjs, mod-warn.lua: each
# signed interaction is sent once). CPU as for /ping: every server-side process.
echo
MOD_GUILDS=${BENCH_MOD_GUILDS:-100}; MOD_TARGETS=${BENCH_MOD_TARGETS:-1000}
echo "bench: signed /warn over $MOD_GUILDS guilds x $MOD_TARGETS targets, escalation off, ${SECS}s, servers on CPU 0"
if node test/bench/mod-warn.mjs setup "$MOD_GUILDS" 2>"$RUN/logs/mod-warn.log" \
   && node test/bench/mod-warn.mjs sign "$SEED" "${BENCH_MOD_POOL:-$(( SECS * 4000 + 20000 < 60000 ? SECS * 4000 + 20000 : 60000 ))}" "$RUN/pool.lua" \
        "$MOD_GUILDS" "$MOD_TARGETS" 2>>"$RUN/logs/mod-warn.log"; then
  parts=("nginx:$(cat "$RUN/nginx.pid")" "fcgi:$(cat "$RUN/interactions.spawn.pid")" "redis:$(cat "$RUN/redis.pid")"
         "postgres:$pg_pid" "worker:$(cat "$RUN/cron.spawn.pid")")
  declare -A W0; for p in "${parts[@]}"; do W0[${p%%:*}]=$(test/bench/cpu.py ${p#*:}); done
  WRK_SCRIPT=test/bench/mod-warn.lua run_one warn "$GH_HTTP_URL" "$OUR_PIDS" "$CONNS" "$FRONT_PIDS"
  # every request must have written a case (a refusal also answers 200)
  sent=$(cat "$RUN/pool.lua.sent" 2>/dev/null || echo 0)
  cases=$(psql -X -A -t -d "$DATABASE_URL" -c "SELECT count(*) FROM mod_cases WHERE type = 'WARN' AND status = 'active' AND guild_id >= 1310000000000000000 AND guild_id < 1320000000000000000" 2>/dev/null || echo 0)
  echo "warn: $cases WARN cases written for $sent requests sent (warm-up included)"
  line="warn CPU per request (warm-up included):"
  for p in "${parts[@]}"; do
    line+=" ${p%%:*} $(awk -v a="${W0[${p%%:*}]}" -v b="$(test/bench/cpu.py ${p#*:})" -v n="$sent" \
      'BEGIN{ if (n>0) printf "%.0f", (b-a)*1e6/n; else print "nan"}') µs,"
  done
  echo "${line%,}"
  # (a pool file Lua cannot load leaves wrk sending plain GETs: nothing sent, nothing written)
  if [ "${sent:-0}" -eq 0 ] || [ "${cases:-0}" -lt $((sent * 95 / 100)) ]; then
    echo "bench: /warn wrote fewer cases than requests: refusals or errors (see $RUN/logs/interactions.log)"; fail=1
  fi
  echo "warn p99 at $CONNS connections: $(ms "${P99[warn-$CONNS]}") ms (goal < 20 ms); ${CPU[warn-$CONNS]} req per CPU-s" \
       "beside signed /ping ${CPU[guildhall-$CONNS]} ($(awk -v a="${CPU[warn-$CONNS]}" -v b="${CPU[guildhall-$CONNS]}" \
       'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')x)"
else
  echo "bench: the /warn bench data could not be prepared (see $RUN/logs/mod-warn.log)"; fail=1
fi

size=$(cat static/*.html static/*.css static/*.js static/js/*.js 2>/dev/null | wc -c)
echo "dashboard HTML + CSS + JS: $size bytes uncompressed (goal < 150 KB = 153600)"
[ "$size" -lt 153600 ] || { echo "bench: the dashboard is too large"; fail=1; }
[ $fail -eq 0 ] && echo "bench: no errors" || echo "bench: FAILED (errors above)"

# The job system: our worker against the BullMQ peer on the same Redis, and timer lateness
# (test/bench/jobs.sh; it stops this stack's cron loop, so it runs last).
if [ "${BENCH_SKIP_JOBS:-0}" != 1 ]; then GH_BENCH_STACK_UP=1 test/bench/jobs.sh || fail=1; fi

# The gateway: guildhall-gateway against the discord.js peer, the same stream from the fake gateway
# (test/bench/gateway.sh; it pins the stack to CPU 1 and each bot to CPU 0, so it runs last).
if [ "${BENCH_SKIP_GATEWAY:-0}" != 1 ]; then GH_BENCH_STACK_UP=1 test/bench/gateway.sh || fail=1; fi
exit $fail
