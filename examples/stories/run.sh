#!/usr/bin/env bash
# Aligning a real checkpoint: llama2.c's stories260K (TinyStories) learns to
# write stories that mention a dog, judged by a small external program
# (judge_word.py). Before/after rates of the preferred behaviour, for GRPO and
# for DPO on pairs built by sampling the model and asking the judge.
#   bash examples/stories/run.sh          (needs ../shared/data/llama2c)
set -euo pipefail
cd "$(dirname "$0")/../.."
RLHF=${BUILD:-build}/rlhf
D=${SHARED_DATA:-../shared/data}/llama2c
OUT=${OUT:-runs/stories}
JUDGE="python3 examples/stories/judge_word.py dog"
MODEL="--model $D/stories260K.bin --tokenizer $D/tok512.bin"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT"

# rate MODEL_FLAGS...: share of 80 sampled stories (8 per prompt) that mention a dog
rate() {
    "$RLHF" generate "$@" --prompts examples/stories/prompts.jsonl --num_return_sequences 8 \
        --max_new_tokens 64 --format jsonl --seed 7 > "$OUT/samples.jsonl"
    python3 -c 'import json,sys,subprocess
rows=[json.loads(l) for l in open(sys.argv[1])]
inp="".join(json.dumps({"prompt":r["prompt"],"completion":r["completion"]})+"\n" for r in rows)
out=subprocess.run(sys.argv[2], shell=True, input=inp, capture_output=True, text=True).stdout.split()
print(f"{sum(float(x) for x in out)/len(rows):.3f}")' "$OUT/samples.jsonl" "$JUDGE"
}

before=$(rate $MODEL)
echo "stories mentioning a dog, before: $before"

# GRPO with the judge as the reward
"$RLHF" grpo $MODEL --data examples/stories/prompts.jsonl --reward_command "$JUDGE" \
    --output_dir "$OUT/grpo" --max_steps 40 --batch_size 10 --num_generations 8 \
    --max_new_tokens 64 --learning_rate 5e-4 --beta 0.04 --save_steps 0 --quiet
after_grpo=$(rate --model "$OUT/grpo" --tokenizer $D/tok512.bin)

# DPO: sample 64 stories per prompt, the judge picks chosen (a dog) and rejected (none)
"$RLHF" pairs $MODEL --prompts examples/stories/prompts.jsonl --reward_command "$JUDGE" \
    --num_samples 64 --max_new_tokens 64 --out "$OUT/pairs.jsonl"
for i in 1 2 3 4 5; do cat "$OUT/pairs.jsonl"; done > "$OUT/pairs5.jsonl"   # a few epochs' worth
"$RLHF" dpo $MODEL --data "$OUT/pairs5.jsonl" --output_dir "$OUT/dpo" --max_steps 100 \
    --batch_size 8 --learning_rate 1e-3 --beta 0.1 --kl_prompts 0 --save_steps 0 --quiet
after_dpo=$(rate --model "$OUT/dpo" --tokenizer $D/tok512.bin)

printf '\n%-10s %s\n' method "share of stories mentioning a dog"
printf '%-10s %s\n' before "$before" GRPO "$after_grpo" DPO "$after_dpo"
