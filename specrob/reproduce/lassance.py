"""Lassance et al. (seed 004), "Structural robustness for deep learning architectures":
local Lipschitz robustness alpha_lim(r) (Fig. 5), the dataset incompatibility of Lipschitz
constraints (Figs. 1 and 3) and accuracy under Gaussian noise (Fig. 4).

The paper used CIFAR-10/100 and ImageNet32 with pretrained ResNets; we use Fashion-MNIST (and
scikit-learn's digits for the incompatibility curves), one small MLP trained three ways:
Vanilla (cross-entropy), PGD (multi-step adversarial training in an l_inf ball) and a
constraint-trained net under the paper's own Definition 1 (the LocalLipschitz property).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import specrob
from specrob.data import Dataset, load_data
from specrob.estimate.lipschitz import alpha_curve, incompatibility_curve, noise_accuracy
from specrob.reproduce.common import (
    Options,
    Run,
    accuracy,
    label_axes,
    pct,
    plot_curves,
    save_figure,
    table,
    tensors,
)
from specrob.training.trainer import TrainConfig

TITLE = "Lassance et al. (seed 004): local Lipschitz robustness alpha_lim(r)"
PAPER_REF = ("Paper: Lassance et al., *Structural robustness for deep learning architectures* "
             "(seed 004, `/work/shared/seeds/004_1340db18da6a412f.txt`). Its experiments use "
             "CIFAR-10/100 and ImageNet32 with pretrained ResNets; ours use Fashion-MNIST (and "
             "scikit-learn's digits for Figs. 1 and 3) and one small MLP trained three ways.")

# PGD training (Madry et al., the paper's "PGD"): l_inf like the paper's PGD net (its Table 1),
# eps = 0.1, the usual Fashion-MNIST radius (8/255 is CIFAR's).
PGD_SPEC = "property P = CR(eps = 0.1, p = inf)"
# Constraint training under Definition 1 itself: softmax outputs, l_2, slope <= 1 within
# r = 0.3 of each training point (where the paper sees its PGD net's transition, Fig. 5).
LIP_ALPHA, LIP_R = 1.0, 0.3
LIP_SPEC = f"property P = LocalLipschitz(alpha = {LIP_ALPHA:g}, r = {LIP_R:g})"

SETUP = """## Setup

Three copies of one MLP (same initial weights) trained three ways, standing in for the paper's
pretrained ResNets: **Vanilla** (cross-entropy); **PGD** (`adversarial` regime, multi-step PGD,
cross-entropy at the worst point of the l_inf ball of radius 0.1, `CR(eps = 0.1, p = inf)`): the
paper's PGD net (Madry et al.) is l_inf-trained too; and a **LocalLipschitz constraint** net
(`constraint` regime, a·CE + b·DL2 loss at the worst point found by PGD) under
`LocalLipschitz(alpha = 1, r = 0.3)`, the paper's Definition 1 itself: softmax outputs, l_2,
slope <= 1 within r = 0.3 of each training point, exactly the quantity Fig. 5 measures (our
Vanilla net breaks it at {vanilla_above} of the {centres} training points of Fig. 5 at
r = {r:g}: the constraint binds where a net is sharp, not everywhere). We did not use Casadio's LR (logits, l_inf, L = 10): it bounds the logits, which a
confident net must move by large amounts, so it measures something other than the paper's
softmax alpha_lim. The paper's Parseval, Laplacian and L2NN nets are not reproduced; the
constraint-trained net is our Lipschitz-constrained counterpart.
"""

# The paper's Table 2: CIFAR-10 test error (%), clean and mean over the 15 corruptions of [10].
PAPER_TABLE2 = {"V": (11.9, 31.6), "P": (10.2, 30.5), "L": (13.2, 31.3), "PGD": (12.8, 18.8),
                "L2NN": (20.9, 28.5), "V PGD": (5.0, 24.4)}


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


FULL = Budget(train=30000, test=None, epochs=(20, 10, 8), adv_steps=7, constraint_steps=7,
              centres=100, samples=1000, pgd_steps=20,
              radii=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
              pair_points=5000, digits_points=None,
              snr_db=tuple(float(s) for s in np.arange(-10.0, 30.1, 2.5)))
SMOKE = Budget(train=1000, test=500, epochs=(1, 1, 1), adv_steps=3, constraint_steps=3,
               centres=20, samples=50, pgd_steps=5, radii=(0.1, 0.5, 2.0),
               pair_points=500, digits_points=400, snr_db=(-10.0, 0.0, 10.0, 30.0))

NETS = ("vanilla", "pgd", "lipschitz")
LABELS = {"vanilla": "Vanilla (CE)", "pgd": "PGD (l_inf, eps 0.1)",
          "lipschitz": "LocalLipschitz constraint"}
# Figs. 1/3: alpha grid (geometric, plus the values of the tables) and d values (l_inf)
TABLE_ALPHAS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
DISTANCES = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, math.inf)
SNR_CHECK = 0.0  # dB: where claim (5) compares noisy accuracies (noise power = signal power)
NEGLIGIBLE = 1e-3  # a fraction of pairs below this is "negligible" / "~0"


def alpha_grid() -> list[float]:
    """Fig. 1/3's x-axis: 0.5 ... 16 geometrically, with the tables' values included."""
    grid = np.geomspace(0.5, 16.0, 61).round(4).tolist() + list(TABLE_ALPHAS)
    return sorted(set(grid))


def build_net(input_dim: int, classes: int, *, hidden: int = 256, seed: int = 0) -> nn.Module:
    """The small net of all three regimes: an MLP on flat (B, n) inputs, the same initial
    weights for a given seed (so the regimes differ only in training)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, classes))


# --- pure helpers -----------------------------------------------------------------------------
def first_at_or_below(xs, ys, level: float) -> float | None:
    """The first x whose y is <= level and stays so for every later x (None: never)."""
    found = None
    for x, y in zip(xs, ys):
        if y <= level:
            found = x if found is None else found
        else:
            found = None
    return found


def saturation_radius(radii, alpha, *, fraction: float = 0.9) -> float:
    """The smallest radius where the (non-decreasing) curve reaches `fraction` of its final
    value: how fast alpha_lim saturates."""
    top = alpha[-1]
    return next(r for r, a in zip(radii, alpha) if a >= fraction * top)


def rises_and_saturates(alpha, *, rise: float = 1.1, flat: float = 0.05) -> tuple[bool, bool]:
    """(the curve grows by >= `rise`x over the radii, its last step grows by <= `flat`)."""
    first, last, before = alpha[0], alpha[-1], alpha[-2] if len(alpha) > 1 else alpha[-1]
    return last >= rise * first and last > 0, last <= (1 + flat) * before


def order(values: dict[str, float], *, reverse: bool = False) -> list[str]:
    """The keys sorted by value (ascending, or descending with reverse)."""
    return sorted(values, key=values.get, reverse=reverse)


def per_centre_quantiles(per_centre: torch.Tensor, qs=(0.5, 0.9)) -> dict[str, list[float]]:
    """Per radius, quantiles of the per-centre estimates (the typical centre, not the worst)."""
    q = torch.quantile(per_centre.double(), torch.tensor(qs, dtype=torch.float64), dim=1)
    return {f"q{round(100 * v)}": row.tolist() for v, row in zip(qs, q)}


# --- stages -----------------------------------------------------------------------------------
def train_nets(run: Run, data: Dataset, budget: Budget) -> dict[str, nn.Module]:
    """Vanilla, PGD-trained and LocalLipschitz-trained copies of the same MLP."""
    pgd_prop, lip_prop = specrob.loads(PGD_SPEC)["P"], specrob.loads(LIP_SPEC)["P"]
    seed = run.options.seed
    common = {"batch_size": budget.batch_size, "lr": budget.lr, "seed": seed,
              "eval_points": 256, "eval_steps": 10}
    configs = {
        "vanilla": (pgd_prop, TrainConfig(regime="baseline", epochs=budget.epochs[0], **common)),
        "pgd": (pgd_prop, TrainConfig(regime="adversarial", adv_steps=budget.adv_steps,
                                      epochs=budget.epochs[1], **common)),
        "lipschitz": (lip_prop, TrainConfig(regime="constraint", steps=budget.constraint_steps,
                                            b=budget.constraint_weight, epochs=budget.epochs[2],
                                            **common)),
    }
    return {name: run.train(name, build_net(data.input_dim, data.classes, hidden=budget.hidden,
                                            seed=seed), prop, data, config)
            for name, (prop, config) in configs.items()}


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
    gen = torch.Generator().manual_seed(seed)
    curve = alpha_curve(model, centres, budget.radii, samples=budget.samples,
                        steps=budget.pgd_steps, generator=gen)
    # per radius, the fraction of centres whose own estimate exceeds the constraint's alpha = 1
    above = (curve.per_centre > LIP_ALPHA).double().mean(1).tolist()
    return {**curve.as_dict(), **per_centre_quantiles(curve.per_centre),
            "centres": int(centres.shape[0]), "above_lip_alpha": above}


def noisy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Budget, seed: int) -> dict:
    """Fig. 4 for one net: test accuracy under additive Gaussian noise per SNR (dB)."""
    gen = torch.Generator().manual_seed(seed)
    return noise_accuracy(model, x, y, budget.snr_db, generator=gen).as_dict()


# --- the run ----------------------------------------------------------------------------------
def run(options: Options, command: str) -> Path:
    run = Run("lassance", TITLE, options, command)
    budget = SMOKE if options.smoke else FULL
    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget=asdict(budget))
    run.results["data"] = {"name": data.name, "train": len(data.y_train),
                           "test": len(data.y_test)}

    incompat = incompatibility_stages(run, data, budget)
    nets = train_nets(run, data, budget)
    centres, _ = tensors(data, "train", budget.centres)
    x_test, y_test = tensors(data, "test")
    x_train, y_train = tensors(data, "train")
    acc = {n: {"train": accuracy(m, x_train, y_train), "test": accuracy(m, x_test, y_test)}
           for n, m in nets.items()}
    run.results["accuracy"] = acc
    curves = {n: run.stage(f"alpha-{n}", lambda m=m: alpha_lim(m, centres, budget, options.seed))
              for n, m in nets.items()}
    run.results["alpha_lim"] = curves
    noise = {n: run.stage(f"noise-{n}", lambda m=m: noisy(m, x_test, y_test, budget,
                                                           options.seed))
             for n, m in nets.items()}
    run.results["noise"] = noise

    k = min(range(len(budget.radii)), key=lambda i: abs(budget.radii[i] - LIP_R))
    run.section(SETUP.format(vanilla_above=pct(curves["vanilla"]["above_lip_alpha"][k]) + "%",
                             centres=budget.centres, r=budget.radii[k]))
    facts = {}
    facts.update(incompatibility_sections(run, incompat))
    facts.update(accuracy_section(run, acc, noise))
    facts.update(alpha_sections(run, curves, budget))
    facts.update(noise_section(run, noise, curves))
    return run.finish(paper_ref=PAPER_REF, budget=budget_text(budget, data, incompat),
                      summary=summary(facts, data))


def incompatibility_stages(run: Run, data: Dataset, budget: Budget) -> dict[str, dict]:
    """Figs. 1/3 on the run's dataset (the first `pair_points` training points) and digits."""
    out = {}
    x, y = tensors(data, "train", budget.pair_points)
    out[data.name] = run.stage(f"incompat-{data.name}", lambda: incompatibility(x, y))
    if data.name != "digits":
        digits = load_data("digits")
        xd, yd = tensors(digits, "train", budget.digits_points)
        out["digits"] = run.stage("incompat-digits", lambda: incompatibility(xd, yd))
    run.results["incompatibility"] = out
    return out


# --- page sections ----------------------------------------------------------------------------
def incompatibility_sections(run: Run, incompat: dict[str, dict]) -> dict:
    """Figs. 1 and 3, their tables and claims (1a), (1b) and (2)."""
    inf = DISTANCES.index(math.inf)
    path, link = run.figure("fig1-incompatibility")
    _plot_log_x(path, {name: (r["alphas"], [row[inf] for row in r["fraction"]])
                       for name, r in incompat.items()},
                xlabel="alpha (Lipschitz constant, l_inf)",
                ylabel="fraction of distinct-class pairs incompatible",
                title="Fig. 1: a global alpha-Lipschitz constraint, one-hot outputs (d = inf)")
    rows, zero, at_one = [], {}, {}
    for name, r in incompat.items():
        global_curve = [row[inf] for row in r["fraction"]]
        zero[name] = first_at_or_below(r["alphas"], global_curve, 0.0)
        at_one[name] = global_curve[r["alphas"].index(1.0)]
        rows.append([f"{name} ({r['points']} points, {r['pairs']:,} pairs)"]
                    + [pct(global_curve[r["alphas"].index(a)], 2) for a in TABLE_ALPHAS]
                    + [_num(first_at_or_below(r["alphas"], global_curve, NEGLIGIBLE)),
                       _num(zero[name])])
    run.section("## Figure 1: incompatibility of a global Lipschitz constraint\n\n"
                "Fraction of training pairs of distinct classes (x, x') that no alpha-Lipschitz "
                "function with one-hot outputs can fit: alpha ||x - x'||_inf < ||onehot(y) - "
                "onehot(y')||_inf = 1. The paper (Fig. 1, CIFAR-10/100, ImageNet32, l_inf): "
                "the constraint is incompatible with many pairs unless alpha is large "
                "(\"greater than 4\").\n\n"
                f"![Fig. 1]({link})\n\n"
                + table(["dataset"] + [f"alpha = {a:g} (%)" for a in TABLE_ALPHAS]
                        + [f"alpha where < {pct(NEGLIGIBLE, 1)}%", "alpha where 0"], rows))

    fig3_rows, d03 = [], {}
    for name, r in incompat.items():
        path, link = run.figure(f"fig3-incompatibility-{name}")
        _plot_log_x(path, {f"d = {d}": (r["alphas"], [row[k] for row in r["fraction"]])
                           for k, d in enumerate(r["distances"])},
                    xlabel="alpha (l_inf)", ylabel="fraction of distinct-class pairs incompatible",
                    title=f"Fig. 3 ({name}): Robust_alpha(T, d/2), one-hot outputs, l_inf")
        run.section(f"![Fig. 3 {name}]({link})")
        one = r["fraction"][r["alphas"].index(1.0)]
        d03[name] = max(row[0] for row in r["fraction"])
        fig3_rows.append([name] + [pct(v, 3) for v in one])
    run.section("## Figure 3: incompatibility with local robustness, per d\n\n"
                "Pairs of distinct classes closer than d (l_inf) that are not alpha-robust "
                "(d is about 2r), as a fraction of all distinct-class pairs. The paper (Fig. 3): "
                "for each d the curve is flat then drops; the number of incompatible pairs drops "
                "very fast as d decreases and is negligible at d = 0.3. Our table: alpha = 1 "
                "(the flat part), per d.\n\n"
                + table(["dataset"] + [f"d = {d} (%)" for d in next(iter(incompat.values()))
                                       ["distances"]], fig3_rows))

    many = all(v >= 0.05 for v in at_one.values())
    run.claim("(1a) Fig. 1: with one-hot outputs a global Lipschitz constraint with a small "
              "constant is incompatible with many training pairs (l_inf)", holds=many,
              ours="; ".join(f"{n}: {pct(v)}% of distinct-class pairs at alpha = 1"
                             for n, v in at_one.items()))
    large = all(z is not None and z >= 4 for z in zero.values())
    run.claim("(1b) Fig. 1: the fraction only vanishes for a large constant (the paper: "
              "alpha > 4 on its datasets)", holds=large,
              ours="; ".join(f"{n}: 0 from alpha = {_num(z)}" for n, z in zero.items()))
    monotone = all(all(a <= b + 1e-12 for a, b in itertools.pairwise(row))
                   for r in incompat.values() for row in r["fraction"])
    negligible = all(v < NEGLIGIBLE for v in d03.values())
    run.claim("(2) Fig. 3: the fraction of incompatible pairs drops fast as d decreases and is "
              "negligible at d = 0.3", holds=monotone and negligible,
              ours="; ".join(f"{n}: at alpha = 1, {pct(r['fraction'][r['alphas'].index(1.0)][-1], 1)}"
                             f"% (d = inf) -> {pct(r['fraction'][r['alphas'].index(1.0)][0], 3)}%"
                             f" (d = 0.3), max over alpha at d = 0.3: {pct(d03[n], 3)}%"
                             for n, r in incompat.items()))
    return {"incompat_at_one": at_one, "incompat_zero": zero, "incompat_d03": d03}


def accuracy_section(run: Run, acc: dict, noise: dict) -> dict:
    """Clean test accuracy per net beside the paper's Table 2 (CIFAR-10 errors)."""
    paper = {"vanilla": ("V", PAPER_TABLE2["V"]), "pgd": ("PGD", PAPER_TABLE2["PGD"]),
             "lipschitz": ("L2NN (its Lipschitz-constrained net)", PAPER_TABLE2["L2NN"])}
    rows = []
    for n in NETS:
        at = _noise_at(noise[n], SNR_CHECK)
        rows.append([LABELS[n], pct(acc[n]["train"]), pct(acc[n]["test"]),
                     pct(1 - acc[n]["test"]), pct(1 - at), paper[n][0],
                     f"{paper[n][1][0]} / {paper[n][1][1]}"])
    run.section("## Clean accuracy (cf. the paper's Table 2)\n\n"
                "Ours: Fashion-MNIST; \"noisy\" is Gaussian noise at "
                f"{SNR_CHECK:g} dB SNR (Fig. 4). The paper's Table 2: CIFAR-10 test error, "
                "clean / mean over the 15 corruptions of Hendrycks & Dietterich (not Gaussian "
                "noise alone); its P, L and V PGD rows (not trained here): "
                + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in PAPER_TABLE2.items()
                            if k in ("P", "L", "V PGD")) + ".\n\n"
                + table(["net (ours)", "train acc. (%)", "test acc. (%)", "test error (%)",
                         f"noisy test error at {SNR_CHECK:g} dB (%)", "paper's net",
                         "paper: CIFAR-10 error clean / corrupted (%)"], rows))
    return {"accuracy": acc}


def alpha_sections(run: Run, curves: dict, budget: Budget) -> dict:
    """Fig. 5: alpha_lim(r) per net, its table and claims (3) and (4)."""
    radii = list(budget.radii)
    path, link = run.figure("fig5-alpha-lim")
    _plot_alpha(path, radii, curves)
    rows = []
    for n in NETS:
        c = curves[n]
        rows.append([f"{LABELS[n]}: alpha_lim"] + [f"{v:.3g}" for v in c["alpha_lim"]])
        rows.append([f"{LABELS[n]}: Gaussian noise only"] + [f"{v:.3g}" for v in c["gaussian"]])
        rows.append([f"{LABELS[n]}: median centre"] + [f"{v:.3g}" for v in c["q50"]])
    run.section("## Figure 5: alpha_lim(r)\n\n"
                f"Lower bounds of alpha_lim(F, r) = sup ||F(x+e) - F(x)||_2 / ||e||_2 over "
                f"{budget.centres} training points x and ||e||_2 <= r (softmax outputs F, "
                f"x + e clamped to [0, 1]): the larger of {budget.samples} Gaussian noise "
                f"realisations per point (the paper's estimator) and PGD on the ratio "
                f"({budget.pgd_steps} steps); running maxima over r. \"Gaussian noise only\" is the "
                "paper's estimator alone (far below PGD's: random directions in 784 dimensions "
                "barely move the output); \"median centre\" is the median over the points of "
                "their own estimate (the paper's alpha_lim is the maximum). The paper (Fig. 5, CIFAR-10): alpha increases with r and saturates; "
                "Vanilla saturates fastest and at the largest alpha, the other methods grow more "
                "slowly and saturate lower (PGD with a transition around r = 0.3, at relatively "
                "small alpha).\n\n"
                f"![Fig. 5]({link})\n\n"
                + table(["net"] + [f"r = {r:g}" for r in radii], rows))

    shape = {n: rises_and_saturates(curves[n]["alpha_lim"]) for n in NETS}
    shape_median = {n: rises_and_saturates(curves[n]["q50"]) for n in NETS}
    run.claim("(3) Fig. 5: alpha_lim(r) increases with r and saturates, for every net",
              holds=all(a and b for a, b in shape.values()),
              ours="; ".join(f"{LABELS[n]}: {curves[n]['alpha_lim'][0]:.3g} -> "
                             f"{curves[n]['alpha_lim'][-1]:.3g} "
                             f"(rises: {'yes' if shape[n][0] else 'no'}, saturates: "
                             f"{'yes' if shape[n][1] else 'no'}; median centre "
                             f"{curves[n]['q50'][0]:.2g} -> {curves[n]['q50'][-1]:.2g})"
                             for n in NETS))
    top = {n: curves[n]["alpha_lim"][-1] for n in NETS}
    r90 = {n: saturation_radius(radii, curves[n]["alpha_lim"]) for n in NETS}
    r90_median = {n: saturation_radius(radii, curves[n]["q50"]) for n in NETS}
    largest = order(top, reverse=True)[0] == "vanilla"
    fastest = all(r90["vanilla"] <= r90[n] for n in NETS)
    run.claim("(4) Fig. 5: Vanilla saturates fastest and at the largest alpha; the PGD- and "
              "constraint-trained nets grow more slowly and saturate lower",
              holds=largest and fastest,
              ours="; ".join(f"{LABELS[n]}: saturates at {top[n]:.3g}, 90% of it reached at "
                             f"r = {r90[n]:g} (median centre: {curves[n]['q50'][-1]:.2g}, "
                             f"90% at r = {r90_median[n]:g})" for n in NETS))
    return {"alpha_top": top, "r90": r90, "shape": shape, "shape_median": shape_median,
            "median_top": {n: curves[n]["q50"][-1] for n in NETS}, "r90_median": r90_median}


def noise_section(run: Run, noise: dict, curves: dict) -> dict:
    """Fig. 4: accuracy under Gaussian noise vs SNR, its table and claim (5)."""
    snr = [p["snr_db"] for p in noise[NETS[0]]["curve"]]
    path, link = run.figure("fig4-noise")
    plot_curves(path, snr, {LABELS[n]: [p["value"] for p in noise[n]["curve"]] for n in NETS},
                bands={LABELS[n]: ([p["low"] for p in noise[n]["curve"]],
                                   [p["high"] for p in noise[n]["curve"]]) for n in NETS},
                xlabel="SNR (dB)", ylabel="test accuracy",
                title="Fig. 4: accuracy under Gaussian noise (test set)", ylim=(0.0, 1.0))
    rows = [[LABELS[n], pct(noise[n]["clean"]["value"])]
            + [pct(p["value"]) for p in noise[n]["curve"]] for n in NETS]
    run.section("## Figure 4: accuracy under Gaussian noise\n\n"
                "Test accuracy on x + N(0, sigma^2 I), SNR = 10 log10(mean(x^2) / sigma^2) per "
                "image (one noise draw per test image, no clamping). The paper (Fig. 4, "
                "CIFAR-10/100 and ImageNet32 over about 30-45 dB): the methods rank under "
                "Gaussian noise as they rank by alpha_lim in Fig. 5. Fashion-MNIST MLPs only "
                "lose accuracy below about 15 dB, hence our range.\n\n"
                f"![Fig. 4]({link})\n\n"
                + table(["net", "clean (%)"] + [f"{s:g} dB (%)" for s in snr], rows))
    by_alpha = order({n: curves[n]["alpha_lim"][-1] for n in NETS})
    noisy_acc = {n: _noise_at(noise[n], SNR_CHECK) for n in NETS}
    drop = {n: noise[n]["clean"]["value"] - noisy_acc[n] for n in NETS}
    by_noise = order(noisy_acc, reverse=True)
    by_drop = order(drop)
    agree = [p["snr_db"] for k, p in enumerate(noise[NETS[0]]["curve"])
             if order({n: noise[n]["curve"][k]["value"] for n in NETS}, reverse=True) == by_alpha]
    run.claim("(5) Fig. 4: the ranking under Gaussian noise is the ranking by alpha_lim (lower "
              "alpha_lim -> higher noisy accuracy)", holds=by_noise == by_alpha,
              ours=(f"by alpha_lim(r_max), lowest first: {_names(by_alpha)}; by accuracy at "
                    f"{SNR_CHECK:g} dB, highest first: {_names(by_noise)}; by accuracy lost to "
                    f"the noise, smallest first: {_names(by_drop)}; the accuracy ranking equals "
                    f"the alpha_lim ranking at "
                    + (", ".join(f"{v:g}" for v in agree) + " dB" if agree else "no SNR")
                    + f" of {snr[0]:g} ... {snr[-1]:g} dB"))
    return {"by_alpha": by_alpha, "by_noise": by_noise, "by_drop": by_drop,
            "noisy_acc": noisy_acc, "snr_agree": agree}


def summary(f: dict, data: Dataset) -> str:
    """Honest sentences computed from the numbers."""
    acc = f["accuracy"]
    top = f["alpha_top"]
    out = [f"On {data.name}, the three MLPs reach "
           + ", ".join(f"{pct(acc[n]['test'])}% ({LABELS[n]})" for n in NETS)
           + " clean test accuracy (the paper's CIFAR-10 ResNets: 88.1% V, 87.2% PGD, "
           "79.1% L2NN)."]
    zero = f["incompat_zero"]
    out.append("Figs. 1/3: a global Lipschitz constraint with one-hot outputs rules out "
               + ", ".join(f"{pct(v)}% ({n})" for n, v in f["incompat_at_one"].items())
               + " of the distinct-class pairs at alpha = 1 and none from alpha = "
               + ", ".join(f"{_num(z)} ({n})" for n, z in zero.items())
               + (": the same shape as the paper's Fig. 1, but the threshold is lower than its 4"
                  " because Fashion-MNIST/digits pairs of distinct classes differ by at least "
                  "about 0.5 in some pixel (l_inf), more than CIFAR's natural images."
                  if not all(z is not None and z >= 4 for z in zero.values()) else
                  ", as large as the paper's.")
               + (" At d = 0.3 no pair is incompatible, as in the paper's Fig. 3."
                  if all(v < NEGLIGIBLE for v in f["incompat_d03"].values()) else
                  " At d = 0.3 some pairs remain incompatible, unlike the paper's Fig. 3."))
    lowest = order(top)[0]
    out.append("Fig. 5: " + ", ".join(f"{LABELS[n]} saturates at alpha_lim = {top[n]:.3g}"
                                      for n in NETS)
               + (". Vanilla is the largest, as in the paper" if order(top, reverse=True)[0]
                  == "vanilla" else ". Unlike the paper, Vanilla is not the largest")
               + f"; {LABELS[lowest]} is the lowest.")
    flat = [LABELS[n] for n in NETS if not f["shape"][n][0]]
    median_ok = [LABELS[n] for n in NETS if all(f["shape_median"][n])]
    if flat:
        out.append("The maximum over centres is nearly flat in r for "
                   + ", ".join(flat) + ": a few training points lie close to the decision "
                   "boundary, where the softmax slope is large at any radius (the paper's "
                   "ResNets fit CIFAR-10's training set, so their training points sit deep "
                   "inside their classes).")
    med, r90m = f["median_top"], f["r90_median"]
    out.append("The median training point's curve rises and saturates for "
               + (", ".join(median_ok) if median_ok else "none of the nets") + "; it ends at "
               + ", ".join(f"{med[n]:.2g} ({LABELS[n]}, 90% of it at r = {r90m[n]:g})"
                           for n in NETS) + ".")
    same = f["by_noise"] == f["by_alpha"]
    out.append(f"Fig. 4: at {SNR_CHECK:g} dB the nets rank {_names(f['by_noise'])} (highest "
               f"accuracy first); by alpha_lim they rank {_names(f['by_alpha'])} (lowest first)"
               + (", the same order as in the paper." if same else
                  f"; the orders differ (by accuracy lost to noise: {_names(f['by_drop'])}),"
                  " partly because the nets' clean accuracies differ")
               + (f"; the orders agree at {', '.join(f'{v:g}' for v in f['snr_agree'])} dB."
                  if f["snr_agree"] and not same else "" if same else
                  "; they agree at no SNR of our range."))
    out.append("Differences are expected: one small MLP instead of the paper's pretrained "
               "ResNets, a few epochs, Fashion-MNIST instead of CIFAR, our constraint-trained "
               "net instead of Parseval/Laplacian/L2NN, and lower bounds of alpha_lim from "
               "Gaussian noise and PGD.")
    return " ".join(out)


def budget_text(budget: Budget, data: Dataset, incompat: dict) -> str:
    v, p, c = budget.epochs
    return (f"MLP {data.input_dim}-{budget.hidden}-{budget.hidden}-{data.classes} trained on "
            f"{len(data.y_train)} {data.name} training points (batch {budget.batch_size}, Adam "
            f"lr {budget.lr:g}): Vanilla {v} epochs, PGD {p} epochs ({budget.adv_steps} PGD "
            f"steps, l_inf eps 0.1), LocalLipschitz constraint {c} epochs (alpha 1, r 0.3, l_2; "
            f"a = 1, b = {budget.constraint_weight:g}, {budget.constraint_steps} PGD steps); "
            f"alpha_lim on {budget.centres} training points x {budget.samples} Gaussian "
            f"samples + {budget.pgd_steps} PGD steps per radius; incompatibility on "
            + ", ".join(f"{r['points']} {n} training points ({r['pairs']:,} distinct-class "
                        f"pairs)" for n, r in incompat.items())
            + f"; noise on {len(data.y_test)} test points, one draw each.")


# --- small formatting / plotting helpers ------------------------------------------------------
def _noise_at(noise: dict, snr: float) -> float:
    """The noisy accuracy at the grid's SNR closest to `snr`."""
    return min(noise["curve"], key=lambda p: abs(p["snr_db"] - snr))["value"]


def _names(keys: list[str]) -> str:
    return ", then ".join(LABELS[k] for k in keys)


def _num(value: float | None) -> str:
    return "never (in the grid)" if value is None else f"{value:.3g}"


def _d_name(d: float) -> str:
    return "inf" if math.isinf(d) else f"{d:g}"


def _plot_log_x(path: Path, series: dict[str, tuple[list, list]], *, xlabel: str, ylabel: str,
                title: str) -> None:
    """Curves on a log x axis (alpha spans 0.5 ... 16) and a symlog y axis (fractions)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, "-", marker="o", markersize=2, label=label)
    ax.set_xscale("log")
    # symlog: the small fractions at small d stay visible, and 0 can be drawn
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_ylim(0.0, 1.5)
    label_axes(ax, xlabel=xlabel, ylabel=ylabel + " (symlog)", title=title, fontsize=9)
    save_figure(fig, path)


def _plot_alpha(path: Path, radii: list[float], curves: dict) -> None:
    """Fig. 5: alpha_lim(r) (the max over centres) and the median centre's curve, per net."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), dpi=110)
    for key, ax, title in (("alpha_lim", axes[0], "alpha_lim(r): max over training points"),
                           ("q50", axes[1], "median training point")):
        for n, style in zip(NETS, ("-", "--", "-.")):
            ax.plot(radii, curves[n][key], style, marker="o", markersize=3, label=LABELS[n])
        ax.set_xscale("log")
        label_axes(ax, xlabel="r (l_2)", ylabel="alpha (softmax, l_2; lower bound)",
                   title=f"Fig. 5: {title}", fontsize=9)
    save_figure(fig, path)
