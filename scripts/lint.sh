#!/usr/bin/env bash
# make lint: cppcheck and clang-tidy with the checked-in configuration (.clang-tidy), and the
# formatting check (.clang-format). Exit status non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(ls lib/*/*.c features/*.c features/*/*.c fcgi/*.c cron/*.c scripts/bin/*.c gateway-lite/*.c 2>/dev/null)
HDR=$(ls lib/*/*.h features/*.h features/*/*.h 2>/dev/null)
rc=0
echo "lint: cppcheck"
cppcheck --quiet --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
  --suppress=missingIncludeSystem --std=c11 -D_DEFAULT_SOURCE -Ilib -I. $SRC || rc=1
echo "lint: clang-tidy"
# One file per run: clang-tidy 14 given many files reports false vsnprintf findings.
for f in $SRC; do
  clang-tidy --quiet "$f" -- -std=c11 -D_DEFAULT_SOURCE -Ilib -I. -isystem /usr/include/postgresql \
    -DGH_VERSION='"lint"' 2>/dev/null | grep -E 'warning:|error:' && rc=1
done
echo "lint: clang-format"
clang-format --dry-run --Werror $SRC $HDR test/unit/*.c 2>&1 | grep -E 'error|warning' | head -20 && rc=1
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
