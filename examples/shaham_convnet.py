"""The convnet of Shaham, Yamada and Negahban (seed 002, §5.1) on flat (B, side²) inputs of one
channel: conv 5x5 - ReLU - max-pool 3x3 - conv 5x5 - ReLU - max-pool 2x2 - FC - ReLU - FC.

Convolutions are unpadded (28 -> 24 -> 8 -> 4 -> 2), except for images too small for that
(side < 22, e.g. the 8x8 digits), which are padded to keep their size. The Shaham
reproduction builds it with fewer channels for its smoke budget.
"""
import math

import torch
import torch.nn as nn


def build(input_dim: int = 784, classes: int = 10, channels: tuple[int, int] = (32, 64),
          hidden: int = 200) -> nn.Module:
    side = math.isqrt(input_dim)
    if side * side != input_dim or side < 6:
        raise ValueError(f"the convnet needs square images of side >= 6, got {input_dim} "
                         f"features")
    pad = 0 if side >= 22 else 2
    c1, c2 = channels
    features = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, c1, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(3),
        nn.Conv2d(c1, c2, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    with torch.no_grad():
        width = features(torch.zeros(1, input_dim)).shape[-1]
    return nn.Sequential(*features, nn.Linear(width, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))
