"""The network of Casadio et al. (seed 003) for Fashion-MNIST: 784 -> 100 ReLU -> 10, with
the logits clamped to [-100, 100] (softmax is applied only inside the training loss)."""
import torch
import torch.nn as nn


class Clamp(nn.Module):
    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.clamp(z, self.low, self.high)


def build(input_dim: int = 784, classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Linear(input_dim, 100), nn.ReLU(), nn.Linear(100, classes),
                         Clamp(-100.0, 100.0))
