#!/usr/bin/env bash
# Runs every test against a fresh test stack and ends with one line: "N passed, N failed".
# Exit status is non-zero when any test failed, crashed, was skipped or did not run.
#   GH_BUILD=build/asan scripts/test.sh     (make check)
#   GH_TEST_FILTER=<substring> scripts/test.sh   run only matching unit binaries / integration files
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export GH_BUILD=${GH_BUILD:-build}
# One test stack per checkout: a second run waits for the first instead of sharing its ports.
mkdir -p "$REPO/.run"
exec 8>"$REPO/.run/test.lock"
flock 8
OUT="$REPO/.run/test-results"
rm -rf "$OUT"; mkdir -p "$OUT"
passed=0; failed=0; problems=()

cleanup() { scripts/stack.sh stop test >/dev/null 2>&1 || true; }
trap cleanup EXIT

if ! scripts/stack.sh start test --fresh > "$OUT/stack-start.log" 2>&1; then
  cat "$OUT/stack-start.log" >&2
  echo "test: the test stack did not start; no test ran" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
set -a; . "$REPO/.run/test/stack.env"; set +a
export GH_RUN_DIR="$REPO/.run/test"

# ---- unit tests (cmocka, TAP output) ----
shopt -s nullglob
units=("$GH_BUILD"/test/test_*)
[ ${#units[@]} -eq 0 ] && problems+=("no unit test binaries in $GH_BUILD/test")
for t in "${units[@]}"; do
  name=$(basename "$t")
  [ -n "${GH_TEST_FILTER:-}" ] && [[ "$name" != *"$GH_TEST_FILTER"* ]] && continue
  log="$OUT/unit-$name.log"
  CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" > "$log" 2>&1
  rc=$?
  # cmocka's TAP writes a skipped test as "not ok N # SKIP" (older: "ok N # SKIP").
  s=$(grep -cE '^(not )?ok [0-9]+.*# *SKIP' "$log" | tr -d ' '); s=${s:-0}
  p=$(grep -E '^ok [0-9]+' "$log" | grep -cvE '# *SKIP' | tr -d ' '); p=${p:-0}
  f=$(grep -E '^not ok [0-9]+' "$log" | grep -cvE '# *SKIP' | tr -d ' '); f=${f:-0}
  if [ "$s" -gt 0 ]; then problems+=("$name: $s skipped"); f=$((f + s)); fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; problems+=("$name: exited with status $rc"); fi
  [ $((p + f)) -eq 0 ] && { f=1; problems+=("$name: ran no test"); }
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    echo "--- $name: $p passed, $f failed (log: $log)"
    grep -E -A8 '^not ok|SKIP|ERROR|AddressSanitizer|runtime error' "$log" | head -60
  else
    echo "    $name: $p passed"
  fi
done

# ---- integration tests (node:test against the running stack) ----
files=(test/integration/*.test.mjs test/browser/*.test.mjs)
if [ -n "${GH_TEST_FILTER:-}" ]; then
  sel=(); for f in "${files[@]}"; do [[ "$f" == *"$GH_TEST_FILTER"* ]] && sel+=("$f"); done; files=("${sel[@]}")
fi
if [ ${#files[@]} -gt 0 ]; then
  log="$OUT/integration.tap"
  GH_PROFILE=test timeout 1800 node --test --test-concurrency=1 --test-reporter=tap "${files[@]}" > "$log" 2>&1
  rc=$?
  p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$log" | tail -1); p=${p:-0}
  f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$log" | tail -1); f=${f:-0}
  c=$(sed -n 's/^# cancelled \([0-9]*\)/\1/p' "$log" | tail -1); c=${c:-0}
  s=$(sed -n 's/^# skipped \([0-9]*\)/\1/p' "$log" | tail -1); s=${s:-0}
  f=$((f + c + s))
  [ "$s" -gt 0 ] && problems+=("integration: $s skipped")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; problems+=("integration: node exited with status $rc"); fi
  [ $((p + f)) -eq 0 ] && { f=1; problems+=("integration: ran no test"); }
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    echo "--- integration: $p passed, $f failed (log: $log)"
    grep -B2 -A25 -E '^\s*not ok' "$log" | head -150
  else
    echo "    integration: $p passed"
  fi
elif [ -z "${GH_TEST_FILTER:-}" ]; then
  problems+=("no integration tests found")
fi

for p in "${problems[@]}"; do echo "problem: $p"; done
[ ${#problems[@]} -gt 0 ] && [ $failed -eq 0 ] && failed=1
if [ $failed -gt 0 ]; then
  echo "service logs: $REPO/.run/test/logs/"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
