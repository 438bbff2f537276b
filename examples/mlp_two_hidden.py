"""A two-hidden-layer ReLU MLP on flat inputs: input_dim -> hidden -> hidden -> classes.

The small network the Tibo et al. (seeds 000/001) and Lassance et al. (seed 004)
reproductions train in every regime (the papers use convnets, far slower on a CPU); any
`specrob train` run can use it too:  specrob train examples/mlp_two_hidden.py specs/cr.rspec
"""
import torch.nn as nn


def build(input_dim: int = 784, classes: int = 10, hidden: int = 256) -> nn.Module:
    return nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, classes))
