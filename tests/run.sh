#!/usr/bin/env bash
# Runs cmocka test binaries from the repository root, then prints one summary line:
# "N passed, N failed" counted over test cases (a binary that crashes counts as one failure).
set -u
passed=0; failed=0; bad=()
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[ *(PASSED|FAILED|  OK|ERROR) *\]|^\[  SKIPPED|mmgpt-test:' || true
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ]; then
    [ -z "${f:-}" ] && failed=$((failed + 1))
    bad+=("$t")
    printf '%s\n' "$out" | tail -30
  fi
done
[ ${#bad[@]} -gt 0 ] && echo "failing: ${bad[*]}"
echo "${passed} passed, ${failed} failed"
[ ${#bad[@]} -eq 0 ]
