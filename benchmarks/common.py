"""Shared by the benchmark scripts: a quick plain training run to have a realistic model."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
