#!/usr/bin/env bash
# The job system's benchmark (make bench runs it after the interactions bench; never a test).
# Side by side on the bench stack's Redis:
#   - jobs drained per second and per CPU-second of the worker (and redis-server's CPU per job over
#     the drain, from /proc, not counted in the ratio), no-op jobs and jobs that write
#     one PostgreSQL row: our worker (guildhall-jobbench drain: one production worker run, one
#     child, batches, leases, heartbeats, job_runs written) and the BullMQ peer from
#     ../shared/peers/bullmq/ (one Node process, concurrency 50); each worker pinned to CPU 0,
#     Redis and PostgreSQL to CPU 1;
#   - timer lateness (fired_at - due_at) p50/p99 for TIMERS timers due in the same minute, fired
#     by guildhall-scheduler and a worker run.
# Goal printed: >= 2x BullMQ jobs per worker CPU-second, lateness p99 < 1 s.
#   JOBS_N=20000 TIMERS=10000 TIMER_SPAN_S=60 test/bench/jobs.sh   (TIMERS=0: no timer part)
# Starts the bench stack itself unless GH_BENCH_STACK_UP=1 (scripts/bench.sh, which has it up).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
N=${JOBS_N:-20000}
TIMERS=${TIMERS:-10000}
SPAN=${TIMER_SPAN_S:-60}
PEERS_DIR=${GH_PEERS_DIR:-$REPO/../shared/peers}
RUN="$REPO/.run/bench"
BIN="$REPO/${GH_BUILD:-build}/bin"
fail=0

if [ "${GH_BENCH_STACK_UP:-}" != 1 ]; then
  trap 'scripts/stack.sh stop bench >/dev/null 2>&1 || true' EXIT
  LOG_LEVEL=${LOG_LEVEL:-warn} scripts/stack.sh start bench --fresh >/dev/null || { echo "jobs bench: stack did not start"; exit 1; }
fi
set -a; . "$RUN/stack.env"; set +a
export LOG_LEVEL=warn LOG_FILE="$RUN/logs/jobbench.log"
mkdir -p "$RUN/peers" "$RUN/logs"

# The stack's own cron loop would take the timer jobs with the registry's kinds: this bench runs
# guildhall-scheduler and its own worker instead.
if [ -f "$RUN/cron.spawn.pid" ]; then kill -TERM "$(cat "$RUN/cron.spawn.pid")" 2>/dev/null; sleep 1; fi

pin_tree() { local cpu=$1 p c; shift; for p in "$@"; do
  taskset -a -cp "$cpu" "$p" >/dev/null 2>&1
  for c in $(pgrep -P "$p"); do pin_tree "$cpu" "$c"; done
done; }
pg_pid=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null)
pin_tree 1 "$(cat "$RUN/redis.pid")" "$pg_pid"
redis_db0() { echo "${REDIS_URL%/*}/0"; }
redis_pid=$(cat "$RUN/redis.pid")

# ---- BullMQ peer ---------------------------------------------------------------------------
peer=0
if [ -f "$PEERS_DIR/bullmq/bench.mjs" ]; then
  rm -rf "$RUN/peers/bullmq"; cp -r "$PEERS_DIR/bullmq" "$RUN/peers/bullmq"
  if (cd "$RUN/peers/bullmq" && npm install --no-audit --no-fund --loglevel=error >"$RUN/logs/bullmq-npm.log" 2>&1); then
    peer=1
  else
    echo "jobs bench: BullMQ peer: npm install failed (see $RUN/logs/bullmq-npm.log), skipped"
  fi
fi

declare -A OURS THEIRS
field() { echo "$1" | sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p"; }

run_ours() { # kind -> json
  taskset -c 1 "$BIN/guildhall-jobbench" drain --kind "$1" --n "$N" --cpu 0 --queue "bench$1" --redis-pid "$redis_pid" 2>>"$RUN/logs/jobbench.err"
}
run_peer() { # kind(noop|pg) -> json from the watcher
  local out="$RUN/logs/bullmq-$1.out" pid w
  (cd "$RUN/peers/bullmq" && REDIS_URL="$(redis_db0)" DATABASE_URL="$DATABASE_URL" N=$N KIND=$1 \
     exec taskset -c 0 node bench.mjs >"$out" 2>&1) &
  pid=$!
  # the subshell execs node: $! is node's pid
  w=$(taskset -c 1 "$BIN/guildhall-jobbench" watch --pid "$pid" --n "$N" --redis-pid "$redis_pid" 2>>"$RUN/logs/jobbench.err")
  wait "$pid" || { echo "jobs bench: BullMQ $1 run failed: $(tail -3 "$out")" >&2; return 1; }
  echo "$w"
  echo "  (bench.mjs itself: $(tail -1 "$out"))" >&2
}

echo
echo "bench: jobs, $N per run, each worker pinned to CPU 0 (Redis, PostgreSQL on CPU 1)"
for kind in noop pgrow; do
  j=$(run_ours "$kind") || { echo "jobs bench: our $kind run failed (see $RUN/logs/jobbench.err)"; fail=1; }
  OURS[$kind]=$(field "$j" per_cpu_s)
  printf '%-10s %-6s %8s jobs/s  %8s jobs per CPU-s  (drain %s ms, CPU %s s, Redis %s us/job)\n' guildhall \
    "$kind" "$(field "$j" per_s)" "${OURS[$kind]}" "$(field "$j" drain_ms)" "$(field "$j" cpu_s)" \
    "$(field "$j" redis_us_per_job)"
  if [ $peer = 1 ]; then
    pk=$kind; [ "$kind" = pgrow ] && pk=pg
    j=$(run_peer "$pk") || { fail=1; continue; }
    THEIRS[$kind]=$(field "$j" per_cpu_s)
    printf '%-10s %-6s %8s jobs/s  %8s jobs per CPU-s  (drain %s ms, CPU %s s, Redis %s us/job)\n' bullmq \
      "$kind" "$(field "$j" per_s)" "${THEIRS[$kind]}" "$(field "$j" drain_ms)" "$(field "$j" cpu_s)" \
      "$(field "$j" redis_us_per_job)"
  fi
done
for kind in noop pgrow; do
  [ -n "${THEIRS[$kind]:-}" ] && [ -n "${OURS[$kind]:-}" ] || continue
  r=$(awk -v a="${OURS[$kind]}" -v b="${THEIRS[$kind]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}')
  ok=$(awk -v r="$r" 'BEGIN{ print (r+0 >= 2) ? "met" : "NOT met" }')
  echo "ratio guildhall/bullmq $kind: ${r}x jobs per worker CPU-second (goal >= 2x: $ok)"
done

# ---- timer lateness (TIMERS=0 skips it) ----------------------------------------------------
if [ "$TIMERS" -gt 0 ]; then
echo "bench: timers, $TIMERS due within ${SPAN}s, guildhall-scheduler + one worker run (2 children)"
WORKER_TICK_S=$((SPAN + 120)) LOG_FILE="$RUN/logs/scheduler.log" taskset -c 1 "$BIN/guildhall-scheduler" &
sched=$!
j=$(taskset -c 1 "$BIN/guildhall-jobbench" timers --n "$TIMERS" --span-s "$SPAN" --cpu 0 2>>"$RUN/logs/jobbench.err") || fail=1
kill -TERM "$sched" 2>/dev/null; wait "$sched" 2>/dev/null
p99=$(field "$j" p99_s)
echo "timers: $(field "$j" done)/$TIMERS fired, lateness p50 $(field "$j" p50_s) s, p99 ${p99:-?} s, max $(field "$j" max_s) s" \
  "(goal p99 < 1 s: $(awk -v p="${p99:--1}" 'BEGIN{ print (p >= 0 && p < 1) ? "met" : "NOT met" }'))"
fi
[ $fail -eq 0 ] && echo "jobs bench: no errors" || echo "jobs bench: FAILED (errors above; logs in $RUN/logs/)"
exit $fail
