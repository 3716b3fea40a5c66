#!/usr/bin/env bash
# The gateway benchmark (make bench runs it last; `scripts/bench.sh gateway` runs it alone; never a
# test). Side by side, fed by the fake gateway (test/fakes/discord) with the same MESSAGE_CREATE
# stream (same count, seed, guilds, users, 1 in BAD_EVERY breaking an AutoMod rule):
#   1. the peer from ../shared/peers/discordjs/ (discord.js v14 + ioredis, same rules and XP),
#      copied to .run/bench/peers/discordjs, npm installed there, run unmodified;
#   2. ours: guildhall-gateway --shards 0-0/1 with every AutoMod rule and text XP on for the bench
#      guilds (test/bench/gateway.mjs setup writes the settings documents with SQL).
# Each contestant is pinned to CPU 0 (the fake, Redis, PostgreSQL and the rest of the stack to
# CPU 1), starts against fresh Redis keys and a reset fake gateway, identifies, settles, then the
# fake floods it; its CPU-seconds (utime + stime, test/bench/cpu.py) are read before the stream and
# once it handled every event (the peer prints its result; ours: shard status field "messages").
# Printed: MESSAGE_CREATE per CPU-second of each and our ratio (goal >= 4x), wall events/s, AutoMod
# actions of each, our heartbeat lateness p99 and frame-to-REST-call latency p50/p99 under load.
# Fails when ours handled fewer messages than were sent or took no AutoMod action.
#   BENCH_GW_EVENTS=100000 BENCH_GW_GUILDS=20 BENCH_GW_USERS=5000 BENCH_GW_BAD_EVERY=10
#   BENCH_GW_RATE=0 (events/s the fake sends; 0 = as fast as it can) BENCH_GW_SEED=7
#   BENCH_GW_HB_MS=10000 (heartbeat interval in HELLO: several heartbeats inside the stream; not
#     much shorter: ACKs queue behind the backlog, and a zombie-connection check then reconnects)
#   BENCH_GW_COMPRESS=none (ours' GATEWAY_COMPRESS; the peer has no zlib-sync: no compression)
#   BENCH_GW_RUNS=1 (runs of each, alternating; the median per CPU-second is printed)
#   BENCH_GW_PEER=0 skips the peer, BENCH_GW_OURS=0 skips ours.
# Starts the bench stack itself unless GH_BENCH_STACK_UP=1 (scripts/bench.sh, which has it up).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
export BENCH_GW_EVENTS=${BENCH_GW_EVENTS:-100000} BENCH_GW_GUILDS=${BENCH_GW_GUILDS:-20}
export BENCH_GW_USERS=${BENCH_GW_USERS:-5000} BENCH_GW_BAD_EVERY=${BENCH_GW_BAD_EVERY:-10}
export BENCH_GW_RATE=${BENCH_GW_RATE:-0} BENCH_GW_SEED=${BENCH_GW_SEED:-7} BENCH_GW_HB_MS=${BENCH_GW_HB_MS:-10000}
COMPRESS=${BENCH_GW_COMPRESS:-none}
PEERS_DIR=${GH_PEERS_DIR:-$REPO/../shared/peers}
RUN="$REPO/.run/bench"
BIN="$REPO/${GH_BUILD:-build}/bin"
STATUS_MS=100
fail=0
stack_ours=0
WRAPPERS=()

# A contestant runs as `( taskset -c 0 cmd; echo $? > rc ) &`: the subshell's pid is the CPU root
# (cpu.py sums its tree; once the contestant exits and is reaped, its CPU is in the subshell's
# cutime/cstime, so a reading after a quick exit is still whole).
stop_contestant() { # wrapper pid [seconds to wait for it to exit by itself]
  local w=$1 grace=${2:-0} c _
  for _ in $(seq 1 $((grace * 10))); do kill -0 "$w" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$w" 2>/dev/null || { wait "$w" 2>/dev/null; return 0; }
  for c in $(pgrep -P "$w"); do kill -TERM "$c" 2>/dev/null; done
  for _ in $(seq 1 100); do kill -0 "$w" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$w" 2>/dev/null; then
    echo "gateway bench: pid $w did not stop within 10 s of SIGTERM: killed" >&2
    for c in $(pgrep -P "$w"); do kill -KILL "$c" 2>/dev/null; done
  fi
  wait "$w" 2>/dev/null
}
cleanup() {
  local w
  for w in "${WRAPPERS[@]}"; do stop_contestant "$w"; done
  rm -f "$RUN/peer-discordjs.pid"
  [ $stack_ours = 1 ] && scripts/stack.sh stop bench >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${GH_BENCH_STACK_UP:-}" != 1 ]; then
  [ -x "$BIN/guildhall-interactions" ] || { echo "gateway bench: binaries missing in $BIN: run 'make all' first"; exit 1; }
  stack_ours=1
  mkdir -p "$REPO/.run"
  LOG_LEVEL=${LOG_LEVEL:-warn} scripts/stack.sh start bench --fresh >"$RUN.start.log" 2>&1 \
    || { echo "gateway bench: the bench stack did not start: $(tail -3 "$RUN.start.log")"; exit 1; }
fi
set -a; . "$RUN/stack.env"; set +a
mkdir -p "$RUN/peers" "$RUN/logs"
LOGS="$RUN/logs"

pin_tree() { local cpu=$1 p c; shift; for p in "$@"; do
  [ -n "$p" ] || continue
  taskset -a -cp "$cpu" "$p" >/dev/null 2>&1
  for c in $(pgrep -P "$p"); do pin_tree "$cpu" "$c"; done
done; }
pidof_file() { [ -f "$1" ] && cat "$1"; }
pin_tree 1 "$(pidof_file "$RUN/redis.pid")" "$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null)" \
  "$(pidof_file "$RUN/fake-discord.spawn.pid")" "$(pidof_file "$RUN/nginx.pid")" \
  "$(pidof_file "$RUN/interactions.spawn.pid")" "$(pidof_file "$RUN/api.spawn.pid")" "$(pidof_file "$RUN/cron.spawn.pid")"
# The stack's cron loop (worker + scheduler) would drain ours' jobs (offences, XP) on CPU 1 during
# ours' run only: stopped for the section, as test/bench/jobs.sh does; the jobs wait in the queue.
cron=$(pidof_file "$RUN/cron.spawn.pid")
if [ -n "$cron" ] && kill -TERM "$cron" 2>/dev/null; then
  for _ in $(seq 1 300); do kill -0 "$cron" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$cron" 2>/dev/null && { echo "gateway bench: the stack's cron loop ($cron) did not stop within 30 s"; exit 1; }
fi
drive() { GATEWAY_STATUS_INTERVAL_MS=$STATUS_MS taskset -c 1 node test/bench/gateway.mjs "$@"; }

curl -sf -o /dev/null "$GH_FAKE_DISCORD_URL/_fake/gateway/sessions" \
  || { echo "gateway bench: the fake Discord has no gateway (GET /_fake/gateway/sessions failed): skipped"; exit 1; }
drive setup 2>"$LOGS/gateway-bench.log" || { echo "gateway bench: setup failed: $(tail -2 "$LOGS/gateway-bench.log")"; exit 1; }

echo
echo "bench: gateway, $BENCH_GW_EVENTS MESSAGE_CREATE over $BENCH_GW_GUILDS guilds x $BENCH_GW_USERS users," \
     "1 in $BENCH_GW_BAD_EVERY breaking a rule, fake rate $([ "$BENCH_GW_RATE" = 0 ] && echo 'as fast as it sends' || echo "$BENCH_GW_RATE/s")," \
     "heartbeat ${BENCH_GW_HB_MS} ms; each bot on CPU 0, fake + Redis + PostgreSQL on CPU 1"

declare -A R
field() { echo "$1" | sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[-0-9.]*\).*/\1/p" | tr -d '"'; }

contest() { # name outfile cwd cmd...: runs cmd in cwd pinned to CPU 0 and keeps the driver's JSON in R[name]
  local name=$1 out=$2 cwd=$3 w j; shift 3
  drive fresh 2>>"$LOGS/gateway-bench.log" || { echo "gateway bench: $name: resetting the fake gateway failed: $(tail -1 "$LOGS/gateway-bench.log")"; return 1; }
  : > "$out"
  # (the subshell's own stderr dropped: bash would print "Terminated" when we stop the contestant)
  ( cd "$cwd" && taskset -c 0 "$@" >"$out" 2>"$out.err"; echo $? > "$out.rc" ) 2>/dev/null &
  w=$!
  WRAPPERS+=("$w")
  [ "$name" = discordjs ] && echo "$w" > "$RUN/peer-discordjs.pid"
  if j=$(drive run "$name" "$w" "$([ "$name" = guildhall ] && echo status || echo "$out")" 2>>"$LOGS/gateway-bench.log"); then
    R[$name]=$j
    echo "$j" >> "$LOGS/gateway-bench.log"
  else
    echo "gateway bench: $name: $(tail -1 "$LOGS/gateway-bench.log" | sed 's/^gateway bench: //') (output: $out, $out.err)"
    stop_contestant "$w"; rm -f "$RUN/peer-discordjs.pid"; return 1
  fi
  # the peer exits by itself 200 ms after its result; ours stops on SIGTERM
  stop_contestant "$w" "$([ "$name" = guildhall ] && echo 0 || echo 5)"
  rm -f "$RUN/peer-discordjs.pid"
  if [ "$name" = guildhall ] && [ "$(cat "$out.rc" 2>/dev/null)" != 0 ]; then
    echo "gateway bench: guildhall-gateway did not exit 0 on SIGTERM (rc $(cat "$out.rc" 2>/dev/null)); see $out.err"; return 1
  fi
  return 0
}

line() { # name json
  local hb
  if [ "$(field "$2" fake_hb_late_p99_ms)" = -1 ]; then hb="lateness not measurable (fewer than 2)"
  else hb="lateness p99 $(field "$2" fake_hb_late_p99_ms) ms, max $(field "$2" fake_hb_late_max_ms) ms"; fi
  printf '%-10s %8s events per CPU-s  %8s events/s wall  (CPU %s s, %s handled of %s sent, fake sent in %s ms, %s AutoMod actions for %s rule-breaking messages)\n' \
    "$1" "$(field "$2" per_cpu_s)" "$(field "$2" per_s)" "$(field "$2" cpu_s)" "$(field "$2" handled)" \
    "$(field "$2" sent)" "$(field "$2" send_ms)" "$(field "$2" actions)" "$(field "$2" bad)"
  printf '%-10s heartbeats the fake received during the stream: %s, %s (interval %s ms); reconnections: %s identify, resumes: %s; transport compression: %s\n' \
    "$1" "$(field "$2" fake_heartbeats)" "$hb" "$BENCH_GW_HB_MS" \
    "$(field "$2" identifies_during)" "$(field "$2" resumes_during)" "$(field "$2" compress)"
}

# ---- the contestants ---------------------------------------------------------------------------
peer=0
if [ "${BENCH_GW_PEER:-1}" = 1 ]; then
  if [ ! -f "$PEERS_DIR/discordjs/bot.mjs" ]; then
    echo "gateway bench: no peer in $PEERS_DIR/discordjs (set GH_PEERS_DIR): skipped"; fail=1
  else
    PEER="$RUN/peers/discordjs"
    rm -rf "$PEER"; mkdir -p "$PEER"; cp "$PEERS_DIR/discordjs/bot.mjs" "$PEERS_DIR/discordjs/package.json" "$PEER/"
    if (cd "$PEER" && npm install --no-audit --no-fund --loglevel=error >"$LOGS/discordjs-npm.log" 2>&1); then
      peer=1
    else
      echo "gateway bench: discord.js peer: npm install failed (see $LOGS/discordjs-npm.log): skipped"; fail=1
    fi
  fi
fi
ours=0
if [ "${BENCH_GW_OURS:-1}" = 1 ]; then
  if [ -x "$BIN/guildhall-gateway" ]; then ours=1; rm -f "$LOGS/gateway-ours.log"
  else echo "gateway bench: $BIN/guildhall-gateway missing: ours skipped"; fail=1; fi
fi

run_peer() {
  contest discordjs "$LOGS/gateway-discordjs.out" "$PEER" env DISCORD_API_BASE="$DISCORD_API_BASE" \
    DISCORD_TOKEN="$DISCORD_TOKEN" REDIS_URL="$REDIS_URL" EXPECT="$BENCH_GW_EVENTS" node bot.mjs
}
run_ours() {
  contest guildhall "$LOGS/gateway-guildhall.out" "$REPO" env LOG_FILE="$LOGS/gateway-ours.log" \
    LOG_LEVEL="${BENCH_GW_LOG_LEVEL:-warn}" GATEWAY_COMPRESS="$COMPRESS" GATEWAY_STATUS_INTERVAL_MS=$STATUS_MS \
    GH_RUN_DIR="$RUN" "$BIN/guildhall-gateway" --shards 0-0/1 || return 1
  local j=${R[guildhall]} sent handled acts
  sent=$(field "$j" sent); handled=$(field "$j" handled); acts=$(field "$j" actions)
  if [ "${handled:-0}" -lt "${sent:-1}" ]; then echo "gateway bench: ours handled $handled of $sent messages"; return 1; fi
  if [ "${acts:-0}" -le 0 ] && [ "$BENCH_GW_BAD_EVERY" -gt 0 ]; then echo "gateway bench: ours took no AutoMod action"; return 1; fi
  return 0
}

# BENCH_GW_RUNS runs of each, alternating (peer, ours, peer, ...); the run with the median events
# per CPU-second of each is the one printed in full.
RUNS=${BENCH_GW_RUNS:-1}
declare -A ALL
for k in $(seq 1 "$RUNS"); do
  for n in discordjs guildhall; do
    if [ $n = discordjs ]; then [ $peer = 1 ] || continue; unset 'R[discordjs]'; run_peer || fail=1
    else [ $ours = 1 ] || continue; unset 'R[guildhall]'; run_ours || fail=1; fi
    [ -n "${R[$n]:-}" ] || continue
    ALL[$n]+="$(field "${R[$n]}" per_cpu_s) $k ${R[$n]}"$'\n'
    [ "$RUNS" -gt 1 ] && printf '%-10s run %s: %s events per CPU-s, %s events/s wall\n' "$n" "$k" \
      "$(field "${R[$n]}" per_cpu_s)" "$(field "${R[$n]}" per_s)"
  done
done
unset 'R[discordjs]' 'R[guildhall]'
for n in discordjs guildhall; do
  [ -n "${ALL[$n]:-}" ] || continue
  cnt=$(printf '%s' "${ALL[$n]}" | grep -c .)
  R[$n]=$(printf '%s' "${ALL[$n]}" | grep . | sort -n -k1,1 | sed -n "$(( (cnt + 1) / 2 ))p" | cut -d' ' -f3-)
  [ "$cnt" -gt 1 ] && echo "$n: median of $cnt runs:"
  line "$n" "${R[$n]}"
  if [ $n = guildhall ]; then
    j=${R[guildhall]}
    echo "guildhall  heartbeat lateness p99 $(field "$j" hb_late_p99_us) us under load (its own measure);" \
         "AutoMod frame-to-REST-call p50 $(field "$j" urgent_p50_us) us, p99 $(field "$j" urgent_p99_us) us (goal p99 < 20000 us);" \
         "$(field "$j" automod_hits) messages matched a rule; $(field "$j" jobs_enqueued) events turned into jobs (the worker is stopped during the section)"
  fi
done

# ---- comparison -------------------------------------------------------------------------------
for n in discordjs guildhall; do
  [ -n "${R[$n]:-}" ] || continue
  # the fake says how many rule-breaking messages it sent
  expect=$(field "${R[$n]}" bad); [ -n "$expect" ] || expect=0
  [ "$BENCH_GW_BAD_EVERY" -gt 0 ] && [ "$expect" -le 0 ] && expect=$((BENCH_GW_EVENTS / BENCH_GW_BAD_EVERY))
  [ "$expect" -gt 0 ] || continue
  a=$(field "${R[$n]}" actions)
  awk -v a="$a" -v e="$expect" 'BEGIN{ exit !(a < e / 2 || a > e * 2) }' \
    && echo "gateway bench: warning: $n took $a AutoMod actions for $expect rule-breaking messages sent"
done
if [ -n "${R[discordjs]:-}" ] && [ -n "${R[guildhall]:-}" ]; then
  r=$(awk -v a="$(field "${R[guildhall]}" per_cpu_s)" -v b="$(field "${R[discordjs]}" per_cpu_s)" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')
  w=$(awk -v a="$(field "${R[guildhall]}" per_s)" -v b="$(field "${R[discordjs]}" per_s)" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')
  echo "ratio guildhall/discordjs: ${r}x events per CPU-second (goal >= 4x: $(awk -v r="$r" 'BEGIN{ print (r+0 >= 4) ? "met" : "NOT met" }')), ${w}x events/s wall"
fi
[ $fail -eq 0 ] && echo "gateway bench: no errors" || echo "gateway bench: FAILED (errors above; logs in $LOGS/gateway-*)"
exit $fail
