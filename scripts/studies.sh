#!/usr/bin/env bash
# make studies: every study's full version, one after another, on one shared
# sandbox base (data + starting policy, made once), then docs/findings.md (the
# table of verdicts) and docs/img/<study>.svg (each report's first plot).
#
#   STUDIES_DIR=runs/studies   where the studies' folders go
#   STUDIES="par vpo"          only these (default: every study, rlhf study --list)
#   STUDY_FLAGS="--seeds 5"    passed to every study
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RLHF=$BUILD/rlhf
DIR=${STUDIES_DIR:-runs/studies}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
names=${STUDIES:-$($RLHF study --list | awk '{print $1}')}
mkdir -p "$DIR" docs/img
for n in $names; do
    echo "== study $n"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    $RLHF study "$n" --out "$DIR/$n" --base "$DIR/base" --overwrite_output_dir ${STUDY_FLAGS:-} \
        | tail -n 1
    echo "   $(($(date +%s) - t0)) s"
    [ -f "$DIR/$n/figure.svg" ] && cp "$DIR/$n/figure.svg" "docs/img/$n.svg"
done
{
    cat <<'HEAD'
# Findings: the seed papers' claims on the gold-reward sandbox

Written by `make studies` (scripts/studies.sh) from each study's
`verdict.json`: the verdict is computed from the study's own results (seeds
as replicates: supported when the per-seed difference the claim predicts is
positive by at least two standard errors, not supported when it is negative
by two, inconclusive otherwise; docs/studies.md), never written by hand. Each
study's `report.html` (plots, every row) is in its folder under
`runs/studies/`; what did not reproduce and why: docs/studies.md, "What the
full runs found".

HEAD
    $RLHF study --findings "$DIR"
    echo
    echo "![Gold reward against sqrt(KL) for DPO, IPO, SLiC and best-of-n](img/overoptimization.svg)"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
         "OMP_NUM_THREADS=$OMP_NUM_THREADS, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $(date -u +%Y-%m-%d)."
} > docs/findings.md.tmp
mv docs/findings.md.tmp docs/findings.md
echo "wrote docs/findings.md"
