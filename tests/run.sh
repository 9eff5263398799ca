#!/usr/bin/env bash
# Runs cmocka test binaries from the repository root, then prints one summary line:
# "N passed, N failed, N skipped" counted over test cases (a binary that crashes counts as one failure;
# skipped ones, e.g. GPU tests on a machine without a GPU, are listed by name).
set -u
passed=0; failed=0; skipped=0; bad=(); skipped_names=()
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[ *(PASSED|FAILED|  OK|ERROR) *\]|^\[  SKIPPED|mmgpt-test:' || true
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  k=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${k:-0}))
  if [ "${k:-0}" -gt 0 ]; then
    skipped_names+=($(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([a-zA-Z_][a-zA-Z0-9_]*\)$/\1/p' | sort -u))
  fi
  if [ $rc -ne 0 ]; then
    [ -z "${f:-}" ] && failed=$((failed + 1))
    bad+=("$t")
    printf '%s\n' "$out" | tail -30
  fi
done
[ ${#bad[@]} -gt 0 ] && echo "failing: ${bad[*]}"
[ ${#skipped_names[@]} -gt 0 ] && echo "skipped: ${skipped_names[*]}"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ ${#bad[@]} -eq 0 ]
