"""The digits MLP: 64 inputs (8x8 pixels in [0, 1]) -> 32 ReLU -> 10 logits."""
import torch.nn as nn


def build(input_dim: int = 64, classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Linear(input_dim, 32), nn.ReLU(), nn.Linear(32, classes))
