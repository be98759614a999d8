"""rlhf: the Python binding of rlhf.c — standard library only (ctypes over
librlhf.so; see docs/python.md).

    import rlhf
    rlhf.run("data", task="arith", out="runs/data")
    sft = rlhf.train("sft", model="tiny", data="runs/data/sft.jsonl",
                     output_dir="runs/sft", max_steps=200)
    with rlhf.Model(sft.output_dir) as m:
        print(m.generate("12+7=", temperature=0))
        print(m.logprobs("12+7=", "19").sum)
    with rlhf.RewardModel("runs/rm") as rm:
        print(rm.score("12+7=", "19"))

Model, RewardModel: loaded once, used many times (close() or `with` frees them).
train(command, **flags) -> Run; run(command, *args, **flags) -> Result; both
run the CLI's own code in this process, keyword arguments being its flags.
"""
from ._lib import RlhfError, library_path
from .commands import Result, Run, argv, run, train
from .models import Completion, LogProbs, Model, RewardModel

__all__ = ["Model", "RewardModel", "LogProbs", "Completion", "Run", "Result", "RlhfError",
           "train", "run", "argv", "library_path"]
__version__ = "0.1.0"
