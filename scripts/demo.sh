#!/usr/bin/env bash
# The rlhf.c demo: the embedded default task (arith, with a gold verifier),
# from nothing to an aligned model.
#   stage 1  SFT of a tiny byte-level model from scratch on a noisy teacher's
#            answers (30% wrong: dropped carries, swapped digits, off-by-one)
#   stage 2  offline alignment from the SFT model: preference pairs built by
#            sampling it and judging with the verifier, beside the teacher's
#            pairs; DPO, DPO + NLL on chosen, SimPO, IPO; a reward model
#   stage 3  online RL from the SFT model: GRPO with the verifier, PPO with
#            the stage-2 reward model
# Each row: greedy accuracy, sampled accuracy (T=1: the expected gold reward),
# KL to the SFT model, seconds.
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
# threads that wait sleep instead of spinning: on a machine shared with other
# jobs spinning OpenMP barriers slow a run down 10x or more
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ "${DEMO_QUICK:-0}" = 1 ]; then
    N_TRAIN=2000; SFT_STEPS=40; N_EVAL=50; K=2; N_PROMPTS=64; DPO_STEPS=5; RM_STEPS=5
    GRPO_STEPS=3; PPO_STEPS=3; STAGES=${DEMO_STAGES:-3}
else
    N_TRAIN=30000; SFT_STEPS=2500; N_EVAL=500; K=4; N_PROMPTS=2000; DPO_STEPS=150
    RM_STEPS=400; GRPO_STEPS=500; PPO_STEPS=100; STAGES=${DEMO_STAGES:-3}
fi

rm -rf "$DIR"
mkdir -p "$DIR"
stages=()
rows=()

# run_eval NAME MODEL SECONDS NOTE: scores MODEL on the held-out set, adds a row
run_eval() {
    local name=$1 model=$2 secs=$3 note=${4:-} line acc sacc kl ref=()
    [ "$name" != sft ] && ref=(--ref_model "$DIR/sft")
    line=$($RLHF eval --task arith --model "$model" --data "$DIR/data/eval.jsonl" \
        --limit "$N_EVAL" --samples_per_prompt "$K" --seed 1 "${ref[@]}")
    acc=$(printf '%s' "$line" | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p')
    sacc=$(printf '%s' "$line" | sed -n 's/.*"sampled_accuracy":\([0-9.]*\).*/\1/p')
    kl=$(printf '%s' "$line" | sed -n 's/.*"kl":\(-*[0-9.]*\).*/\1/p')
    [ -z "$kl" ] && kl=0
    stages+=("{\"name\": \"$name\", \"accuracy\": $acc, \"sampled_accuracy\": $sacc, \"kl_to_sft\": $kl, \"seconds\": $secs, \"run_dir\": \"$model\", \"note\": \"$note\"}")
    rows+=("$(printf '%-10s %9s %17s %9.3f %8s  %s' "$name" "$acc" "$sacc" "$kl" "$secs" "$note")")
}

echo "== stage 0: data — addition of 1-2 digit numbers; the teacher is wrong 30% of the time"
$RLHF data --task arith --out "$DIR/data" --digits 1-2 --ops + --n_train "$N_TRAIN" \
    --n_eval "$N_EVAL" --n_prompts "$N_PROMPTS" --n_pref 2000

echo "== stage 1: SFT of a tiny byte-level model (0.86M parameters) from scratch"
t0=$(date +%s)
$RLHF sft --model tiny --data "$DIR/data/sft.jsonl" --output_dir "$DIR/sft" \
    --max_steps "$SFT_STEPS" --batch_size 64 --learning_rate 2e-3 --warmup_ratio 0.02 \
    --lr_scheduler_type cosine --logging_steps 100 --save_steps 0
t1=$(date +%s)
run_eval sft "$DIR/sft" $((t1 - t0)) "from scratch"

if [ "$STAGES" -ge 2 ]; then
    echo "== stage 2: preference pairs from the SFT model's own samples, judged by the verifier"
    t0=$(date +%s)
    $RLHF pairs --model "$DIR/sft" --prompts "$DIR/data/prompts.jsonl" --task arith \
        --num_samples 4 --out "$DIR/data/onpolicy_pairs.jsonl"
    # the DPO family trains on the on-policy pairs; the reward model also sees the teacher's
    cat "$DIR/data/onpolicy_pairs.jsonl" "$DIR/data/prefs.jsonl" > "$DIR/data/pairs.jsonl"
    t_pairs=$(($(date +%s) - t0))
    # name loss_type weights learning_rate beta note
    while read -r name loss weights lr beta note; do
        echo "== stage 2: $name ($loss)"
        t0=$(date +%s)
        $RLHF dpo --model "$DIR/sft" --data "$DIR/data/onpolicy_pairs.jsonl" --output_dir "$DIR/$name" \
            --loss_type "$loss" --loss_weights "$weights" --learning_rate "$lr" --beta "$beta" \
            --max_steps "$DPO_STEPS" --batch_size 32 --lr_scheduler_type cosine \
            --precompute_ref_log_probs --kl_prompts 0 --save_steps 0 --logging_steps 25
        run_eval "$name" "$DIR/$name" $(($(date +%s) - t0 + t_pairs)) "$note"
    done <<EOT
dpo sigmoid,sft 0.5,1 3e-4 0.1 chosen_recipe:DPO+NLL_on_chosen
dpo_plain sigmoid 1 2e-4 0.1 plain_DPO
simpo simpo 1 2e-4 2.0 SimPO
ipo ipo 1 2e-4 0.1 IPO
EOT
    echo "== stage 2: reward model (for PPO) on the teacher's and the on-policy pairs"
    t0=$(date +%s)
    $RLHF rm --model "$DIR/sft" --data "$DIR/data/pairs.jsonl" --output_dir "$DIR/rm" \
        --max_steps "$RM_STEPS" --batch_size 32 --learning_rate 1e-3 --eval_split 0.05 \
        --lr_scheduler_type cosine --save_steps 0 --quiet
    rm_acc=$(sed -n 's/.*"eval_accuracy":[[:space:]]*\([0-9.]*\).*/\1/p' "$DIR/rm/summary.json")
    rm_acc=$(printf "%.3f" "${rm_acc:-0}")
    echo "reward model held-out pair accuracy: $rm_acc ($(($(date +%s) - t0)) s)"
fi

if [ "$STAGES" -ge 3 ]; then
    echo "== stage 3: GRPO with the verifier"
    t0=$(date +%s)
    $RLHF grpo --model "$DIR/sft" --data "$DIR/data/prompts.jsonl" --task arith \
        --output_dir "$DIR/grpo" --max_steps "$GRPO_STEPS" --batch_size 16 --num_generations 8 \
        --max_new_tokens 8 --learning_rate 5e-4 --beta 0.04 --lr_scheduler_type cosine \
        --save_steps 0 --quiet
    run_eval grpo "$DIR/grpo" $(($(date +%s) - t0)) "verifier_reward"
    echo "== stage 3: PPO with the stage-2 reward model"
    t0=$(date +%s)
    $RLHF ppo --model "$DIR/sft" --data "$DIR/data/prompts.jsonl" --reward_model "$DIR/rm" \
        --output_dir "$DIR/ppo" --max_steps "$PPO_STEPS" --batch_size 16 --num_generations 4 \
        --max_new_tokens 8 --learning_rate 3e-5 --beta 0.1 --save_steps 0 --quiet
    run_eval ppo "$DIR/ppo" $(($(date +%s) - t0)) "reward_model(acc_${rm_acc:-?})"
fi

{
    printf '{\n  "task": "arith",\n  "stages": [\n'
    for i in "${!stages[@]}"; do
        printf '    %s%s\n' "${stages[$i]}" "$([ "$i" -lt $((${#stages[@]} - 1)) ] && echo ,)"
    done
    printf '  ]\n}\n'
} > "$DIR/summary.json"

echo
echo "held-out accuracy on $N_EVAL arith problems (greedy; sampled: T=1, $K samples each)"
printf '%-10s %9s %17s %9s %8s  %s\n' stage accuracy sampled_accuracy kl_to_sft seconds note
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "run directories: $DIR/{sft,dpo,dpo_plain,simpo,ipo,rm,grpo,ppo}   summary: $DIR/summary.json"
