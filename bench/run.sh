#!/usr/bin/env bash
# bench/run.sh — rlhf.c and PyTorch side by side, workload by workload.
#
#   BUILD=build bash bench/run.sh            (what `make bench` runs)
#   WORKS="sft fwd" bash bench/run.sh        a subset
#   MODEL=tiny bash bench/run.sh             a quick smoke run
#
# For each workload W both sides run in turn (never at the same time) with the
# same thread count:
#   $BUILD/rlhf bench --model $MODEL --seq $SEQ --batch $BATCH --work W
#   /usr/bin/python3 bench/torch_ref.py --model $MODEL --seq $SEQ --batch $BATCH --work W
# Each prints one JSON line; all lines go to $BUILD/bench.jsonl and a table is
# printed at the end. ratio = rlhf.c tokens/s / torch tokens/s (> 1: rlhf.c is
# faster); for grpo, ratio = torch total seconds / rlhf.c total seconds.
# A workload the C side does not support (non-zero exit, or no JSON line) is
# shown as "not implemented" and the run goes on.
set -u
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
WORKS=${WORKS:-sft fwd gen dpo grpo}
MODEL=${MODEL:-gpt2}
SEQ=${SEQ:-256}
BATCH=${BATCH:-4}
TORCH_ARGS=${TORCH_ARGS:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=/usr/bin/python3
OUT=$BUILD/bench.jsonl

mkdir -p "$BUILD"
: > "$OUT"

# Appends the last JSON line of $2 to $OUT, tagged with impl=$1 (and work=$3,
# status=$4 when the line is missing); keeps the file one JSON object a line.
record() {
    printf '%s\n' "$2" | "$PY" -c '
import json, sys
impl, work, status, out = sys.argv[1:5]
rec = None
for line in reversed(sys.stdin.read().splitlines()):
    line = line.strip()
    if line.startswith("{"):
        try:
            rec = json.loads(line)
            break
        except ValueError:
            pass
if status != "ok":
    rec = {"impl": impl, "work": work, "status": status}
elif rec is None:
    rec = {"impl": impl, "work": work, "status": "no JSON output"}
rec.setdefault("impl", impl)
rec.setdefault("work", work)
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
' "$1" "$3" "$4" "$OUT"
}

echo "bench: model $MODEL, seq $SEQ, batch $BATCH, OMP_NUM_THREADS=$OMP_NUM_THREADS, $(nproc) cores" >&2
for W in $WORKS; do
    echo "== $W: rlhf.c" >&2
    if [ -x "$BUILD/rlhf" ]; then
        c_out=$("$BUILD/rlhf" bench --model "$MODEL" --seq "$SEQ" --batch "$BATCH" --work "$W")
        rc=$?
    else
        c_out=""
        rc=127
        echo "   $BUILD/rlhf not built" >&2
    fi
    if [ $rc -eq 0 ]; then record rlhf.c "$c_out" "$W" ok
    else record rlhf.c "" "$W" "not implemented (exit $rc)"; fi

    echo "== $W: torch" >&2
    # shellcheck disable=SC2086
    t_out=$("$PY" bench/torch_ref.py --model "$MODEL" --seq "$SEQ" --batch "$BATCH" \
              --threads "$OMP_NUM_THREADS" --work "$W" $TORCH_ARGS)
    rc=$?
    if [ $rc -eq 0 ]; then record torch "$t_out" "$W" ok
    else record torch "" "$W" "failed (exit $rc)"; fi
done

"$PY" - "$OUT" "$WORKS" <<'EOF'
import json, sys
path, works = sys.argv[1], sys.argv[2].split()
rows = {}
for line in open(path):
    line = line.strip()
    if line:
        r = json.loads(line)
        rows[(r.get("impl"), r.get("work"))] = r

def ok(r):
    return r is not None and "status" not in r

def fmt(r, key):
    if r is None:
        return "-"
    if not ok(r):
        return r["status"].split(" (")[0]
    v = r.get(key)
    return "-" if v is None else ("%.4g" % v if isinstance(v, float) else str(v))

hdr = ("workload", "unit", "rlhf.c", "torch", "ratio")
table = [hdr]
for w in works:
    c, t = rows.get(("rlhf.c", w)), rows.get(("torch", w))
    if w == "grpo":
        key, unit = "total_s", "total s"
        ratio = (t[key] / c[key]) if ok(c) and ok(t) and c.get(key) and t.get(key) else None
    else:
        key, unit = "tokens_per_s", "tokens/s"
        ratio = (c[key] / t[key]) if ok(c) and ok(t) and c.get(key) and t.get(key) else None
    table.append((w, unit, fmt(c, key), fmt(t, key), "-" if ratio is None else "%.2fx" % ratio))
    if w == "dpo":
        table.append(("", "pairs/s", fmt(c, "pairs_per_s"), fmt(t, "pairs_per_s"), ""))
    if w == "grpo":
        for k in ("gen_s", "score_s", "ref_s", "update_s"):
            table.append(("", k, fmt(c, k), fmt(t, k), ""))
    if w in ("sft", "dpo", "fwd"):
        table.append(("", "GFLOP/s", fmt(c, "gflops"), fmt(t, "gflops"), ""))
widths = [max(len(str(row[i])) for row in table) for i in range(len(hdr))]
for i, row in enumerate(table):
    print("  ".join(str(x).ljust(widths[j]) if j < 2 else str(x).rjust(widths[j])
                    for j, x in enumerate(row)))
    if i == 0:
        print("  ".join("-" * wd for wd in widths))
print("ratio: rlhf.c / torch throughput (grpo: torch total s / rlhf.c total s); JSON lines in %s" % path)
import os
ctx = next((r for (impl, _), r in rows.items() if impl == "rlhf.c" and "cpu" in r), None)
if ctx:
    g = ctx.get("gemm", {})
    print("cpu: %s; GEMM paths: train %s, decode %s, attn %s (%s); OPENBLAS_CORETYPE=%s"
          % (ctx["cpu"], g.get("train"), g.get("decode"), g.get("attn"), g.get("how"),
             os.environ.get("OPENBLAS_CORETYPE", "(unset)")))
EOF
