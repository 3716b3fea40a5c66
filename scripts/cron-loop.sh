#!/usr/bin/env bash
# The local stack's stand-in for cron: starts guildhall-worker and guildhall-scheduler every
# WORKER_TICK_S seconds under flock, exactly as cron/crontab does every minute in production. A
# run lasts a tick plus a few seconds, so two lock slots per binary (alternating by tick) let
# consecutive runs overlap and pickup stays sub-second, while never more than two runs of each
# exist at once. The scheduler logs to logs/scheduler.log, the worker to the loop's LOG_FILE.
#   scripts/cron-loop.sh <run dir> <bin dir>
set -u
RUN=$1
BIN=$2
set -a; . "$RUN/stack.env"; set +a
TICK=${WORKER_TICK_S:-60}
children=()
trap 'for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait; exit 0' TERM INT
n=0
while :; do
  slot=$((n % 2))
  # The subshell takes the lock and then becomes the worker (exec), so the pid we keep is the
  # worker's own and stopping the stack stops it; the lock is released when it exits.
  ( exec 9>"$RUN/worker-$slot.lock"; flock -n 9 || exit 0; exec "$BIN/guildhall-worker" ) >>"$RUN/logs/worker.out" 2>&1 &
  children+=($!)
  ( exec 9>"$RUN/scheduler-$slot.lock"; flock -n 9 || exit 0
    LOG_FILE="$RUN/logs/scheduler.log" exec "$BIN/guildhall-scheduler" ) >>"$RUN/logs/scheduler.out" 2>&1 &
  children+=($!)
  n=$((n + 1))
  # keep only live children in the list
  live=(); for p in "${children[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done; children=("${live[@]}")
  sleep "$TICK" & wait $!
done
