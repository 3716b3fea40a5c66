#!/usr/bin/env bash
# make coverage: after the test suite ran against build/cov, prints lines, functions and
# branches for lib/, features/ and fcgi/, and fails below the floor in test/coverage-floor.
# The floor only moves up: GH_COVERAGE_RAISE=1 make coverage writes the new figures when higher.
set -uo pipefail
cd "$(dirname "$0")/.."
FLOOR=test/coverage-floor
out=$(gcovr -r . --object-directory build/cov/obj -f 'lib/' -f 'features/' -f 'fcgi/' \
      --exclude-unreachable-branches --exclude-throw-branches --print-summary -o build/cov/coverage.txt 2>/dev/null)
echo "$out"
get() { echo "$out" | sed -n "s/^$1: *\([0-9.]*\)%.*/\1/p" | head -1; }
lines=$(get lines); funcs=$(get functions); branches=$(get branches)
[ -n "$lines" ] || { echo "coverage: no data (did the tests run against build/cov?)"; exit 1; }
. "$FLOOR"
rc=0
for m in lines funcs branches; do
  have=${!m}; want=$(eval echo \${floor_$m})
  if awk -v h="$have" -v w="$want" 'BEGIN{exit !(h+0 < w+0)}'; then
    echo "coverage: $m $have% is below the floor $want%"; rc=1
  fi
done
if [ $rc -eq 0 ] && [ "${GH_COVERAGE_RAISE:-0}" = 1 ]; then
  printf 'floor_lines=%s\nfloor_funcs=%s\nfloor_branches=%s\n' \
    "$(awk -v a="$lines" -v b="$floor_lines" 'BEGIN{print (a>b)?int(a):b}')" \
    "$(awk -v a="$funcs" -v b="$floor_funcs" 'BEGIN{print (a>b)?int(a):b}')" \
    "$(awk -v a="$branches" -v b="$floor_branches" 'BEGIN{print (a>b)?int(a):b}')" > "$FLOOR"
  echo "coverage: floor now $(tr '\n' ' ' < "$FLOOR")"
fi
echo "coverage: lines $lines%, functions $funcs%, branches $branches% (goal 90% each; floor: $(tr '\n' ' ' < "$FLOOR"))"
exit $rc
