"""Shaham et al. (seed 002), the page: the setup and the authors' radii in pixel units, Table 1 with
members of A (the paper's Figs. 1-2), Figure 3's FGSM curves, the training table, the budget
and the summary, all written from the experiment's results.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from specrob.reproduce.common import Run, pct, plot_curves, save_figure, table
from specrob.reproduce.shaham.claims import PAPER_TABLE1, clearly_above
from specrob.reproduce.shaham.experiment import (
    NETS,
    MNIST_SIGMA_32,
    PAPER_A_SIZE,
    PAPER_FOOLED,
    SETS,
    Budget,
    epoch_seconds,
)

TITLE = "Shaham et al. (seed 002): robust optimisation with l_1, l_2 and l_inf uncertainty sets"
FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Boot")
# item, the paper's text, the authors' released code (github.com/yutaroyamada/RobustTraining,
# mnist/train-baseline.lua, mnist/train-mnist-robust-{l1,l2,inf}-BN.lua,
# mnist/computeAdversarials.lua), specrob here
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("Radii", "not given", "`intensity`: l_inf 0.2, l_2 2, l_1 2 in standardised pixel units "
     f"(x {MNIST_SIGMA_32} = 0.055 / 0.55 / 0.55 in [0, 1] units for their 32x32 MNIST)",
     "the authors' radii x this data's pixel sd (see Setup): the same balls in the units of "
     "the standardised input"),
    ("Input scaling", "not given", "global standardisation of the data (`normalizeGlobal`)",
     "the same, as a fixed first layer of every net (inputs and radii stay in [0, 1] units)"),
    ("Optimiser", "not given", "Torch7 optim.sgd: lr 1e-2, momentum 0.9 (dampening 0.9, its "
     "default), L2 1e-3, learningRateDecay 5e-6, batch 100",
     "the same (torch.optim.SGD with dampening 0.9, weight_decay 1e-3, lr / (1 + 5e-6 t))"),
    ("Input layer", "not given", "a batch-norm layer without scale/shift on the input of the "
     "robust nets only", "the same (`examples/shaham_convnet.py`, input_bn)"),
    ("Epochs", "not given", "baseline 120 (`numEpochs`); robust scripts loop until stopped",
     "--budget paper: 120; the committed page: see Budget"),
    ("Adversarial step in training", "eq. (11), one step", "computed in training mode (the "
     "input batch norm uses the batch's statistics); not clipped to the pixel range",
     "computed in evaluation mode (running statistics); clipped to [0, 1] (an l_1 step moves "
     "the largest-gradient pixel that can still move)"),
    ("Images", "28x28 MNIST", "32x32 (the Torch7 MNIST files: digits padded with zeros)",
     "28x28; unpadded convolutions (28 -> 24 -> 8 -> 4 -> 2)"),
    ("Data", "MNIST", "MNIST", "Fashion-MNIST (MNIST is not shipped offline; "
     "`--data idx:DIR` runs MNIST files)"),
    ("Seeds", "one run", "one run (seed 1)", "accuracies over `seeds` runs with standard "
     "errors (see Seeds)"),
    ("Training time", "Algorithm 1 takes about twice as long", "-",
     "CPU time of interleaved training steps (wall-clock epochs flip with machine load)"),
)


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figures, in the page's order."""
    data = results["dataset"]
    run.section("## How this differs from the authors' experiments\n\n"
                + table(["item", "paper text", "authors' code", "specrob here"],
                        [list(row) for row in DIFFERENCES]))
    setup_section(run, data, budget, results["setup"], results["strength"])
    table1_section(run, results["table1"], results["a_samples"],
                   FASHION_CLASSES if data["name"].startswith("fashion") else None)
    fgsm_section(run, results["fgsm"])
    seeds_section(run, results["seeds"])
    training_section(run)


def budget_text(results: dict, budget: Budget) -> str:
    data = results["dataset"]
    c1, c2 = budget.channels
    est = results["paper_hours"]
    fits = (f" The paper budget (`--budget paper`: the authors' 120 epochs, conv32/conv64) would "
            f"take about {est['hours']:.1f} h of training here (CPU time per step of the "
            f"paper-size nets)" + (
                f"; the most epochs of it that fit in 3 h: about {est['epochs_in_3h']} "
                f"(`--budget paper --epochs {est['epochs_in_3h']}`)."
                if est["epochs_in_3h"] < 120 else ": it fits in 3 h.")
            if budget.epochs != 120 or budget.channels != (32, 64) else "")
    return (f"{budget.epochs} epoch(s) per net (SGD lr {budget.lr:g}, momentum "
            f"{budget.momentum:g}, L2 {budget.weight_decay:g}, batch {budget.batch_size}: the "
            f"authors' settings; their baseline ran 120 epochs) on {data['train']} "
            f"{data['name']} training points, {budget.seeds} seed(s); net conv{c1}-pool3-"
            f"conv{c2}-pool2-FC{budget.hidden}-10 (the authors': conv32/conv64, FC200); "
            f"evaluation on {data['test']} test points." + fits)


# --- the sections ----------------------------------------------------------------------------
def setup_section(run: Run, data: dict, budget: Budget, setup: dict, strength: dict) -> None:
    c1, c2 = budget.channels
    sd = setup["net"]["standardisation"]
    rows = [[s.name, f"{strength[s.name]['standardised']:g}",
             f"{strength[s.name]['radius']:g}",
             f"{s.standardised * MNIST_SIGMA_32:.3g}",
             pct(strength[s.name]["fooled"], 1),
             f"{strength[s.name]['paper_radius']:g}"] for s in SETS]
    run.section(f"""## Setup

- **Data**: {data['name']} ({data['train']} training, {data['test']} test points, pixels in
  [0, 1]). The paper used MNIST, which is not shipped here; with MNIST's IDX files pass
  `--data idx:DIR`.
- **Nets**: the paper's convnet: (x - {sd['mean']:g}) / {sd['sigma']:g} (the authors'
  global standardisation, here a fixed first layer) - conv 5x5 ({c1} filters) - ReLU - max-pool
  3x3 - conv 5x5 ({c2}) - ReLU - max-pool 2x2 - FC {budget.hidden} - ReLU - FC 10 (the authors:
  32 and 64 filters, FC 200); the robust nets have a batch-norm layer without scale or shift
  on the input, as in the authors' scripts. All four nets of a seed start from the same
  weights.
- **Training**: the authors' SGD (lr {budget.lr:g}, momentum {budget.momentum:g} with
  dampening {budget.dampening:g}, L2 {budget.weight_decay:g}, rate decay {budget.lr_decay:g},
  batch {budget.batch_size}). **Baseline**: cross-entropy. **Robustified nets** (Algorithm 1):
  specrob's `adversarial` regime with one steepest-ascent step (`adv_steps = 1`): every update
  is at x + Δx, Δx the step of the CE loss in the ball of the property `CR(eps = r, p = ...)`,
  never at x itself.
- **Uncertainty sets**: the paper does not give its radii; the authors' scripts do, in
  standardised units. A radius r there is r·sigma in pixel units for every norm (the
  standardisation divides every pixel by sigma): sigma = {sd['sigma']:g} for this data (their
  32x32 MNIST: {MNIST_SIGMA_32}). How strong one step is against our baseline, on the first
  {budget.strength_points} training points it classifies correctly; the paper's A_mnist
  ({PAPER_A_SIZE} examples from about 9909 correct test points, three norms) implies about
  {pct(PAPER_FOOLED, 1)}% per norm, reached here at the radius in the last column:

{table(["set", "radius (standardised)", "radius (pixels, ours)", "radius (pixels, MNIST)",
        "one step fools the baseline on (%)", "radius for the paper's rate (pixels)"], rows)}

- **A** (the paper's A_mnist): from the test points the baseline classifies correctly, one
  eq. (11) step against the baseline per set (same radii), kept where the baseline then errs;
  A is the union of the three parts, so the baseline has 0% on it by construction. The l_1
  step moves the largest-|gradient| pixel that can still move in the gradient's direction
  (specrob's steepest ascent within the box, the same in training).
- **FGSM** (Fig. 3): eq. (2) on the cross-entropy itself, x + eps·sign(∇x CE(f(x), y)), clamped
  to [0, 1], generated against each net's own weights; accuracy counts misclassified clean
  points as failures.""")


def seeds_section(run: Run, seeds: dict) -> None:
    """Clean accuracy per seed, its mean and standard error, and the paired gains."""
    from specrob.reproduce.common import mean_se
    from specrob.reproduce.shaham.claims import clean_gains
    if len(seeds) < 2:
        run.section("## Seeds\n\nOne seed at this budget: the accuracies' uncertainty is "
                    "the binomial one of the test set (see the claims).")
        return
    gains = clean_gains(seeds)
    rows = []
    for name in NETS:
        values = [r["clean"][name] for r in seeds.values()]
        m, se = mean_se(values)
        gain = "-" if name == "baseline" else \
            f"{100 * gains[name][0]:+.2f} ± {100 * gains[name][1]:.2f}"
        rows.append([name] + [pct(v, 2) for v in values] + [f"{100 * m:.2f} ± {100 * se:.2f}",
                                                             gain])
    run.section(f"""## Seeds

Every net trained again from other initial weights and batch orders (seeds
{', '.join(seeds)}); clean test accuracy (%), its mean ± standard error, and the gain over the
baseline of the same seed (points; the paper's Table 1 gains: +0.07, +0.19, +0.24):

{table(["net"] + [f"seed {k}" for k in seeds] + ["mean ± SE", "gain ± SE"], rows)}""")


def table1_section(run: Run, t: dict, samples: dict, names: tuple[str, ...] | None) -> None:
    rows = []
    for name in NETS:
        ours, (p_clean, p_a) = t["nets"][name], PAPER_TABLE1[name]
        rows.append([name, pct(ours["clean"], 2), pct(p_clean, 2), pct(ours["A"], 2),
                     pct(p_a, 2)] + [pct(ours["A_by_norm"][s.name], 1) for s in SETS])
    counts = ", ".join(f"{t['A_counts'][s.name]} from {s.name}" for s in SETS)
    rates = ", ".join(f"{pct(t['A_counts'][s.name] / max(t['baseline_correct'], 1), 1)}% ({s.name})"
                      for s in SETS)
    headers = (["net", "test acc. % (ours)", "test acc. % (paper, MNIST)", "acc. on A % (ours)",
                "acc. on A % (paper, MNIST)"] + [f"on A's {s.name} part %" for s in SETS])
    path, link = run.figure("fig2-A-samples")
    plot_samples(path, samples, names)
    run.section(f"""## Table 1: accuracy on the test set and on A

{table(headers, rows)}

A has **{t['A_size']}** adversarial examples ({counts}), generated from the
{t['baseline_correct']} of {t['test_points']} test points the baseline classifies correctly
(the paper: {PAPER_A_SIZE} on MNIST, its split by norm not given). One step fools the baseline
on {rates} of those points; the paper's A, {PAPER_A_SIZE} examples from about 9909 correct
points for the three norms together, points to radii that were small for its net.

![Members of A: the test point (top) and its adversarial example (bottom), true label →
the baseline's prediction]({link})""")


def plot_samples(path: Path, samples: dict, names: tuple[str, ...] | None = None) -> None:
    """The paper's Figs. 1-2: originals above, members of A below; the l_1 pixel circled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle
    cols = [(name, k) for name in samples for k in range(len(samples[name]["y"]))]

    def label(i: int) -> str:
        return names[i] if names and i < len(names) else str(i)

    fig, axes = plt.subplots(2, max(len(cols), 1), figsize=(1.3 * max(len(cols), 1), 3.0),
                             dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c, (name, k) in enumerate(cols):
        s = samples[name]
        x0, x = torch.tensor(s["x0"][k], device="cpu"), torch.tensor(s["x"][k], device="cpu")
        side = math.isqrt(len(x0))
        axes[0, c].imshow(x0.reshape(side, side).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, c].imshow(x.reshape(side, side).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, c].set_title(f"{name}", fontsize=8)
        axes[1, c].set_title(f"{label(s['y'][k])}\n→ {label(s['pred'][k])}", fontsize=7)
        if name == "l_1":
            i = int((x - x0).abs().argmax())
            axes[1, c].add_patch(Circle((i % side, i // side), 1.5, color="red",
                                            fill=False, linewidth=1.2))
    save_figure(fig, path)


def fgsm_section(run: Run, f: dict) -> None:
    path, link = run.figure("fig3-fgsm")
    plot_curves(path, f["eps"], {n: f["accuracy"][n] for n in NETS}, xlabel="eps (l_inf)",
                ylabel="accuracy under FGSM", ylim=(0.0, 1.0),
                title="FGSM against each net's own weights (the paper's Fig. 3)")
    rows = [[f"{e:g}"] + [pct(f["accuracy"][n][i], 1) for n in NETS]
            for i, e in enumerate(f["eps"])]
    run.section(f"""## Figure 3: accuracy under FGSM vs eps

![Accuracy under FGSM vs eps]({link})

Accuracy (%) on the {f['points']} test points under FGSM generated against each net itself
(the paper's Fig. 3 shows the same curves for MNIST, without a table of values):

{table(["eps"] + list(NETS), rows)}""")


def training_section(run: Run) -> None:
    secs = epoch_seconds(run.results["training"])
    rows = []
    for name in NETS:
        m = run.results["training"][name.replace(" ", "-")]
        rows.append([name, len(m), f"{secs[name]:.0f}", f"{m[-1]['ce']:.3f}",
                     pct(m[-1]["test_accuracy"], 1), pct(m[-1]["test_satisfied"], 1)])
    run.section("## Training\n\n" + table(
        ["net", "epochs", "s / epoch", "train CE, last epoch (at the points it trained on)",
         "test acc. % (trainer's check)", "CR under PGD-10 % (trainer's check)"], rows)
        + "\n\nThe trainer's per-epoch check uses the first test points only; its CR column is "
          "the property each net was trained under (the baseline: the l_inf ball), attacked "
          "with 10 PGD steps.")


# --- the summary -----------------------------------------------------------------------------
def summary(run: Run, results: dict, budget: Budget) -> str:
    """Sentences computed from the numbers: where we agree with the paper and where not."""
    data, t, f = results["dataset"], results["table1"], results["fgsm"]
    return " ".join([clean_sentence(data, t["nets"], t["test_points"]), a_sentence(t),
                     fgsm_sentence(f),
                     why_sentence(data, t, run.results["training"])])


def listing(values: dict[str, float | None], digits: int = 1) -> str:
    return ", ".join(f"{name} {pct(v, digits)}%" for name, v in values.items())


def clean_sentence(data: dict, nets: dict, points: int) -> str:
    base = nets["baseline"]["clean"]
    robust = {s.net: nets[s.net]["clean"] for s in SETS}
    lower = [r for r, v in robust.items() if v <= base]
    head = (f"On {data['name']} the baseline reaches {pct(base, 2)}% test accuracy (the paper: "
            f"99.09% on MNIST) and the robustified nets {listing(robust, 2)}: ")
    # the paper's gains (0.07-0.24 points on 10000 points) are themselves under two standard
    # errors; say whether ours are clear either way
    noise = all(not clearly_above(v, base, points) and not clearly_above(base, v, points)
                for v in robust.values())
    if not lower:
        text = "as in the paper, every one of them beats the baseline on clean data"
    elif noise:
        text = (f"{len(lower)} of 3 ({', '.join(lower)}) do not beat the baseline, but every "
                f"difference is within two standard errors (so are the paper's gains of "
                f"0.07-0.24 points): no clear regulariser effect, and no clear cost either")
    else:
        text = (f"unlike the paper, {len(lower)} of 3 ({', '.join(lower)}) do not beat the "
                f"baseline on clean data; here robust training costs clean accuracy instead of "
                f"acting as a regulariser")
    return head + text + "."


def a_sentence(t: dict) -> str:
    on_a = {s.net: t["nets"][s.net]["A"] for s in SETS}
    best = max(on_a, key=lambda r: -1.0 if on_a[r] is None else on_a[r])
    own = {s.net: t["nets"][s.net]["A_by_norm"][s.name] for s in SETS}
    return (f"On A ({t['A_size']} examples against the baseline) they score {listing(on_a)} "
            f"(the paper: 33.83%, 76.55%, 79.96%), and on A's part made with their own norm "
            f"{listing(own)}; the best on A is {best}"
            + (", as in the paper." if best == SETS[-1].net else ", not l_inf as in the paper."))


def fgsm_sentence(f: dict) -> str:
    eps, acc = f["eps"], f["accuracy"]
    robust = [s.net for s in SETS]
    mid = min(range(len(eps)), key=lambda i: abs(eps[i] - 0.1))
    above = [r for r in robust if all(acc[r][i] > acc["baseline"][i]
                                      for i, e in enumerate(eps) if e > 0)]
    head = (f"Under FGSM at eps = {eps[mid]:g} the baseline keeps "
            f"{pct(acc['baseline'][mid], 1)}% and the robustified nets "
            f"{listing({r: acc[r][mid] for r in robust})}; ")
    if len(above) == len(robust):
        return head + "all three stay above the baseline at every eps > 0, as in Fig. 3."
    below = [r for r in robust if r not in above]
    return head + (f"{', '.join(above) or 'none'} stay above the baseline at every eps > 0 as "
                   f"in Fig. 3, {', '.join(below)} not.")


def why_sentence(data: dict, t: dict, training: dict) -> str:
    other = "" if data["name"].lower() == "mnist" else f"other data ({data['name']}), "
    ce = {n: training[n.replace(" ", "-")][-1]["ce"] for n in NETS}
    ours = t["A_size"] / max(t["baseline_correct"], 1)
    paper = PAPER_A_SIZE / (PAPER_TABLE1["baseline"][0] * 10000)
    strength = (f" Our steps are stronger against our baseline than the paper's were against "
                f"its own: A holds {ours:.2f} examples per test point the baseline classifies "
                f"correctly, the paper's about {paper:.2f}; larger uncertainty sets buy "
                f"robustness at a price in clean accuracy." if ours > 2 * paper else "")
    return (f"Differences are expected: {other}a smaller net trained for "
            f"{len(training['baseline'])} epochs of the authors' SGD (their baseline: 120; "
            f"this SGD is slow, the nets are far from trained) (last-epoch training loss at the perturbed "
            f"points: {', '.join(f'{s.name} {ce[s.net]:.2f}' for s in SETS)}; the baseline's "
            f"{ce['baseline']:.2f} at clean points), and the authors' radii carried over "
            f"from standardised MNIST to this data, which also set how large A is and how it "
            f"splits between the norms."
            + strength)
