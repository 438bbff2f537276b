"""Lassance et al. (seed 004), the page: the setup, Figs. 1 and 3 (dataset incompatibility of
Lipschitz constraints) with their tables, clean accuracy beside the paper's Table 2, Fig. 5
(alpha_lim(r)) and Fig. 4 (accuracy under Gaussian noise) with their tables, the budget and
the summary, all written from the experiment's results.
"""
from __future__ import annotations

import math
from pathlib import Path

from specrob.reproduce.common import Run, label_axes, pct, plot_curves, save_figure, table
from specrob.reproduce.lassance.claims import (
    NEGLIGIBLE,
    PAPER_TABLE2,
    SNR_CHECK,
    facts,
    first_at_or_below,
    names,
    noise_at,
    num,
    order,
)
from specrob.reproduce.lassance.experiment import (
    DISTANCES,
    LABELS,
    LIP_R,
    NETS,
    TABLE_ALPHAS,
    Budget,
)

TITLE = "Lassance et al. (seed 004): local Lipschitz robustness alpha_lim(r)"

# item, the paper's text, the authors' code or data, specrob here. The paper's repository
# (github.com/cadurosar/structural_robustness) holds a proof only; the code of the V/P/L nets
# it evaluates, with an alpha_lim(r) script, is github.com/cadurosar/laplacian_networks
# (released after the paper: cifar_10/cifar10.py, cifar_10/r_alpha.py,
# cifar_10/test_gaussian_noise.py); the PGD net is Madry et al.'s (MadryLab/cifar10_challenge).
LN = "laplacian_networks"
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("Data", "CIFAR-10/100, ImageNet32; Fig. 5 on CIFAR-10", f"CIFAR-10, pixels in [0, 1], "
     f"3072 dims ({LN}, cifar10.py)", "Fashion-MNIST (784 dims, [0, 1]); Figs. 1 and 3 also "
     "on scikit-learn's digits"),
    ("Networks", "pretrained V, Parseval, Laplacian (ref. 20), PGD (Madry et al.), L2NN",
     "PreActResNet18 (V/P/L); a wide ResNet 28-10 (PGD)", "one MLP 784-256-256-10 trained as "
     "Vanilla, PGD, Parseval, Laplacian, and under the LocalLipschitz constraint (no "
     "counterpart in the paper); L2NN an L2-nonexpansive MLP of the same widths"),
    ("Parseval (P)", "a regulariser making weights approximately Parseval tight frames "
     "(Cisse et al.)", "after each SGD step W <- (1 + beta) W - beta W W^T W on every parameter "
     "with 2+ axes, beta 0.01; a Parseval conv also divides its kernel by sqrt(2k^2 + 1) "
     "(cifar10.py, models/preact_resnet.py)", "`parseval` regime: the same retraction, beta "
     "0.01, on every weight matrix of the MLP (no convolutions)"),
    ("Laplacian (L)", "keep the smoothness of the class signal on each layer's similarity "
     "graph from changing between layers (ref. 20)", "CE + gamma^m mean |s_l - s_(l-1)|, s = "
     "tr(Y^T L^m Y) on the batch's cosine graph at each ReLU, gamma 0.01, m 2 (gsp.py, R.sh)",
     "`laplacian` regime: the same loss at the MLP's 2 ReLU layers, m 2, but gamma 0.001: "
     "with 0.01 this MLP, which has no batch norm, fell to 7% test accuracy within 3 epochs "
     "(measured on 10000 points; 85.5% with 0.001)"),
    ("L2NN", "L2-nonexpansive nets (Qian and Wegman): 1-Lipschitz in l_2 by construction",
     "not in the authors' code (they evaluate Qian and Wegman's released net)",
     "examples/l2nn_mlp.py: weights divided by a bound of their spectral norm, two-sided "
     "ReLUs; trained with plain cross-entropy (Qian and Wegman's own loss terms and norm "
     "pooling left out) and Vanilla's schedule"),
    ("Training of V/P/L", "not given (pretrained)", "SGD momentum 0.9, weight decay 5e-4, "
     "batch 100, 100 epochs, lr 0.1 then 0.001 from epoch 51 (cifar10.py)",
     "--budget paper: the same for Vanilla and LocalLipschitz; quick: Adam 1e-3, batch 128, "
     "20 / 8 epochs"),
    ("Training of PGD", "multi-step FGSM, l_inf", "SGD momentum 0.9, weight decay 2e-4, "
     "batch 128, 80000 steps (205 epochs), lr 0.1 / 0.01 / 0.001; eps 8/255, 10 steps of "
     "2/255 (cifar10_challenge config.json)", "--budget paper: the same schedule, 10 steps; "
     "eps 0.1 (Fashion-MNIST's usual radius); quick: Adam, 10 epochs, 7 steps"),
    ("Seeds", "one net per method", "V/P/L trained over several seeds; r_alpha.py reads "
     "seed 0", "one seed: at the paper budget a run takes over an hour here (the "
     "reproductions repeat seeds where a run takes under 10 minutes)"),
    ("alpha_lim centres", "100 training examples", "the first 1000 training images "
     "(r_alpha.py)", "the first 100 training points"),
    ("alpha_lim draws", "1000 Gaussian noise realisations", "100 draws of uniform noise put "
     "on the l_2 sphere of radius r, x + n clipped to [0, 1] (r_alpha.py)", "1000 Gaussian "
     "draws (mean norm r, none beyond r), clipped, plus 20 PGD steps on the ratio: a tighter "
     "lower bound"),
    ("alpha_lim radii", "not listed; PGD's transition near r = 0.3", "30 radii 0.058 ... 1.75 "
     "in [0, 1] units of 3072 dims", "11 radii 0.05 ... 4 in [0, 1] units of 784 dims (the "
     "same noise per pixel is r x 0.51 here)"),
    ("Ratio", "Def. 1 on the soft decision", "||softmax(x+n) - softmax(x)||_2 / ||n||_2, the "
     "max over centres and draws", "the same (and per-centre quantiles)"),
    ("Figs. 1 and 3", "pairs of distinct classes; Fig. 3 divides by 'the total number of "
     "example pairs'", "no public code", "distinct-class pairs of the first 5000 training "
     "points (all pairs stored too)"),
    ("Fig. 4 noise", "accuracy under Gaussian noise vs SNR", "one noise tensor shared by all "
     "test images, clipped to [0, 1], one level (about 15 dB), 40 draws "
     "(test_gaussian_noise.py)", "independent noise per input, not clipped, 17 SNRs from "
     "-10 to 30 dB, one draw per test point"),
    ("Table 2", "CIFAR-10-C errors and mCE", "robustness.py (10 seeds)", "clean accuracy only"),
)

SETUP = """## Setup

Copies of one MLP (same initial weights) trained six ways, standing in for the paper's
pretrained ResNets: **Vanilla** (cross-entropy); **PGD** (`adversarial` regime, multi-step PGD,
cross-entropy at the worst point of the l_inf ball of radius 0.1, `CR(eps = 0.1, p = inf)`): the
paper's PGD net (Madry et al.) is l_inf-trained too; and a **LocalLipschitz constraint** net
(`constraint` regime, a·CE + b·DL2 loss at the worst point found by PGD) under
`LocalLipschitz(alpha = 1, r = 0.3)`, the paper's Definition 1 itself: softmax outputs, l_2,
slope <= 1 within r = 0.3 of each training point, exactly the quantity Fig. 5 measures (our
Vanilla net breaks it at {vanilla_above} of the {centres} training points of Fig. 5 at
r = {r:g}: the constraint binds where a net is sharp, not everywhere). We did not use Casadio's LR (logits, l_inf, L = 10): it bounds the logits, which a
confident net must move by large amounts, so it measures something other than the paper's
softmax alpha_lim. The paper's Lipschitz-constrained methods: **Parseval** (`parseval` regime:
a retraction of every weight towards a Parseval tight frame after each step, as the authors'
code), **Laplacian** (`laplacian` regime: cross-entropy plus the change of the class signal's
smoothness between consecutive ReLU layers) and **L2NN** (an L2-nonexpansive MLP,
examples/l2nn_mlp.py, 1-Lipschitz in l_2 from input to logits whatever its weights).
"""


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figures, in the page's order."""
    curves = results["alpha_lim"]
    run.section("## How this differs from the authors' experiments\n\n"
                + table(["item", "paper text", "authors' code or data", "specrob here"],
                        [list(row) for row in DIFFERENCES]))
    k = min(range(len(budget.radii)), key=lambda i: abs(budget.radii[i] - LIP_R))
    run.section(SETUP.format(vanilla_above=pct(curves["vanilla"]["above_lip_alpha"][k]) + "%",
                             centres=budget.centres, r=budget.radii[k]))
    incompatibility_sections(run, results["incompatibility"], facts(results, budget))
    accuracy_section(run, results["accuracy"], results["noise"])
    alpha_sections(run, curves, budget, results["alpha_code"])
    noise_section(run, results["noise"])


# --- page sections ----------------------------------------------------------------------------
def incompatibility_sections(run: Run, incompat: dict[str, dict], f: dict) -> None:
    """Figs. 1 and 3 and their tables."""
    inf = DISTANCES.index(math.inf)
    path, link = run.figure("fig1-incompatibility")
    _plot_log_x(path, {name: (r["alphas"], [row[inf] for row in r["fraction"]])
                       for name, r in incompat.items()},
                xlabel="alpha (Lipschitz constant, l_inf)",
                ylabel="fraction of distinct-class pairs incompatible",
                title="Fig. 1: a global alpha-Lipschitz constraint, one-hot outputs (d = inf)")
    rows = []
    for name, r in incompat.items():
        global_curve = [row[inf] for row in r["fraction"]]
        rows.append([f"{name} ({r['points']} points, {r['pairs']:,} pairs)"]
                    + [pct(global_curve[r["alphas"].index(a)], 2) for a in TABLE_ALPHAS]
                    + [num(first_at_or_below(r["alphas"], global_curve, NEGLIGIBLE)),
                       num(f["incompat_zero"][name])])
    run.section("## Figure 1: incompatibility of a global Lipschitz constraint\n\n"
                "Fraction of training pairs of distinct classes (x, x') that no alpha-Lipschitz "
                "function with one-hot outputs can fit: alpha ||x - x'||_inf < ||onehot(y) - "
                "onehot(y')||_inf = 1. The paper (Fig. 1, CIFAR-10/100, ImageNet32, l_inf): "
                "the constraint is incompatible with many pairs unless alpha is large "
                "(\"greater than 4\").\n\n"
                f"![Fig. 1]({link})\n\n"
                + table(["dataset"] + [f"alpha = {a:g} (%)" for a in TABLE_ALPHAS]
                        + [f"alpha where < {pct(NEGLIGIBLE, 1)}%", "alpha where 0"], rows))

    fig3_rows = []
    for name, r in incompat.items():
        path, link = run.figure(f"fig3-incompatibility-{name}")
        _plot_log_x(path, {f"d = {d}": (r["alphas"], [row[k] for row in r["fraction"]])
                           for k, d in enumerate(r["distances"])},
                    xlabel="alpha (l_inf)", ylabel="fraction of distinct-class pairs incompatible",
                    title=f"Fig. 3 ({name}): Robust_alpha(T, d/2), one-hot outputs, l_inf")
        run.section(f"![Fig. 3 {name}]({link})")
        one = r["fraction"][r["alphas"].index(1.0)]
        fig3_rows.append([name] + [pct(v, 3) for v in one])
    run.section("## Figure 3: incompatibility with local robustness, per d\n\n"
                "Pairs of distinct classes closer than d (l_inf) that are not alpha-robust "
                "(d is about 2r), as a fraction of all distinct-class pairs. The paper (Fig. 3): "
                "for each d the curve is flat then drops; the number of incompatible pairs drops "
                "very fast as d decreases and is negligible at d = 0.3. Our table: alpha = 1 "
                "(the flat part), per d.\n\n"
                + table(["dataset"] + [f"d = {d} (%)" for d in next(iter(incompat.values()))
                                       ["distances"]], fig3_rows))


def accuracy_section(run: Run, acc: dict, noise: dict) -> None:
    """Clean test accuracy per net beside the paper's Table 2 (CIFAR-10 errors)."""
    paper = {"vanilla": "V", "pgd": "PGD", "parseval": "P", "laplacian": "L", "l2nn": "L2NN"}
    rows = []
    for n in NETS:
        at = noise_at(noise[n], SNR_CHECK)
        theirs = PAPER_TABLE2.get(paper.get(n, ""))
        rows.append([LABELS[n], pct(acc[n]["train"]), pct(acc[n]["test"]),
                     pct(1 - acc[n]["test"]), pct(1 - at), paper.get(n, "no counterpart"),
                     f"{theirs[0]} / {theirs[1]}" if theirs else "—"])
    run.section("## Clean accuracy (cf. the paper's Table 2)\n\n"
                "Ours: Fashion-MNIST; \"noisy\" is Gaussian noise at "
                f"{SNR_CHECK:g} dB SNR (Fig. 4). The paper's Table 2: CIFAR-10 test error, "
                "clean / mean over the 15 corruptions of Hendrycks & Dietterich (not Gaussian "
                "noise alone); its V PGD row (not trained here): "
                + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in PAPER_TABLE2.items()
                            if k == "V PGD") + ".\n\n"
                + table(["net (ours)", "train acc. (%)", "test acc. (%)", "test error (%)",
                         f"noisy test error at {SNR_CHECK:g} dB (%)", "paper's net",
                         "paper: CIFAR-10 error clean / corrupted (%)"], rows))


def alpha_sections(run: Run, curves: dict, budget: Budget, code: dict) -> None:
    """Fig. 5: alpha_lim(r) per net and its table, the authors' script's estimate beside."""
    radii = list(budget.radii)
    path, link = run.figure("fig5-alpha-lim")
    _plot_alpha(path, radii, curves)
    rows = []
    for n in NETS:
        c = curves[n]
        rows.append([f"{LABELS[n]}: alpha_lim"] + [f"{v:.3g}" for v in c["alpha_lim"]])
        rows.append([f"{LABELS[n]}: Gaussian noise only"] + [f"{v:.3g}" for v in c["gaussian"]])
        rows.append([f"{LABELS[n]}: median centre"] + [f"{v:.3g}" for v in c["q50"]])
        rows.append([f"{LABELS[n]}: the authors' script"]
                    + [f"{v:.3g}" for v in code[n]["alpha_lim"]])
    run.section("## Figure 5: alpha_lim(r)\n\n"
                f"Lower bounds of alpha_lim(F, r) = sup ||F(x+e) - F(x)||_2 / ||e||_2 over "
                f"{budget.centres} training points x and ||e||_2 <= r (softmax outputs F, "
                f"x + e clamped to [0, 1]): the larger of {budget.samples} Gaussian noise "
                f"realisations per point (the paper's estimator) and PGD on the ratio "
                f"({budget.pgd_steps} steps); running maxima over r. \"Gaussian noise only\" is the "
                "paper's estimator alone (far below PGD's: random directions in 784 dimensions "
                "barely move the output); \"median centre\" is the median over the points of "
                "their own estimate (the paper's alpha_lim is the maximum); \"the authors' "
                f"script\" is the estimate of their released r_alpha.py: the first "
                f"{budget.code_centres} training points, {budget.code_samples} uniform draws "
                "on the sphere of radius r each, clipped, no search (the text says 100 points "
                "and 1000 Gaussian draws). All are lower bounds of the same supremum. "
                "The paper (Fig. 5, CIFAR-10): alpha increases with r and saturates; "
                "Vanilla saturates fastest and at the largest alpha, the other methods grow more "
                "slowly and saturate lower (PGD with a transition around r = 0.3, at relatively "
                "small alpha).\n\n"
                f"![Fig. 5]({link})\n\n"
                + table(["net"] + [f"r = {r:g}" for r in radii], rows))


def noise_section(run: Run, noise: dict) -> None:
    """Fig. 4: accuracy under Gaussian noise vs SNR and its table."""
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


def summary(run: Run, results: dict, budget: Budget) -> str:
    """Honest sentences computed from the numbers."""
    f, data = facts(results, budget), results["dataset"]
    acc = f["accuracy"]
    top = f["alpha_top"]
    out = [f"On {data['name']}, the {len(NETS)} MLPs reach "
           + ", ".join(f"{pct(acc[n]['test'])}% ({LABELS[n]})" for n in NETS)
           + " clean test accuracy (the paper's CIFAR-10 ResNets: 88.1% V, 87.2% PGD, "
           "89.8% P, 86.8% L, 79.1% L2NN)."]
    zero = f["incompat_zero"]
    out.append("Figs. 1/3: a global Lipschitz constraint with one-hot outputs rules out "
               + ", ".join(f"{pct(v)}% ({n})" for n, v in f["incompat_at_one"].items())
               + " of the distinct-class pairs at alpha = 1 and none from alpha = "
               + ", ".join(f"{num(z)} ({n})" for n, z in zero.items())
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
    out.append(f"Fig. 4: at {SNR_CHECK:g} dB the nets rank {names(f['by_noise'])} (highest "
               f"accuracy first); by alpha_lim they rank {names(f['by_alpha'])} (lowest first)"
               + (", the same order as in the paper." if same else
                  f"; the orders differ (by accuracy lost to noise: {names(f['by_drop'])}),"
                  " partly because the nets' clean accuracies differ")
               + (f"; the orders agree at {', '.join(f'{v:g}' for v in f['snr_agree'])} dB."
                  if f["snr_agree"] and not same else "" if same else
                  "; they agree at no SNR of our range."))
    out.append("Differences are expected: one small MLP instead of the paper's pretrained "
               "ResNets (and an MLP version of L2NN), Fashion-MNIST instead of CIFAR, and "
               "lower bounds of alpha_lim from Gaussian noise and PGD.")
    return " ".join(out)


def budget_text(results: dict, budget: Budget) -> str:
    """The budget line of the page: networks, training, and how much each estimate saw."""
    data, incompat = results["dataset"], results["incompatibility"]
    v, p, c = budget.epochs
    training = (f"batch {budget.batch_size}, Adam lr {budget.lr:g}"
                if not any(budget.overrides) else
                f"SGD as the authors' code trains its nets, lr {budget.lr:g}: "
                + "; ".join(f"{name} " + ", ".join(f"{k} {val}" for k, val in o if
                                                   k != "optimizer")
                            for name, o in zip(("Vanilla", "PGD", "LocalLipschitz"),
                                               budget.overrides)))
    return (f"MLP {data['input_dim']}-{budget.hidden}-{budget.hidden}-{data['classes']} "
            f"trained on {data['train']} {data['name']} training points ({training}): "
            f"Vanilla {v} epochs, PGD {p} epochs ({budget.adv_steps} PGD "
            f"steps, l_inf eps 0.1), LocalLipschitz constraint {c} epochs (alpha 1, r 0.3, l_2; "
            f"a = 1, b = {budget.constraint_weight:g}, {budget.constraint_steps} PGD steps); "
            f"Parseval / Laplacian / L2NN {' / '.join(map(str, budget.compared_epochs))} epochs "
            f"(beta {budget.parseval_beta:g}; gamma {budget.laplacian_gamma:g}, m "
            f"{budget.laplacian_power}; "
            + ("Vanilla's optimiser" if any(budget.compared_overrides) else "Adam") + "); "
            f"alpha_lim on {budget.centres} training points x {budget.samples} Gaussian "
            f"samples + {budget.pgd_steps} PGD steps per radius; incompatibility on "
            + ", ".join(f"{r['points']} {n} training points ({r['pairs']:,} distinct-class "
                        f"pairs)" for n, r in incompat.items())
            + f"; noise on {data['test']} test points, one draw each.")


# --- plotting helpers ------------------------------------------------------------------------
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
        for n, style in zip(NETS, ("-", "--", "-.", ":", "-", "--")):
            ax.plot(radii, curves[n][key], style, marker="o", markersize=3, label=LABELS[n])
        ax.set_xscale("log")
        label_axes(ax, xlabel="r (l_2)", ylabel="alpha (softmax, l_2; lower bound)",
                   title=f"Fig. 5: {title}", fontsize=9)
    save_figure(fig, path)
