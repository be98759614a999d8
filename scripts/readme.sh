#!/bin/bash
# `make readme`: runs the README's "Use" example (its first sh block after "## Use") as
# written, in a scratch folder beside the repository (build/ and python/ linked into it),
# stopping at the first command that fails. About 75 minutes on a loaded 2-core machine: the
# studies in it take most of that. Not part of `make test`.
#   READMEDIR=DIR  where to run (default: $BUILD/readme; its runs/ is removed first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
DIR=${READMEDIR:-$BUILD/readme}
script=$DIR/use.sh
mkdir -p "$DIR"
# the block: from the first ```sh after "## Use" to its closing ```
awk '/^## Use/{use=1} use && /^```sh/{inb=1; next} inb && /^```/{exit} inb' README.md > "$script"
if [ ! -s "$script" ]; then
    echo "readme: no sh block after \"## Use\" in README.md" >&2
    exit 1
fi
# ctrl's MuJoCo-free lines need nothing more; the MPI line needs build/rlhf-mpi
[ -x "$BUILD/rlhf-mpi" ] || { echo "readme: $BUILD/rlhf-mpi not built (make)" >&2; exit 1; }
BUILD_ABS=$(cd "$BUILD" && pwd)
cd "$DIR"
rm -rf runs
ln -sfn "$BUILD_ABS" build
ln -sfn "$ROOT/python" python
echo "readme: running $(grep -c '^build/rlhf\|^OMP_NUM_THREADS\|^runs/venv\|^/usr/bin/python3' use.sh) commands of README.md's Use block in $DIR"
start=$(date +%s)
# every command echoed (-x) so a failure names its line; job control for `kill %1`
if OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 bash -xeuo pipefail use.sh > use.log 2>&1; then
    echo "readme: every command ran ($(( $(date +%s) - start )) s; log $DIR/use.log)"
else
    rc=$?
    echo "readme: FAILED (exit $rc) after $(( $(date +%s) - start )) s; the end of $DIR/use.log:" >&2
    tail -n 30 use.log >&2
    exit 1
fi
