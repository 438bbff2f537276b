"""Shaham et al. (seed 002), §5.1, the experiment: robust optimisation (Algorithm 1) with l_1,
l_2 and l_inf uncertainty sets against a baseline convnet; measured: clean accuracy, the set A
of the baseline's single-step adversarial examples and every net's accuracy on it (Table 1),
and accuracy under FGSM vs eps (Figure 3). `measure` returns them as a plain results dict.

The nets are trained as the authors' released scripts train them (github.com/yutaroyamada/
RobustTraining, mnist/train-baseline.lua and mnist/train-mnist-robust-{l1,l2,inf}-BN.lua; the
paper's text gives none of this): pixels standardised with the training set's mean and
standard deviation, SGD (lr 1e-2, momentum 0.9 with Torch7's dampening 0.9, L2 1e-3, rate decay
5e-6, batch 100), a batch-norm layer on the input of the robust nets only, and their radii
(`intensity`: l_1 2, l_2 2, l_inf 0.2 in standardised units). specrob keeps pixels in [0, 1]
and puts the standardisation inside the net, so a radius r in standardised units is r·sigma in
pixel units (every norm is homogeneous): sigma is this data's pixel standard deviation.

The robustified nets use specrob's `adversarial` regime with adv_steps = 1 (each update is at
x + Δx, Δx one steepest-ascent step of the CE loss in the property's ball); A and the FGSM
points are generated here on the CE loss itself, as in the paper's eqs. (2) and (11).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import specrob
from specrob.network.model_file import build_model
from specrob.reproduce.common import Run, accuracy, describe_data
from specrob.resources import examples_dir
from specrob.search.region import ascent_step
from specrob.training.trainer import TrainConfig

# The paper's A_mnist (§5.1) held this many examples: it tells how strong its steps were.
PAPER_A_SIZE = 1203
# MNIST's pixel standard deviation as the authors' scripts standardise it (the 32x32 Torch7
# files, digits padded with zeros: mean 0.100, sd 0.275): their radii in [0, 1] units there.
MNIST_SIGMA_32 = 0.2752


@dataclass(frozen=True)
class UncertaintySet:
    """A norm ball B_p(x, radius) of Algorithm 1: `standardised` is the authors' radius (their
    scripts' `intensity`, in standardised pixel units), `radius` the same ball in this data's
    [0, 1] pixel units (`in_pixels`)."""

    name: str      # "l_1", "l_2", "l_inf"
    p: str         # the norm in the spec language: "1", "2", "inf"
    standardised: float
    radius: float = 0.0

    @property
    def norm(self) -> float:
        return math.inf if self.p == "inf" else float(self.p)

    @property
    def net(self) -> str:
        return f"robust {self.name}"

    def in_pixels(self, sigma: float) -> "UncertaintySet":
        """This set with its radius in pixel units: standardised·sigma, rounded to 4 digits."""
        return replace(self, radius=float(f"{self.standardised * sigma:.4g}"))

    def prop(self):
        """CR over this ball: its ball is where the adversarial regime takes its step."""
        return specrob.loads(f"property P = CR(eps = {self.radius}, p = {self.p})")["P"]


# The authors' radii (mnist/train-mnist-robust-*-BN.lua, option `intensity`).
SETS = (UncertaintySet("l_1", "1", 2.0), UncertaintySet("l_2", "2", 2.0),
        UncertaintySet("l_inf", "inf", 0.2))
# The paper's A: 1203 examples over three norms from ~9909 correctly classified test points,
# i.e. one step fooled its baseline on about 4% of them per norm (the page compares ours).
PAPER_FOOLED = PAPER_A_SIZE / 3 / round(0.9909 * 10000)
NETS = ("baseline",) + tuple(s.net for s in SETS)


@dataclass(frozen=True)
class Budget:
    """How much to train and evaluate; the optimiser is the authors' (see the module)."""

    train: int | None          # training points (None: all 60k)
    test: int | None           # test points (None: all 10k)
    epochs: int
    channels: tuple[int, int]  # the paper: 32 and 64 filters
    hidden: int                # the paper: 200
    eps_values: tuple[float, ...]
    eval_points: int           # the trainer's per-epoch check (PGD on the property)
    strength_points: int       # training points on which the steps' strength is measured
    seeds: int = 1             # every net trained with seeds 0..seeds-1 (standard errors)
    batch_size: int = 100
    lr: float = 1e-2
    momentum: float = 0.9
    dampening: float = 0.9     # Torch7 optim.sgd's default: the momentum itself
    weight_decay: float = 1e-3
    lr_decay: float = 5e-6
    input_bn: bool = True      # the robust nets' input batch norm (the baseline has none)

    def config(self, regime: str, seed: int) -> TrainConfig:
        return TrainConfig(regime=regime, adv_steps=1, epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, optimizer="sgd",
                           momentum=self.momentum, dampening=self.dampening,
                           weight_decay=self.weight_decay, lr_decay=self.lr_decay, seed=seed,
                           eval_points=self.eval_points, eval_steps=10)


FGSM_EPS = tuple(round(0.02 * k, 2) for k in range(11))  # 0 .. 0.2
FULL = Budget(train=None, test=None, epochs=4, channels=(16, 32), hidden=200,
              eps_values=FGSM_EPS, eval_points=256, strength_points=2000, seeds=3)
# The authors' scripts: conv32/conv64, FC200; the baseline runs 120 epochs (numEpochs), the
# robust scripts loop until stopped (`while true`): 120 for all.
PAPER = Budget(train=None, test=None, epochs=120, channels=(32, 64), hidden=200,
               eps_values=FGSM_EPS, eval_points=256, strength_points=2000, seeds=1)
SMOKE = Budget(train=1000, test=300, epochs=2, channels=(8, 16), hidden=64,
               eps_values=(0.0, 0.05, 0.1, 0.2), eval_points=64, strength_points=200, seeds=2)


# --- steepest ascent on the CE loss (eqs. 2 and 11) -------------------------------------------
def ce_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int = 2000
                ) -> torch.Tensor:
    """∇_x CE(f(x), y) for every point (batched; the model's weights are not touched)."""
    grads = []
    for i in range(0, len(y), batch):
        xb = x[i:i + batch].clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb), y[i:i + batch], reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
        grads.append(g)
    return torch.cat(grads) if grads else torch.zeros_like(x)


def steepest_step(x: torch.Tensor, grad: torch.Tensor, p: float, radius: float, *,
                  low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """x + Δ̂x of eq. (11), clamped to the pixel range: the linearised loss's maximiser in
    ball ∩ box (§4.1; specrob's `ascent_step`): radius·sign(g) for l_inf, radius·g/||g||_2 for
    l_2, one pixel moved by the radius for l_1 (the largest-|g| pixel that can still move)."""
    return (x + ascent_step(grad, p, radius, x=x, low=low, high=high)).clamp(low, high)


# Where the bisection of `strength` looks, in pixel units (an l_1 step moves one pixel).
CAPS = {"l_1": 1.0, "l_2": 5.0, "l_inf": 0.3}


def strength(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: UncertaintySet, *,
             target: float = PAPER_FOOLED, iters: int = 16) -> dict:
    """How strong one eq. (11) step in `s` is against `model`: the share of the points it
    classifies correctly that the step fools (`fooled`), and the radius (bisection, at most
    CAPS) at which it would fool `target` of them, the paper's A_mnist rate (`paper_radius`)."""
    right = predict(model, x) == y
    xs, ys = x[right], y[right]
    grad = ce_gradient(model, xs, ys)

    def fooled(r: float) -> float:
        return float((predict(model, steepest_step(xs, grad, s.norm, r)) != ys).float().mean())

    lo, hi = 0.0, CAPS[s.name]
    if fooled(hi) > target:
        for _ in range(iters):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if fooled(mid) < target else (lo, mid)
    return {"radius": s.radius, "standardised": s.standardised, "fooled": fooled(s.radius),
            "paper_radius": float(f"{hi:.3g}"), "points": len(ys), "cap": CAPS[s.name]}


def predict(model: nn.Module, x: torch.Tensor, *, batch: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(-1) for i in range(0, len(x), batch)]
                         ) if len(x) else torch.zeros(0, dtype=torch.long, device=x.device)


def adversarial_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    sets: tuple[UncertaintySet, ...]) -> dict[str, dict[str, torch.Tensor]]:
    """The paper's A: from the test points `model` classifies correctly, one eq. (11) step per
    uncertainty set; kept where `model` then errs. Per set: images, labels, source indices."""
    right = (predict(model, x) == y).nonzero().flatten()
    xs, ys = x[right], y[right]
    grad = ce_gradient(model, xs, ys)
    out = {}
    for s in sets:
        adv = steepest_step(xs, grad, s.norm, s.radius)
        fooled = predict(model, adv) != ys
        out[s.name] = {"x": adv[fooled], "y": ys[fooled], "index": right[fooled],
                       "x0": xs[fooled]}
    return out


def fgsm_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  eps_values: tuple[float, ...]) -> list[float]:
    """Accuracy on x + eps·sign(∇_x CE) clamped to [0, 1] (Goodfellow et al., the paper's
    eq. 2), generated against the model's own weights; one gradient serves every eps."""
    direction = ce_gradient(model, x, y).sign()
    return [accuracy(model, (x + eps * direction).clamp(0.0, 1.0), y) for eps in eps_values]


# --- the experiment --------------------------------------------------------------------------
PAGE_ONLY = ("dataset", "a_samples")  # results the page draws on, not the JSON


def pixel_stats(data) -> tuple[float, float]:
    """The training pixels' mean and standard deviation: the authors' global standardisation
    (Torch7 `normalizeGlobal`), built into every net here, and sigma converts their radii."""
    x = np.asarray(data.x_train)
    total = squares = 0.0
    for start in range(0, len(x), 4096):  # float64 sums over row blocks: memory by the block
        block = x[start:start + 4096].astype(np.float64)
        total, squares = total + block.sum(), squares + np.square(block).sum()
    n = x.size
    mean = total / n
    return float(mean), float(np.sqrt(max(squares / n - mean * mean, 0.0) * n / (n - 1)))


def measure(run: Run, budget: Budget) -> dict:
    """Train the baseline and the three robustified nets at the authors' radii (or reload
    them), measure the steps' strength, Table 1 and Figure 3; with budget.seeds > 1, the same
    nets with further seeds for the accuracies' standard errors. Every stage is cached."""
    options = run.options
    torch.manual_seed(options.seed)
    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget=asdict(budget))
    x_test, y_test = run.tensors(data, "test")
    mean, sigma = pixel_stats(data)
    sets = tuple(s.in_pixels(sigma) for s in SETS)
    models = train_nets(run, data, budget, sets, options.seed, (mean, sigma))
    x_str, y_str = run.tensors(data, "train", budget.strength_points)
    steps_strength = run.stage("strength", lambda: {s.name: strength(models["baseline"], x_str,
                                                                     y_str, s) for s in sets})
    x_step, y_step = run.tensors(data, "train", budget.batch_size)
    steps = run.stage("step-cpu-seconds", lambda: step_stage(run, data, budget, sets,
                                                             x_step, y_step, (mean, sigma)))
    paper_steps = run.stage("paper-step-cpu-seconds", lambda: step_stage(
        run, data, PAPER, sets, x_step, y_step, (mean, sigma), repeats=5))
    table1 = run.stage("table1", lambda: table1_stage(models, x_test, y_test, sets))
    fgsm = run.stage("fgsm", lambda: fgsm_stage(models, x_test, y_test, budget.eps_values))
    seeds = {str(options.seed): seed_record(table1, fgsm)}
    for k in range(1, budget.seeds):
        seed = options.seed + k
        seeds[str(seed)] = run.stage(f"seed-{seed}", lambda seed=seed: seed_stage(
            train_nets(run, data, budget, sets, seed, (mean, sigma)), x_test, y_test,
            budget.eps_values))
    return {"setup": setup_record(data, budget, sets, mean, sigma), "strength": steps_strength,
            "fgsm": fgsm, "step_cpu_seconds": steps, "seeds": seeds,
            "paper_hours": paper_hours(paper_steps, data.train_size),
            "table1": {k: v for k, v in table1.items() if k != "samples"},
            "a_samples": table1["samples"], "dataset": describe_data(data)}


def build_net(data, budget: Budget, robust: bool, stats: tuple[float, float]) -> nn.Module:
    """The convnet with the standardisation inside; the robust nets add the input batch norm."""
    return build_model(examples_dir() / "shaham_convnet.py", data.input_dim, data.classes,
                       channels=budget.channels, hidden=budget.hidden, standardize=stats,
                       input_bn=robust and budget.input_bn)


def train_nets(run: Run, data, budget: Budget, sets: tuple[UncertaintySet, ...], seed: int,
               stats: tuple[float, float]) -> dict[str, nn.Module]:
    """The baseline (plain CE; its property, the l_inf ball, only sets the trainer's PGD
    check) and one robustified net per set (Algorithm 1 in its ball), all from seed `seed`'s
    initial weights; run folders <work>/<net>[-seed<k>] (the first seed keeps the plain names)."""
    models = {}
    for name, regime, s in [("baseline", "baseline", sets[-1]),
                            *[(s.net, "adversarial", s) for s in sets]]:
        torch.manual_seed(seed)
        net = build_net(data, budget, regime != "baseline", stats)
        folder = name.replace(" ", "-") + ("" if seed == run.options.seed else f"-seed{seed}")
        models[name] = run.train(folder, net, s.prop(), data, budget.config(regime, seed))
    return models


def seed_record(table1: dict, fgsm: dict) -> dict:
    """What is compared across seeds: each net's clean accuracy and FGSM curve."""
    return {"clean": {n: table1["nets"][n]["clean"] for n in NETS},
            "fgsm": {n: fgsm["accuracy"][n] for n in NETS}, "eps": fgsm["eps"]}


def seed_stage(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
               eps_values: tuple[float, ...]) -> dict:
    return {"clean": {n: accuracy(m, x, y) for n, m in models.items()},
            "fgsm": {n: fgsm_accuracy(m, x, y, eps_values) for n, m in models.items()},
            "eps": list(eps_values)}


def step_stage(run: Run, data, budget: Budget, sets: tuple[UncertaintySet, ...],
               x: torch.Tensor, y: torch.Tensor, stats: tuple[float, float],
               repeats: int = 15) -> dict[str, list[float]]:
    """CPU seconds of one training step on one batch, the baseline's and Algorithm 1's in each
    uncertainty set, interleaved (`step_cpu_seconds`): the paper's "about twice as long"
    measured where wall-clock epochs flip with machine load. Fresh copies of the net."""
    from specrob.reproduce.common import step_cpu_seconds
    setups = {}
    for name, regime, s in [("baseline", "baseline", sets[-1]),
                            *[(s.net, "adversarial", s) for s in sets]]:
        torch.manual_seed(run.options.seed)
        net = build_net(data, budget, regime != "baseline", stats).to(run.device)
        setups[name] = (net, s.prop(), budget.config(regime, run.options.seed))
    return step_cpu_seconds(setups, x, y, repeats=repeats)


def table1_stage(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                 sets: tuple[UncertaintySet, ...]) -> dict:
    """Clean accuracy of every net; A against the baseline; every net's accuracy on A."""
    A = adversarial_set(models["baseline"], x, y, sets)
    x_all = torch.cat([A[s.name]["x"] for s in SETS])
    y_all = torch.cat([A[s.name]["y"] for s in SETS])
    nets = {}
    for name, m in models.items():
        nets[name] = {"clean": accuracy(m, x, y),
                      "A": accuracy(m, x_all, y_all) if len(y_all) else None,
                      "A_by_norm": {s.name: (accuracy(m, A[s.name]["x"], A[s.name]["y"])
                                             if len(A[s.name]["y"]) else None) for s in SETS}}
    baseline_right = int((predict(models["baseline"], x) == y).sum())
    return {"nets": nets, "A_size": len(y_all), "A_counts": {s.name: len(A[s.name]["y"])
                                                             for s in SETS},
            "test_points": len(y), "baseline_correct": baseline_right,
            "samples": samples(models["baseline"], A)}


def fgsm_stage(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
               eps_values: tuple[float, ...]) -> dict:
    """Every net's accuracy under FGSM against itself, at every eps."""
    return {"eps": list(eps_values), "points": len(y),
            "accuracy": {name: fgsm_accuracy(m, x, y, eps_values) for name, m in models.items()}}


def samples(model: nn.Module, A: dict, per_norm: int = 3) -> dict:
    """A few members of A per norm for the figure (originals, images, labels, predictions)."""
    out = {}
    for s in SETS:
        part = {k: v[:per_norm] for k, v in A[s.name].items()}
        out[s.name] = {"x0": part["x0"].round(decimals=4).tolist(),
                       "x": part["x"].round(decimals=4).tolist(),
                       "y": part["y"].tolist(), "pred": predict(model, part["x"]).tolist(),
                       "index": part["index"].tolist()}
    return out


def setup_record(data, budget: Budget, sets: tuple[UncertaintySet, ...], mean: float,
                 sigma: float) -> dict:
    return {"dataset": data.name, "train_points": data.train_size,
            "test_points": data.test_size, "epochs": budget.epochs, "seeds": budget.seeds,
            "optimizer": {"name": "sgd", "lr": budget.lr, "momentum": budget.momentum,
                          "dampening": budget.dampening, "weight_decay": budget.weight_decay,
                          "lr_decay": budget.lr_decay, "batch_size": budget.batch_size},
            "net": {"channels": list(budget.channels), "hidden": budget.hidden,
                    "input_bn": "robust nets" if budget.input_bn else "none",
                    "standardisation": {"mean": round(mean, 4), "sigma": round(sigma, 4)}},
            "uncertainty_sets": {s.name: {"standardised": s.standardised, "pixels": s.radius}
                                 for s in sets},
            "fgsm": "x + eps * sign(grad_x CE), clamped to [0, 1], against each net's own "
                    "weights"}


def paper_hours(steps: dict[str, list[float]], train_points: int) -> dict:
    """The paper budget's training time here, from CPU seconds per step of the paper-size nets
    (median of interleaved steps): hours for its 120 epochs of every net, and the most epochs
    that fit in 3 hours (the bound under which a page runs the paper budget)."""
    import statistics
    per_epoch = sum(statistics.median(v) for v in steps.values()) * math.ceil(
        train_points / PAPER.batch_size)
    return {"hours": per_epoch * PAPER.epochs / 3600, "epochs_in_3h": int(3 * 3600 // per_epoch),
            "seconds_per_epoch": per_epoch}


# --- reading the results ---------------------------------------------------------------------
def epoch_seconds(training: dict) -> dict[str, float]:
    """Each net's mean seconds per training epoch (from run.results['training'])."""
    out = {}
    for name in NETS:
        m = training[name.replace(" ", "-")]
        out[name] = sum(r["seconds"] for r in m) / max(len(m), 1)
    return out
