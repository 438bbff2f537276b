"""An L2-nonexpansive MLP (Qian & Wegman 2019; "L2NN" of Lassance et al., seed 004): 1-Lipschitz
in the l_2 norm from the input to the logits whatever the weights, so a logit margin m at x
proves that no l_2 perturbation shorter than m / sqrt(2) changes the class.

    specrob train examples/l2nn_mlp.py specs/cr.rspec --regime baseline --set p=2

The architecture lives in `specrob.network.nonexpansive`; `specrob verify` reads its ONNX
export like any MLP (the weight normalisation is folded into constants on import).
"""
from specrob.network.nonexpansive import l2_nonexpansive_mlp


def build(input_dim: int = 784, classes: int = 10, hidden: tuple[int, ...] = (256, 256)):
    return l2_nonexpansive_mlp(input_dim, classes, hidden)
