# rlhf.c from Python, notebook style: each `# %%` starts a cell (VS Code,
# Jupyter's jupytext, Spyder run them one by one; `python3 examples/python_notebook.py`
# runs them all). The binding is standard library only (ctypes over librlhf.so);
# install it first (docs/python.md):
#
#   make
#   python3 -m venv --system-site-packages /tmp/rlhf-env
#   /tmp/rlhf-env/bin/pip install --no-index --no-build-isolation ./python
#   /tmp/rlhf-env/bin/python examples/python_notebook.py
#
# The walk-through: make the arithmetic task's data, SFT a tiny byte-level model
# from scratch, sample from it, score answers with log-probs and a reward model,
# then improve it with DPO on its own judged samples, and print the metrics.
# NOTEBOOK_SCALE (default 1) multiplies the step counts; NOTEBOOK_OUT is the
# folder for everything (default runs/notebook). At scale 1 it took 35 s of CPU
# (one thread) on the project's 2-core machine.

# %% setup
import json
import os

import rlhf

SCALE = float(os.environ.get("NOTEBOOK_SCALE", "1"))
OUT = os.environ.get("NOTEBOOK_OUT", "runs/notebook")
os.makedirs(OUT, exist_ok=True)


def steps(n):
    return max(2, int(n * SCALE))


BATCH = 64 if SCALE >= 0.5 else 8  # a quick run (the test's) also takes small batches


print("librlhf:", rlhf.library_path())
# every rlhf command is a function call; the keyword arguments are its flags
print("rlhf sft flags for this call:", rlhf.argv("sft", model="tiny", max_steps=10, packing=True))

# %% 1. data: additions of 1-2 digit numbers, a teacher that is wrong 30% of the time
data = os.path.join(OUT, "data")
rlhf.run("data", task="arith", out=data, digits="1-2", ops="+", n_train=steps(4000),
         n_eval=steps(100), n_prompts=steps(256), n_pref=steps(1000))
print(sorted(os.listdir(data)))
with open(os.path.join(data, "sft.jsonl")) as f:
    print("an SFT example:", f.readline().strip())

# %% 2. SFT a tiny model (0.86M parameters) from scratch
sft = rlhf.train("sft", model="tiny", data=os.path.join(data, "sft.jsonl"),
                 output_dir=os.path.join(OUT, "sft"), overwrite_output_dir=True,
                 max_steps=steps(600), batch_size=BATCH, learning_rate=2e-3, warmup_ratio=0.02,
                 lr_scheduler_type="cosine", logging_steps=steps(100), save_steps=0, quiet=True)
for row in sft.metrics:
    print(f"step {row['step']:5d}  loss {row['loss']:.4f}  lr {row['learning_rate']:.2e}")


# %% 3. generate: greedy and sampled answers
def accuracy(run_dir):
    """Held-out accuracy from `rlhf eval` (its JSON line on stdout)."""
    res = rlhf.run("eval", task="arith", model=run_dir, data=os.path.join(data, "eval.jsonl"))
    return json.loads(res.stdout.strip().splitlines()[-1])


with rlhf.Model(sft.output_dir) as model:
    for p in ["12+7=", "3+45=", "60+9="]:
        greedy = model.generate(p, temperature=0, max_new_tokens=8)
        sampled = model.generate(p, temperature=1.0, num_return_sequences=3, seed=7, max_new_tokens=8)
        print(f"{p:7s} greedy {greedy!r:8s} sampled {sampled}")
before = accuracy(sft.output_dir)
print("SFT held-out accuracy:", before["accuracy"], "sampled:", before["sampled_accuracy"])

# %% 4. log-probs: how likely the model finds a right and a wrong answer
with rlhf.Model(sft.output_dir) as model:
    right, wrong = model.logprobs(["12+7=", "12+7="], ["19", "91"])
    print(f"log p(19 | 12+7=) = {right.sum:.3f}  per token {[round(x, 3) for x in right.logprobs]}")
    print(f"log p(91 | 12+7=) = {wrong.sum:.3f}")

# %% 5. preference pairs from the model's own samples (judged by the task's verifier),
# and a reward model trained on them
pairs = os.path.join(data, "onpolicy_pairs.jsonl")
rlhf.run("pairs", model=sft.output_dir, prompts=os.path.join(data, "prompts.jsonl"),
         task="arith", num_samples=4, out=pairs)
rm = rlhf.train("rm", model=sft.output_dir, data=os.path.join(data, "prefs.jsonl"),
                output_dir=os.path.join(OUT, "rm"), overwrite_output_dir=True,
                max_steps=steps(150), batch_size=BATCH // 2, learning_rate=1e-3, save_steps=0, quiet=True)
print("reward model:", rm.metrics[-1])
with rlhf.RewardModel(rm.output_dir) as scorer:
    print("rewards of 12+7= -> 19, 91, 20:", scorer.score(["12+7="] * 3, ["19", "91", "20"]))

# %% 6. DPO (+ NLL on the chosen answers) on the on-policy pairs
dpo = rlhf.train("dpo", model=sft.output_dir, data=pairs, output_dir=os.path.join(OUT, "dpo"),
                 overwrite_output_dir=True, loss_type=["sigmoid", "sft"], loss_weights=[0.5, 1],
                 learning_rate=3e-4, beta=0.1, max_steps=steps(60), batch_size=BATCH // 2,
                 lr_scheduler_type="cosine", precompute_ref_log_probs=True, kl_prompts=0, save_steps=0,
                 logging_steps=steps(10), quiet=True)
for row in dpo.metrics:
    if "loss" in row:
        print(f"step {row['step']:4d}  loss {row['loss']:.4f}  "
              f"reward margin {row.get('rewards/margins', float('nan')):.4f}")

# %% 7. before and after
after = accuracy(dpo.output_dir)
print(f"held-out accuracy  SFT {before['accuracy']:.3f} -> DPO {after['accuracy']:.3f}")
print(f"sampled accuracy   SFT {before['sampled_accuracy']:.3f} -> DPO {after['sampled_accuracy']:.3f}")
print("run folders:", sft.output_dir, rm.output_dir, dpo.output_dir)
