"""Two small Fashion-MNIST networks of our own as a VNN-COMP benchmark folder (issue 10,
item 6): a CNN and a sigmoid MLP, trained here for a few epochs on the CPU, exported to ONNX
with the normalisation inside the graph and a fixed batch of 1, with VNN-LIB properties
(classification robustness, l_inf) for the first 10 correctly classified test points at
eps 2/255 and 5/255, and an instances.csv.

    cnn_fmnist.onnx          input (1, 1, 28, 28) in [0, 1]: Sub 0.2860, Div 0.3530,
                             Conv 1->8 3x3 stride 2, ReLU, Conv 8->16 3x3 stride 2, ReLU,
                             Flatten, Linear 576->10  (28 -> 13 -> 6 pixels: 16*6*6 = 576)
    mlp_sigmoid_fmnist.onnx  input (1, 784) in [0, 1]: Sub, Div, 784-64-64-10 with Sigmoid
    <net>_prop_<i>_<k>-255.vnnlib   CR at eps k/255 around test point i (its index in the
                             Fashion-MNIST test set), written by specrob's own writer
                             (`specrob.verification.vnnlib.vnnlib_text`): X_i in ball ∩ [0, 1],
                             (assert (or (and (>= Y_j Y_y)) ...))
    instances.csv            onnx,vnnlib,timeout (60 s)

Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`). Takes about a minute or two
on one CPU thread. The folder is not committed (default runs/vnncomp-own/). Then:

    specrob verify --instances runs/vnncomp-own/instances.csv --out runs/vnncomp-own-verify
    python benchmarks/bench_vnncomp.py --folder runs/vnncomp-own

    python benchmarks/make_vnncomp_nets.py [--out runs/vnncomp-own] [--epochs 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from specrob.data import load_data  # noqa: E402
from specrob.lang.loader import load, overrides_from_cli  # noqa: E402
from specrob.lang.encode import Centre, Encoder  # noqa: E402
from specrob.verification.vnnlib import vnnlib_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MEAN, STD = 0.2860, 0.3530
EPS = {2: 2 / 255, 5: 5 / 255}
POINTS = 10
TIMEOUT = 60


class Normalise(nn.Module):
    """(x - 0.2860) / 0.3530: exported as Sub and Div nodes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MEAN) / STD


def cnn() -> nn.Module:
    return nn.Sequential(Normalise(), nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 6 * 6, 10))


def sigmoid_mlp() -> nn.Module:
    return nn.Sequential(Normalise(), nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 64),
                         nn.Sigmoid(), nn.Linear(64, 10))


NETS = {"cnn_fmnist": (cnn, (1, 1, 28, 28)), "mlp_sigmoid_fmnist": (sigmoid_mlp, (1, 784))}


def train(net: nn.Module, shape: tuple[int, ...], data, epochs: int, seed: int) -> nn.Module:
    """benchmarks/common.train_quickly on inputs reshaped to the net's sample shape."""
    from common import train_quickly  # benchmarks/ is on sys.path when run
    return train_quickly(_Reshaped(net, shape[1:]), data, epochs, batch=128, seed=seed).net


class _Reshaped(nn.Module):
    def __init__(self, net: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.net, self.shape = net, shape

    def forward(self, x):
        return self.net(x.reshape(len(x), *self.shape))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "vnncomp-own")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data("fashion-mnist")
    xt, yt = torch.tensor(data.x_test), torch.tensor(data.y_test)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (build, shape) in NETS.items():
        start = time.process_time()
        torch.manual_seed(args.seed)
        net = train(build(), shape, data, args.epochs, args.seed)
        with torch.no_grad():
            predicted = net(xt.reshape(len(xt), *shape[1:])).argmax(-1)
        accuracy = float((predicted == yt).float().mean())
        onnx = args.out / f"{name}.onnx"
        torch.onnx.export(net, (torch.zeros(shape),), str(onnx), input_names=["input"],
                          output_names=["output"], dynamo=False)
        correct = torch.nonzero(predicted == yt).flatten()[:POINTS].tolist()
        with torch.no_grad():
            logits = net(xt[correct].reshape(len(correct), *shape[1:])).double().numpy()
        for k, eps in EPS.items():
            prop = load(REPO / "specs" / "cr.rspec",
                        overrides_from_cli([f"eps={eps!r}"])).properties[0]
            encoder = Encoder(prop, 784, 10)
            for j, i in enumerate(correct):
                query = encoder.query(Centre(xt[i].double().numpy(), int(yt[i]), logits[j]))
                vnnlib = f"{name}_prop_{i}_{k}-255.vnnlib"
                (args.out / vnnlib).write_text(vnnlib_text(
                    query, f"CR (specs/cr.rspec) at eps {k}/255, l_inf, Fashion-MNIST test "
                           f"point {i}, network {onnx.name}", int(yt[i])))
                rows.append(f"{onnx.name},{vnnlib},{TIMEOUT}")
        print(f"{onnx.name}: test accuracy {accuracy:.3f}, trained in "
              f"{time.process_time() - start:.0f} s CPU; properties for test points "
              f"{correct}", flush=True)
    (args.out / "instances.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(rows)} instances to {args.out / 'instances.csv'}")


if __name__ == "__main__":
    main()
