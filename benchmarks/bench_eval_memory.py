"""Peak memory of `specrob eval` as the number of centres grows.

Runs `specrob eval MODEL specs/cr.rspec --data fashion-mnist --points N` (default settings:
6 radii, PGD-20 x 2 restarts, PGD from the centre, FGSM, 100 uniform samples per centre for
constraint accuracy) in a fresh process per N and reads that process's peak resident set size
from the kernel (`os.wait4`'s ru_maxrss): what a user's machine has to hold. Memory is not
time: one run per N is enough (rerun to see the spread); CPU seconds are printed beside it.

Without MODEL, the seed-003 network (examples/fashion_mnist_net.py) is trained for one epoch
first (baseline regime). Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`).

    python benchmarks/bench_eval_memory.py [--points 100 1000 10000] [--model model.onnx]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak(command: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MB, user + system CPU seconds, exit code) of one child process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.stderr.write(child.stderr.read().decode() if child.stderr else "")
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-eval-memory-"))
    model = args.model
    if model is None:
        model = work / "train" / "model.onnx"
        _, seconds, code = peak([sys.executable, "-m", "specrob", "train",
                                 "examples/fashion_mnist_net.py", "specs/cr.rspec", "--data",
                                 "fashion-mnist", "--epochs", "1", "--regime", "baseline",
                                 "--out", str(work / "train")])
        if code:
            sys.exit("training the benchmark model failed (is Fashion-MNIST installed?)")
    print(f"specrob eval {model} specs/cr.rspec --data fashion-mnist --points N")
    print(f"{'points':>8} {'peak RSS (MB)':>14} {'CPU (s)':>9}")
    for n in args.points:
        rss, seconds, code = peak([sys.executable, "-m", "specrob", "eval", str(model),
                                   "specs/cr.rspec", "--data", "fashion-mnist", "--points",
                                   str(n), "--out", str(work / f"eval-{n}"), "--fresh"])
        print(f"{n:>8} {rss:>14.0f} {seconds:>9.1f}" + ("" if code == 0 else f"  exit {code}"))


if __name__ == "__main__":
    main()
