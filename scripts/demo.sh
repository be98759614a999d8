#!/usr/bin/env bash
# The rlhf.c demo: the embedded default task (arith, with a gold verifier),
# from nothing to an aligned model. Stage 1: make the data, then train a tiny
# byte-level model from scratch by SFT on a noisy teacher's answers, and
# measure held-out accuracy. (Later stages align it: DPO, then online RL.)
#
#   make demo                    (this script)
#   DEMO_DIR=runs/demo           where everything goes
#   DEMO_QUICK=1                 a seconds-long smoke version (used by the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RLHF=$BUILD/rlhf
DIR=${DEMO_DIR:-runs/demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ "${DEMO_QUICK:-0}" = 1 ]; then
    N_TRAIN=2000; SFT_STEPS=40; N_EVAL=50; K=2
else
    N_TRAIN=30000; SFT_STEPS=2500; N_EVAL=500; K=4
fi

rm -rf "$DIR"
mkdir -p "$DIR"
stages=()
rows=()

# run_eval NAME MODEL SECONDS: scores MODEL on the held-out set, adds a row
run_eval() {
    local name=$1 model=$2 secs=$3 line acc sacc
    line=$($RLHF eval --task arith --model "$model" --data "$DIR/data/eval.jsonl" \
        --limit "$N_EVAL" --samples_per_prompt "$K" --seed 1)
    acc=$(printf '%s' "$line" | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p')
    sacc=$(printf '%s' "$line" | sed -n 's/.*"sampled_accuracy":\([0-9.]*\).*/\1/p')
    stages+=("{\"name\": \"$name\", \"accuracy\": $acc, \"sampled_accuracy\": $sacc, \"seconds\": $secs, \"run_dir\": \"$model\"}")
    rows+=("$(printf '%-8s %9s %17s %8s' "$name" "$acc" "$sacc" "$secs")")
}

echo "== stage 0: data — arith with 1-2 digit operands; the teacher is wrong 30% of the time"
$RLHF data --task arith --out "$DIR/data" --digits 1-2 --n_train "$N_TRAIN" --n_eval "$N_EVAL"

echo "== stage 1: SFT of a tiny byte-level model (0.86M parameters) from scratch"
t0=$(date +%s)
$RLHF sft --model tiny --data "$DIR/data/sft.jsonl" --output_dir "$DIR/sft" \
    --max_steps "$SFT_STEPS" --batch_size 64 --learning_rate 2e-3 --warmup_ratio 0.02 \
    --lr_scheduler_type cosine --logging_steps 100 --save_steps 0 --seed 1
t1=$(date +%s)
run_eval sft "$DIR/sft" $((t1 - t0))

{
    printf '{\n  "task": "arith",\n  "stages": [\n'
    for i in "${!stages[@]}"; do
        printf '    %s%s\n' "${stages[$i]}" "$([ "$i" -lt $((${#stages[@]} - 1)) ] && echo ,)"
    done
    printf '  ]\n}\n'
} > "$DIR/summary.json"

echo
echo "held-out accuracy on $N_EVAL arith problems (greedy; sampled: T=1, $K samples each)"
printf '%-8s %9s %17s %8s\n' stage accuracy sampled_accuracy seconds
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "run directories: $DIR/sft   summary: $DIR/summary.json"
