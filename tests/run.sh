#!/usr/bin/env bash
# Runs every test: the C test binaries (build/tests/test_*) and the Python
# checks (tests/*_test.py, with Debian's /usr/bin/python3; those that need
# python3-torch print SKIP where it is missing).
# Each prints PASS/FAIL/SKIP lines; this script counts them and ends with
# "N passed, N failed, N skipped". Exit status is non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# threads that wait sleep instead of spinning: on a machine shared with other
# jobs spinning OpenMP barriers slow a run down 10x or more
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# the GEMM paths in their built-in order, not measured (src/nn/gemm.c): the same numbers
# on every CPU of a kind, and no cache file written; gemm_paths_test.py tests the measured
# choice and runs the parity tests on every path. RLHF_GEMM=blas make test runs all on one.
export RLHF_GEMM=${RLHF_GEMM:-fixed}
PY=/usr/bin/python3
log=$(mktemp)
pass=0; fail=0; skip=0
run_one() {  # name, command...
    local name=$1; shift
    local t0=$(date +%s.%N)
    local out
    out=$("$@" 2>&1); local rc=$?
    local t1=$(date +%s.%N)
    printf '%s\n' "$out" >> "$log"
    local p=$(printf '%s\n' "$out" | grep -c '^PASS ')
    local f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
    local s=$(printf '%s\n' "$out" | grep -c '^SKIP ')
    if [ $rc -ne 0 ] && [ $f -eq 0 ]; then f=1; out="$out
FAIL $name: exited with status $rc"; fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    printf '%-40s %3d passed %3d failed %3d skipped  %5.1fs\n' "$name" $p $f $s "$(awk "BEGIN{print $t1 - $t0}")"
    if [ $f -ne 0 ]; then printf '%s\n' "$out" | grep -v '^PASS ' | sed 's/^/    /'; fi
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/*_test.py; do
    [ -f "$t" ] || continue
    if [ ! -x $PY ]; then
        skip=$((skip + 1)); printf '%-40s skipped: no /usr/bin/python3\n' "$(basename "$t")"
        continue
    fi
    run_one "$(basename "$t")" $PY "$t"
done
rm -f "$log"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
