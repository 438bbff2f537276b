"""Lassance et al. (seed 004), "Structural robustness for deep learning architectures", the
experiment: one small MLP trained three ways on Fashion-MNIST, measured by local Lipschitz
robustness alpha_lim(r) (Fig. 5) and accuracy under Gaussian noise (Fig. 4), and the dataset
incompatibility of Lipschitz constraints (Figs. 1 and 3) on Fashion-MNIST and scikit-learn's
digits; `measure` returns them as a plain results dict.

The paper used CIFAR-10/100 and ImageNet32 with pretrained ResNets; our nets are one MLP
trained as Vanilla (cross-entropy), PGD (multi-step adversarial training in an l_inf ball), a
constraint-trained net under the paper's own Definition 1 (the LocalLipschitz property), and
the paper's Lipschitz-constrained methods: Parseval (regime parseval), Laplacian (regime
laplacian) and an L2-nonexpansive MLP (L2NN, `specrob.network.nonexpansive`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

import specrob
from specrob.data import Dataset, load_data
from specrob.estimate.lipschitz import alpha_curve, incompatibility_curve, noise_accuracy
from specrob.network.model_file import build_model
from specrob.numerics import generator
from specrob.reproduce.common import Run, accuracy, describe_data
from specrob.resources import examples_dir
from specrob.training.trainer import TrainConfig

# PGD training (Madry et al., the paper's "PGD"): l_inf like the paper's PGD net (its Table 1),
# eps = 0.1, the usual Fashion-MNIST radius (8/255 is CIFAR's).
PGD_SPEC = "property P = CR(eps = 0.1, p = inf)"
# Constraint training under Definition 1 itself: softmax outputs, l_2, slope <= 1 within
# r = 0.3 of each training point (where the paper sees its PGD net's transition, Fig. 5).
LIP_ALPHA, LIP_R = 1.0, 0.3
LIP_SPEC = f"property P = LocalLipschitz(alpha = {LIP_ALPHA:g}, r = {LIP_R:g})"


@dataclass(frozen=True)
class Budget:
    """The knobs of one run (full or smoke)."""

    train: int | None            # training points of Fashion-MNIST
    test: int | None             # test points (clean and noisy accuracy)
    epochs: tuple[int, int, int]  # Vanilla, PGD, LocalLipschitz
    adv_steps: int               # PGD steps of adversarial training
    constraint_steps: int        # PGD steps of the constraint's worst-point search
    centres: int                 # training points for alpha_lim (the paper: 100)
    samples: int                 # Gaussian noise realisations per centre (the paper: 1000)
    pgd_steps: int               # PGD steps on the ratio (alpha_curve)
    radii: tuple[float, ...]     # l_2 radii of Fig. 5
    pair_points: int             # Fashion-MNIST training points for Figs. 1 and 3
    digits_points: int | None    # digits training points (None: the whole training split)
    snr_db: tuple[float, ...]    # Fig. 4's x-axis
    hidden: int = 256
    batch_size: int = 128
    lr: float = 1e-3
    constraint_weight: float = 1.0  # b in a·CE + b·L_C
    # per net (Vanilla, PGD, LocalLipschitz): TrainConfig options over the ones above, as
    # (name, value) pairs (the paper budget's optimisers)
    overrides: tuple[tuple[tuple[str, object], ...], ...] = ((), (), ())
    code_centres: int = 1000     # the authors' script's alpha_lim: training points ...
    code_samples: int = 100      # ... and uniform draws on the sphere per point
    # the paper's Lipschitz-constrained methods (Parseval, Laplacian, L2NN): epochs and
    # TrainConfig overrides per net, Parseval's beta, the Laplacian's gamma and power
    compared_epochs: tuple[int, int, int] = (20, 20, 20)
    compared_overrides: tuple[tuple[tuple[str, object], ...], ...] = ((), (), ())
    parseval_beta: float = 0.01  # the authors' code (P.sh: --beta 0.01)
    laplacian_gamma: float = 0.001  # the authors' 0.01 collapses this MLP (see the page)
    laplacian_power: int = 2     # the authors' code (R.sh: -m 2)


# Fields that only add networks (each in a folder bound to its own training options, with its
# own stages): left out of the work folder's settings, so runs made before they existed resume
ADDED = ("compared_epochs", "compared_overrides", "parseval_beta", "laplacian_gamma",
         "laplacian_power")


FULL = Budget(train=30000, test=None, epochs=(20, 10, 8), adv_steps=7, constraint_steps=7,
              centres=100, samples=1000, pgd_steps=20,
              radii=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
              pair_points=5000, digits_points=None,
              snr_db=tuple(float(s) for s in np.arange(-10.0, 30.1, 2.5)))
# The paper trains nothing (it evaluates pretrained nets); the code that trained them does:
# Vanilla / Parseval / Laplacian (github.com/cadurosar/laplacian_networks, cifar_10/cifar10.py):
# SGD momentum 0.9, weight decay 5e-4, batch 100, 100 epochs at lr 0.1, 0.001 from epoch 51;
# PGD (github.com/MadryLab/cifar10_challenge, config.json): SGD momentum 0.9, weight decay
# 2e-4, batch 128, 80000 steps (205 CIFAR-10 epochs), lr 0.1, 0.01 from step 40000 (epoch
# 102), 0.001 from 60000 (epoch 154), 10 PGD steps. The LocalLipschitz net has no
# counterpart: Vanilla's schedule. All training points; the rest as FULL.
V_SCHEDULE = (("optimizer", "sgd"), ("momentum", 0.9), ("weight_decay", 5e-4),
              ("lr_steps", (50,)), ("lr_gamma", 0.01))
PAPER = Budget(train=None, test=None, epochs=(100, 205, 100), adv_steps=10,
               constraint_steps=7, centres=100, samples=1000, pgd_steps=20,
               radii=FULL.radii, pair_points=5000, digits_points=None, snr_db=FULL.snr_db,
               batch_size=100, lr=0.1,
               overrides=(V_SCHEDULE,
                          (("optimizer", "sgd"), ("momentum", 0.9), ("weight_decay", 2e-4),
                           ("lr_steps", (102, 154)), ("lr_gamma", 0.1), ("batch_size", 128)),
                          V_SCHEDULE),
               # P and L: the same script as V (cifar10.py --beta / --gamma); L2NN: no code
               # of Qian and Wegman's was used, Vanilla's schedule
               compared_epochs=(100, 100, 100),
               compared_overrides=(V_SCHEDULE, V_SCHEDULE, V_SCHEDULE))
SMOKE = Budget(train=1000, test=500, epochs=(1, 1, 1), adv_steps=3, constraint_steps=3,
               centres=20, samples=50, pgd_steps=5, radii=(0.1, 0.5, 2.0),
               pair_points=500, digits_points=400, snr_db=(-10.0, 0.0, 10.0, 30.0),
               code_centres=50, code_samples=10, compared_epochs=(1, 1, 1))

NETS = ("vanilla", "pgd", "lipschitz", "parseval", "laplacian", "l2nn")
LABELS = {"vanilla": "Vanilla (CE)", "pgd": "PGD (l_inf, eps 0.1)",
          "lipschitz": "LocalLipschitz constraint", "parseval": "Parseval (P)",
          "laplacian": "Laplacian (L)", "l2nn": "L2NN"}
# Figs. 1/3: alpha grid (geometric, plus the values of the tables) and d values (l_inf)
TABLE_ALPHAS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
DISTANCES = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, math.inf)


def alpha_grid() -> list[float]:
    """Fig. 1/3's x-axis: 0.5 ... 16 geometrically, with the tables' values included."""
    grid = np.geomspace(0.5, 16.0, 61).round(4).tolist() + list(TABLE_ALPHAS)
    return sorted(set(grid))


def build_net(input_dim: int, classes: int, *, hidden: int = 256, seed: int = 0) -> nn.Module:
    """The small net of every regime: an MLP on flat (B, n) inputs, the same initial
    weights for a given seed (so the regimes differ only in training)."""
    torch.manual_seed(seed)
    return build_model(examples_dir() / "mlp_two_hidden.py", input_dim, classes, hidden=hidden)


def build_l2nn(input_dim: int, classes: int, *, hidden: int = 256, seed: int = 0) -> nn.Module:
    """The L2-nonexpansive MLP of the same widths (examples/l2nn_mlp.py): 1-Lipschitz in l_2
    by construction (Qian and Wegman's L2NN, as an MLP)."""
    torch.manual_seed(seed)
    return build_model(examples_dir() / "l2nn_mlp.py", input_dim, classes,
                       hidden=(hidden, hidden))


# --- stages -----------------------------------------------------------------------------------
def per_centre_quantiles(per_centre: torch.Tensor, qs=(0.5, 0.9)) -> dict[str, list[float]]:
    """Per radius, quantiles of the per-centre estimates (the typical centre, not the worst)."""
    levels = torch.tensor(qs, dtype=torch.float64, device=per_centre.device)
    q = torch.quantile(per_centre.double(), levels, dim=1)
    return {f"q{round(100 * v)}": row.tolist() for v, row in zip(qs, q)}


def train_nets(run: Run, data: Dataset, budget: Budget) -> dict[str, nn.Module]:
    """Vanilla, PGD-trained and LocalLipschitz-trained copies of the same MLP, and the
    paper's Lipschitz-constrained methods: Parseval, Laplacian, L2NN."""
    pgd_prop, lip_prop = specrob.loads(PGD_SPEC)["P"], specrob.loads(LIP_SPEC)["P"]
    seed = run.options.seed
    common = {"batch_size": budget.batch_size, "lr": budget.lr, "seed": seed,
              "eval_points": 256, "eval_steps": 10}
    v, p, c = (dict(o) for o in budget.overrides)
    configs = {
        "vanilla": (pgd_prop, TrainConfig(regime="baseline", epochs=budget.epochs[0],
                                          **{**common, **v})),
        "pgd": (pgd_prop, TrainConfig(regime="adversarial", adv_steps=budget.adv_steps,
                                      epochs=budget.epochs[1], **{**common, **p})),
        "lipschitz": (lip_prop, TrainConfig(regime="constraint", steps=budget.constraint_steps,
                                            b=budget.constraint_weight, epochs=budget.epochs[2],
                                            **{**common, **c})),
    }
    pe, le, ne = budget.compared_epochs
    po, lo, no = (dict(o) for o in budget.compared_overrides)
    configs.update({
        "parseval": (pgd_prop, TrainConfig(regime="parseval", beta=budget.parseval_beta,
                                           epochs=pe, **{**common, **po})),
        "laplacian": (pgd_prop, TrainConfig(regime="laplacian", gamma=budget.laplacian_gamma,
                                            power=budget.laplacian_power, epochs=le,
                                            **{**common, **lo})),
        "l2nn": (pgd_prop, TrainConfig(regime="baseline", epochs=ne, **{**common, **no})),
    })
    nets = {}
    for name, (prop, config) in configs.items():
        build = build_l2nn if name == "l2nn" else build_net
        net = build(data.input_dim, data.classes, hidden=budget.hidden, seed=seed)
        nets[name] = run.train(name, net, prop, data, config)
    return nets


def incompatibility(x: torch.Tensor, y: torch.Tensor) -> dict:
    """Figs. 1/3 for one dataset: l_inf distances, one-hot outputs, alpha grid x d values."""
    inc = incompatibility_curve(x, y, DISTANCES, alpha=alpha_grid(), p=math.inf)
    # plain JSON (d = inf written as "inf"): fraction[alpha][d] and the pair counts behind it
    return {"p": "inf", "q": "inf", "points": int(x.shape[0]), "pairs": inc.pairs,
            "all_pairs": inc.all_pairs, "alphas": list(inc.alphas),
            "distances": [_d_name(d) for d in inc.distances],
            "incompatible": [list(row) for row in inc.incompatible],
            "fraction": [[f.value for f in row] for row in inc.fraction]}


def alpha_lim(model: nn.Module, centres: torch.Tensor, budget: Budget, seed: int) -> dict:
    """Fig. 5 for one net: lower bounds of alpha_lim(r) (Gaussian noise + PGD on the ratio)."""
    gen = generator(seed, centres.device)
    curve = alpha_curve(model, centres, budget.radii, samples=budget.samples,
                        steps=budget.pgd_steps, generator=gen)
    # per radius, the fraction of centres whose own estimate exceeds the constraint's alpha = 1
    above = (curve.per_centre > LIP_ALPHA).double().mean(1).tolist()
    return {**curve.as_dict(), **per_centre_quantiles(curve.per_centre),
            "centres": int(centres.shape[0]), "above_lip_alpha": above}


def alpha_code(model: nn.Module, centres: torch.Tensor, budget: Budget, seed: int) -> dict:
    """alpha_lim(r) as the authors' released script estimates it: `code_samples` uniform
    draws on the l_2 sphere of radius r per centre, clipped to [0, 1], no PGD."""
    curve = alpha_curve(model, centres, budget.radii, samples=budget.code_samples, pgd=False,
                        noise="sphere", generator=generator(seed, centres.device))
    return {**curve.as_dict(), "centres": int(centres.shape[0])}


def noisy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Budget, seed: int) -> dict:
    """Fig. 4 for one net: test accuracy under additive Gaussian noise per SNR (dB)."""
    gen = generator(seed, x.device)
    return noise_accuracy(model, x, y, budget.snr_db, generator=gen).as_dict()


# --- the experiment ----------------------------------------------------------------------------
PAGE_ONLY = ("dataset",)  # results the page states, not the JSON


def measure(run: Run, budget: Budget) -> dict:
    """The incompatibility of Figs. 1/3, the three nets (trained or reloaded), their accuracy,
    alpha_lim(r) and noisy accuracy; every stage is cached in <work>."""
    options = run.options
    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget={k: v for k, v in asdict(budget).items() if k not in ADDED})
    results = {"data": {"name": data.name, "train": len(data.y_train), "test": len(data.y_test)}}

    results["incompatibility"] = incompatibility_stages(run, data, budget)
    nets = train_nets(run, data, budget)
    centres, _ = run.tensors(data, "train", budget.centres)
    x_test, y_test = run.tensors(data, "test")
    x_train, y_train = run.tensors(data, "train")
    results["accuracy"] = {n: {"train": accuracy(m, x_train, y_train),
                               "test": accuracy(m, x_test, y_test)} for n, m in nets.items()}
    results["alpha_lim"] = {n: run.stage(f"alpha-{n}", lambda m=m: alpha_lim(m, centres, budget,
                                                                             options.seed))
                            for n, m in nets.items()}
    # the authors' released estimator beside ours (r_alpha.py: the first 1000 training points,
    # 100 uniform draws on the sphere of radius r each, no search)
    code_centres, _ = run.tensors(data, "train", budget.code_centres)
    results["alpha_code"] = {n: run.stage(f"alpha-code-{n}", lambda m=m: alpha_code(
        m, code_centres, budget, options.seed)) for n, m in nets.items()}
    results["noise"] = {n: run.stage(f"noise-{n}", lambda m=m: noisy(m, x_test, y_test, budget,
                                                                      options.seed))
                        for n, m in nets.items()}
    results["dataset"] = describe_data(data)
    return results


def incompatibility_stages(run: Run, data: Dataset, budget: Budget) -> dict[str, dict]:
    """Figs. 1/3 on the run's dataset (the first `pair_points` training points) and digits."""
    out = {}
    x, y = run.tensors(data, "train", budget.pair_points)
    out[data.name] = run.stage(f"incompat-{data.name}", lambda: incompatibility(x, y))
    if data.name != "digits":
        digits = load_data("digits")
        xd, yd = run.tensors(digits, "train", budget.digits_points)
        out["digits"] = run.stage("incompat-digits", lambda: incompatibility(xd, yd))
    return out


def _d_name(d: float) -> str:
    """A distance as JSON: inf as "inf"."""
    return "inf" if math.isinf(d) else f"{d:g}"

