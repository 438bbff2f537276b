"""The convnet of Shaham, Yamada and Negahban (seed 002, §5.1) on flat (B, side²) inputs of one
channel: conv 5x5 - ReLU - max-pool 3x3 - conv 5x5 - ReLU - max-pool 2x2 - FC - ReLU - FC.

Convolutions are unpadded (28 -> 24 -> 8 -> 4 -> 2), except for images too small for that
(side < 22, e.g. the 8x8 digits), which are padded to keep their size. The Shaham
reproduction builds it with fewer channels for its smoke budget.

standardize=(mean, sd) subtracts the mean from every pixel and divides by sd first (the
authors' global standardisation of the data, Torch7 `normalizeGlobal`, made part of the net so
that its inputs, and radii, stay in the data's own units). input_bn=True puts a batch-norm layer without learned scale or shift on the input, as the
authors' released scripts do for their robust nets only (Torch7
`nn.SpatialBatchNormalization(1, nil, nil, false)` in mnist/train-mnist-robust-*-BN.lua of
github.com/yutaroyamada/RobustTraining): in training it standardises each batch, in
evaluation it uses the running mean and variance (an affine map, exported to ONNX).
"""
import math

import torch
import torch.nn as nn


class Standardize(nn.Module):
    """(x - mean) / sd with fixed scalars (buffers: saved with the weights, never trained)."""

    def __init__(self, mean: float, sd: float):
        super().__init__()
        if not sd > 0:
            raise ValueError(f"standardize: the standard deviation must be > 0, got {sd}")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("sd", torch.tensor(float(sd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.sd


def build(input_dim: int = 784, classes: int = 10, channels: tuple[int, int] = (32, 64),
          hidden: int = 200, standardize: tuple[float, float] | None = None,
          input_bn: bool = False) -> nn.Module:
    side = math.isqrt(input_dim)
    if side * side != input_dim or side < 6:
        raise ValueError(f"the convnet needs square images of side >= 6, got {input_dim} "
                         f"features")
    pad = 0 if side >= 22 else 2
    c1, c2 = channels
    features = nn.Sequential(
        *([Standardize(*standardize)] if standardize is not None else []),
        nn.Unflatten(1, (1, side, side)),
        *([nn.BatchNorm2d(1, affine=False)] if input_bn else []),
        nn.Conv2d(1, c1, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(3),
        nn.Conv2d(c1, c2, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    with torch.no_grad():
        width = features.eval()(torch.zeros(1, input_dim)).shape[-1]
    features.train()
    return nn.Sequential(*features, nn.Linear(width, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))
