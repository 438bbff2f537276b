"""A small convnet on flat (B, side²) one-channel images: conv 16 4x4 stride 2 - ReLU - conv 32
4x4 stride 2 - ReLU - FC 100 - ReLU - FC classes (the "small" MNIST net of Wong & Kolter 2018,
used by the certified-training papers: IBP, CROWN-IBP). Padding 1 halves the side twice
(28 -> 14 -> 7; digits' 8 -> 4 -> 2).

    specrob train examples/small_cnn.py specs/cr.rspec --regime certified --set eps=0.1
"""
import math

import torch.nn as nn


def build(input_dim: int = 784, classes: int = 10) -> nn.Module:
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise ValueError(f"small_cnn reads square one-channel images; {input_dim} inputs are "
                         f"not side x side")
    after = side // 2 // 2  # each conv: floor((side + 2 - 4) / 2) + 1 = side // 2
    return nn.Sequential(nn.Unflatten(1, (1, side, side)),
                         nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * after * after, 100), nn.ReLU(),
                         nn.Linear(100, classes))
