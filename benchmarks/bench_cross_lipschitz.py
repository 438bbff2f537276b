"""The Cross-Lipschitz regulariser (Hein & Andriushchenko 2017; the cross-lipschitz regime):
its per-class input gradients by one vmapped backward pass (`is_grads_batched`, specrob's
default) against K separate backward passes (the straightforward way, as the authors' released
TensorFlow code takes them), inside a full training step (forward, CE + 0.1·Omega, backward,
Adam step). Both sides are checked to give the same Omega and the same weight gradients first.
CPU time, sides interleaved, min and median ratios.

    python benchmarks/bench_cross_lipschitz.py [--repeat 30] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from specrob.training.regularisers import cross_lipschitz  # noqa: E402
from common import cpu_times, ratio_summary  # noqa: E402 - benchmarks/ is on sys.path when run


def nets():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    yield "MLP 784-256-256-10 (the Tibo page's f)", mlp
    from specrob.network.model_file import build_model
    from specrob.resources import examples_dir
    yield "convnet conv32-conv64-FC200 (examples/shaham_convnet.py)", build_model(
        examples_dir() / "shaham_convnet.py", 784, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, net in nets():
        x = torch.rand(args.batch, 784)
        y = torch.randint(0, 10, (args.batch,))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def loss(batched: bool):
            xx = x.clone().requires_grad_(True)
            logits = net(xx)
            return F.cross_entropy(logits, y) + 0.1 * cross_lipschitz(logits, xx,
                                                                      batched=batched)

        grads = []
        for batched in (True, False):  # same value, same gradient
            net.zero_grad()
            value = loss(batched)
            value.backward()
            grads.append((value.item(), [p.grad.clone() for p in net.parameters()]))
        assert abs(grads[0][0] - grads[1][0]) <= 1e-5 * abs(grads[1][0]), grads
        for a, b in zip(grads[0][1], grads[1][1]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)

        def step(batched: bool):
            def run():
                opt.zero_grad()
                loss(batched).backward()
                opt.step()
            return run
        batched, looped = cpu_times(step(True), step(False), args.repeat)
        print(f"{name}, batch {args.batch}: batched {statistics.median(batched) * 1e3:.1f} ms, "
              f"K passes {statistics.median(looped) * 1e3:.1f} ms a step (median); "
              f"batched / K passes: {ratio_summary(batched, looped)}")


if __name__ == "__main__":
    main()
