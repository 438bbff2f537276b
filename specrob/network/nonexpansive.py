"""L2-nonexpansive layers: networks that are 1-Lipschitz in the l_2 norm by construction
(Qian & Wegman, "L2-nonexpansive neural networks", ICLR 2019; "L2NN" of Lassance et al.,
seed 004, section 4).

The weight a layer applies is W / sqrt(max(1, b(W))), with b(W) = min(||W W^T||_inf,
||W^T W||_inf) (largest absolute row sum) an upper bound of ||W||_2^2 that is cheap and
differentiable, so ||W_applied||_2 <= 1 whatever the trained W. The activation is the two-sided
ReLU, [relu(y), relu(-y)], which is also nonexpansive; it is written as a linear layer with
the stacked weight [W; -W] followed by an ordinary nn.ReLU. In the exported ONNX graph the
normalisation is a computation on initializers, which specrob's importer folds into the
weights: every back end (CROWN, BaB, Marabou) reads the network as an MLP.

What this leaves out of Qian & Wegman's recipe: their loss terms (the scaled cross-entropies,
the confidence-gap term) and norm pooling (for convolutions); the architecture guarantee is the
part kept.
"""
from __future__ import annotations

import torch
from torch import nn


def spectral_bound(w: torch.Tensor) -> torch.Tensor:
    """b(W) = min(||W W^T||_inf, ||W^T W||_inf) >= ||W||_2^2 (for a symmetric A, ||A||_2 <=
    ||A||_inf, the largest absolute row sum). Shape: w (out, in); returns a scalar."""
    left = (w @ w.T).abs().sum(1).max()
    right = (w.T @ w).abs().sum(1).max()
    return torch.minimum(left, right)


class NonexpansiveLinear(nn.Linear):
    """A linear layer whose applied weight has l_2 operator norm <= 1: W / sqrt(max(1, b(W))).
    With `two_sided=True` it returns [y, -y] (2 * out_features outputs): followed by nn.ReLU
    this is the two-sided ReLU of Qian & Wegman, nonexpansive although [W; -W] alone is not.

    Shape: (B, in_features) -> (B, out_features), or (B, 2 * out_features) when two_sided.
    Source: Qian & Wegman 2019, section 2 (the bound on ||W||_2 and the two-sided ReLU)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 two_sided: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.two_sided = two_sided

    def applied_weight(self) -> torch.Tensor:
        """The weight the layer applies (out_features, in_features), ||.||_2 <= 1."""
        scale = torch.sqrt(torch.clamp(spectral_bound(self.weight), min=1.0))
        return self.weight / scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.applied_weight()
        b = self.bias
        if self.two_sided:
            w = torch.cat([w, -w])
            b = None if b is None else torch.cat([b, -b])
        return nn.functional.linear(x, w, b)


def l2_nonexpansive_mlp(input_dim: int, classes: int, hidden: tuple[int, ...] = (256, 256)
                        ) -> nn.Sequential:
    """An MLP that is 1-Lipschitz in l_2 from the input to the logits: nonexpansive linear
    layers with two-sided ReLUs (each hidden layer has 2 * width ReLUs).

    Shape: (B, input_dim) -> (B, classes). Source: Qian & Wegman 2019 (L2NNN), as an MLP."""
    layers: list[nn.Module] = []
    width = input_dim
    for h in hidden:
        layers += [NonexpansiveLinear(width, h, two_sided=True), nn.ReLU()]
        width = 2 * h
    layers.append(NonexpansiveLinear(width, classes))
    return nn.Sequential(*layers)
