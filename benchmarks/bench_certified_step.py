"""One certified-training step (`--regime certified --bound ibp --cert-loss ce`, CR at eps 0.1,
batch 128): specrob's general path (the property encoded per centre, its rows, IBP through the
fx-traced live network, the loss) against IBP hand-written for the same network in plain
PyTorch (Gowal et al.'s interval arithmetic layer by layer, the CR margins of the output
interval, the same cross-entropy of the worst-case margins). Both compute the same lower
bounds and loss, checked first; then forward and backward of the loss, CPU time, sides
interleaved, min and median ratios. Networks: the seed 003 784-100-10 clamp net and
examples/small_cnn.py, untrained (the cost does not depend on the weights).

    python benchmarks/bench_certified_step.py [--repeat 20] [--batch 128]
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import specrob  # noqa: E402
from specrob.logic.logics import make_logic  # noqa: E402
from specrob.network.model_file import build_model  # noqa: E402
from specrob.training.certified import CertifiedLoss  # noqa: E402
from common import cpu_times, ratio_summary  # noqa: E402 - benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parent.parent
SPEC = """property CR(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        forall j != y: f(x)[y] > f(x)[j]
"""


def hand_ibp(model: nn.Sequential, x: torch.Tensor, eps: float) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Interval bounds of the logits over the l_inf ball ∩ [0, 1], layer by layer."""
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    for layer in model:
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        if isinstance(layer, nn.Linear):
            mid, rad = F.linear(mid, layer.weight, layer.bias), F.linear(rad, layer.weight.abs())
            lo, hi = mid - rad, mid + rad
        elif isinstance(layer, nn.Conv2d):
            mid = F.conv2d(mid, layer.weight, layer.bias, layer.stride, layer.padding)
            rad = F.conv2d(rad, layer.weight.abs(), None, layer.stride, layer.padding)
            lo, hi = mid - rad, mid + rad
        else:  # ReLU, Flatten, Unflatten, the clamp net's Clamp: monotone, applied to both ends
            lo, hi = layer(lo), layer(hi)
    return lo, hi


def hand_lower(model, x, y, eps):
    """The CR rows' lower bounds f_y - f_j >= l_y - u_j, j != y: (B, m - 1)."""
    lo, hi = hand_ibp(model, x, eps)
    m = lo.shape[1]
    others = torch.stack([torch.cat([torch.arange(j), torch.arange(j + 1, m)]) for j in y])
    return lo.gather(1, y[:, None]) - hi.gather(1, others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prop = specrob.loads(SPEC)["CR"]
    for file in ("fashion_mnist_net.py", "small_cnn.py"):
        torch.manual_seed(0)
        model = build_model(ROOT / "examples" / file, 784, 10)
        cert = CertifiedLoss(prop, model, 784, 10, bound="ibp", logic=make_logic("dl2"),
                             cert_loss="ce")
        x, y = torch.rand(args.batch, 784), torch.randint(0, 10, (args.batch,))
        lower, batch = cert.lower(x, y, None, eps_share=1.0, beta=0.0)
        theirs = hand_lower(model, x, y, 0.1)
        # specrob's rows are in class order j != y, as the hand-written ones
        torch.testing.assert_close(lower, theirs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(cert.loss(lower, batch),
                                   torch.logsumexp(F.pad(-theirs, (1, 0)), 1))

        def ours_step():
            model.zero_grad()
            low, fs = cert.lower(x, y, None, eps_share=1.0, beta=0.0)
            cert.loss(low, fs).mean().backward()

        def hand_step():
            model.zero_grad()
            torch.logsumexp(F.pad(-hand_lower(model, x, y, 0.1), (1, 0)), 1).mean().backward()

        ours, hand = cpu_times(ours_step, hand_step, args.repeat)
        print(f"{file}, batch {args.batch}: specrob {statistics.median(ours) * 1e3:.1f} ms, "
              f"hand-written IBP {statistics.median(hand) * 1e3:.1f} ms (median); specrob / "
              f"hand: {ratio_summary(ours, hand)}")


if __name__ == "__main__":
    main()
