"""Shared by the benchmark scripts: a quick plain training run to have a realistic model."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cpu_times(run_a, run_b, repeat: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    """CPU seconds of each of two callables over `repeat` rounds, the sides interleaved (the
    order alternating each round), after `warmup` rounds of both."""
    import time
    for _ in range(warmup):
        run_a(), run_b()
    a, b = [], []
    for i in range(repeat):
        for run, times in ((run_a, a), (run_b, b)) if i % 2 == 0 else ((run_b, b), (run_a, a)):
            t = time.process_time()  # CPU time: the machine is shared
            run()
            times.append(time.process_time() - t)
    return a, b


def ratio_summary(a: list[float], b: list[float]) -> str:
    """"min R, median R" of the per-round ratios a / b (CPU times of `cpu_times`)."""
    import statistics
    ratios = [x / y for x, y in zip(a, b)]
    return f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f}"


def model_cases(root) -> list[tuple]:
    """(data name, model file, plain-training epochs): the digits MLP, a CNN on digits (the
    Shaham et al. convnet, padded for 8x8 images), and the seed-003 Fashion-MNIST network
    (784-100-10) when Debian's dataset-fashion-mnist is installed."""
    from specrob.data import DataError, load_data
    cases = [("digits", root / "examples" / "digits_mlp.py", 5),
             ("digits", root / "examples" / "shaham_convnet.py", 3)]
    try:
        load_data("fashion-mnist")
        cases.append(("fashion-mnist", root / "examples" / "fashion_mnist_net.py", 1))
    except DataError:
        print("Fashion-MNIST absent (apt-get install dataset-fashion-mnist): digits only")
    return cases


def train_quickly(net: nn.Module, data, epochs: int, batch: int = 64, seed: int = 0) -> nn.Module:
    """A few epochs of Adam on cross-entropy; returns the network frozen, in eval mode."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
