"""The attack stage of `specrob verify` (.rspec path): the old default (PGD-20 with 2 random
restarts, PGD from the centre, FGSM) against the new one (the margin attack of
`specrob.search.query_attack`: one restart per wrong class j maximising f_j - f_y, APGD-like
step halving, 100 steps; then PGD-20 with 10 restarts, PGD from the centre and FGSM on what
is left).

Per eps: confirmed counterexamples (snapped into ball ∩ domain, re-checked on onnxruntime and
in float64) found by each, whether the new set contains the old, and the CPU time of the
stage (time.process_time, one thread; repeats interleaved, order alternating; median).

    python benchmarks/bench_verify_attack.py [--model runs/bench/digits-mlp/model.onnx]
        [--eps 0.05,0.1] [--repeat 3] [--points N] [--data fashion-mnist]

Without --model, the digits MLP (examples/digits_mlp.py) is trained for 5 epochs with
`specrob train --regime baseline` into runs/bench/digits-mlp/ (once).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from specrob.data import load_data  # noqa: E402
from specrob.estimate.evaluation import select_centres  # noqa: E402
from specrob.lang.loader import load, overrides_from_cli  # noqa: E402
from specrob.network import load_onnx_checked  # noqa: E402
from specrob.verification.pipeline import Verifier, VerifyConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"old (pgd 20x2)": dict(attack="pgd", restarts=2),
           "new (margin + pgd 20x10)": dict(attack="margin", restarts=10)}


def trained_model() -> Path:
    out = ROOT / "runs" / "bench" / "digits-mlp"
    if not (out / "model.onnx").exists():
        subprocess.run([sys.executable, "-m", "specrob", "train", "examples/digits_mlp.py",
                        "specs/cr.rspec", "--regime", "baseline", "--epochs", "5", "--out",
                        str(out), "--quiet"], cwd=ROOT, check=True)
    return out / "model.onnx"


def attack(model: Path, net, module, eps: float, config: dict, points: int | None,
           data: str = "digits"):
    prop = load(ROOT / "specs" / "cr.rspec", overrides_from_cli([f"eps={eps}"])).properties[0]
    x0, y, _ = select_centres(prop.centres, load_data(data), module, points)
    verifier = Verifier(prop, model, net, module, x0, y, VerifyConfig(**config))
    todo = list(range(len(y)))
    queries, _ = verifier.encode(todo)
    start = time.process_time()
    verifier.attack_stage(todo, queries)
    seconds = time.process_time() - start
    return {i for i, row in verifier.done.items() if row["verdict"] == "falsified"}, seconds, len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--eps", default="0.05,0.1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--points", type=int, default=None)
    parser.add_argument("--data", default="digits", help="the model's data, e.g. fashion-mnist")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = args.model or trained_model()
    net, module = load_onnx_checked(model)
    print(f"model {model}; CR, l_inf, centres: the {args.data} test split", flush=True)
    for eps in (float(e) for e in args.eps.split(",")):
        times = {name: [] for name in CONFIGS}
        found = {}
        for r in range(args.repeat):
            names = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
            for name in names:
                found[name], seconds, total = attack(model, net, module, eps, CONFIGS[name],
                                                     args.points, args.data)
                times[name].append(seconds)
        old, new = (found[n] for n in CONFIGS)
        for name in CONFIGS:
            print(f"eps {eps:g}: {name:<26} {len(found[name]):4d} / {total} falsified, "
                  f"CPU {statistics.median(times[name]):6.2f} s (median of {args.repeat}: "
                  + ", ".join(f"{t:.2f}" for t in times[name]) + ")")
        print(f"eps {eps:g}: new contains old: {old <= new}; only new {len(new - old)}, "
              f"only old {len(old - new)}")


if __name__ == "__main__":
    main()
