"""Certified training (issue 17), the page: constraint satisfaction and clean accuracy per
network, regime and radius, a figure, how the run was cut, and the summary.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from specrob.reproduce.certified.claims import LITERATURE
from specrob.reproduce.certified.experiment import (EPS, LABEL, NETS, REGIMES, Budget, clean_of,
                                                    cs, key_of)
from specrob.reproduce.common import Run, label_axes, pct, save_figure, table

TITLE = "Certified training judged by constraint satisfaction (IBP, CROWN-IBP)"
ROWS = ("baseline",) + tuple(name for name, _, _ in REGIMES)


def _cell(results: dict, kind: str, regime: str, eps: float) -> str:
    row = results["constraint_satisfaction"][key_of(kind, regime, eps)]
    return (f"{pct(cs(results, key_of(kind, regime, eps)))} ({row['verified']}/"
            f"{row['falsified']}/{row['unknown']}) · {pct(clean_of(results, kind, regime, eps))}")


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figure."""
    points = "all 60000" if budget.train is None else f"the first {budget.train}"
    run.section(
        "## Setup\n\n"
        f"Fashion-MNIST, {points} training points, {budget.epochs} epochs, Adam {budget.lr:g}, "
        f"batch {budget.batch_size}, one seed; every network is trained for the property CR "
        "at the radius of its column (the spec below, `--set eps=`), six ways besides the "
        "baseline: the constraint loss of Casadio et al. (a = 1, b = 0.2, DL2 at the worst "
        f"point of {budget.pgd_steps} PGD steps), PGD adversarial training "
        f"({budget.pgd_steps} steps), and `--regime certified` with IBP, with CROWN-IBP "
        "(beta 1 -> 0, Zhang et al.'s default), and with IBP mixed half and half with the PGD "
        "constraint loss (`--pgd-mix 0.5`, the convex combination of MTL-IBP), all three with the "
        "cross-entropy of the worst-case margins (`--cert-loss ce`, the IBP papers' loss), "
        "and IBP with the body in DL2 on the rows' worst cases (`--cert-loss logic`, the "
        "default). The certified runs use CE only for "
        f"the first {budget.epochs / 10:g} epoch(s) (`--warmup`), then eps, and kappa 1 -> 0.5, "
        f"ramped over {budget.epochs / 2:g} epochs (`--ramp`; Gowal et al.'s schedule: a tenth "
        "and a half of the training).\n\n"
        f"Each network is judged by `specrob verify --backend bounds` (the PGD attack, then "
        f"CROWN; every verdict sound, counterexamples re-checked on onnxruntime) on the first "
        f"{budget.verify_points} test points at its training radius, and by clean accuracy on "
        f"the test set. The two networks: "
        + "; ".join(f"**{k}**: {label} (examples/{file})" for k, (file, label) in NETS.items())
        + ".\n\n```\n" + results["spec"] + "```")
    for kind, (_, label) in NETS.items():
        rows = [[LABEL[r]] + [_cell(results, kind, r, e) for e in EPS] for r in ROWS]
        run.section(f"## {label}\n\nCells: constraint satisfaction % (verified / falsified / "
                    "unknown of the points) · clean accuracy %. The baseline is one network, "
                    "verified at each radius.\n\n"
                    + table(["training"] + [f"eps = {e:g}" for e in EPS], rows))
    _cost(run)
    first = next(iter(results["constraint_satisfaction"].values()))
    run.section("## Reproduce one cell\n\n```\n" + first["command"] + "\n```")
    _figure(run, results)
    run.section("## For scale: the literature\n\nCertified accuracy on CIFAR-10 (CNN7, eps "
                "2/255), GPU-scale and not a target here: "
                + ", ".join(f"{k} {v:.2f}%" for k, v in LITERATURE.items()) + ".")


def _cost(run: Run) -> None:
    """Seconds per training epoch (wall-clock, as metrics.json records them, the per-epoch
    evaluation included) at the largest radius."""
    training = run.results.get("training", {})
    top = EPS[-1]
    rows = []
    for r in ROWS:
        cells = []
        for kind in NETS:
            name = f"{kind}-baseline" if r == "baseline" else f"{kind}-{r}-{top:g}"
            epochs = training.get(name, [])
            cells.append(f"{sum(e['seconds'] for e in epochs) / len(epochs):.1f}"
                         if epochs else "—")
        rows.append([LABEL[r], *cells])
    run.section(f"## Training cost\n\nSeconds per epoch at eps = {top:g} (wall-clock on the "
                "shared 2-core machine, one torch thread; the epoch's evaluation included).\n\n"
                + table(["training", *NETS], rows))


def _figure(run: Run, results: dict) -> None:
    import matplotlib.pyplot as plt
    path, link = run.figure("cs-vs-accuracy")
    fig, axes = plt.subplots(1, len(NETS), figsize=(5.5 * len(NETS), 4.2))
    markers = dict(zip(ROWS, "osD^vPX"))
    for ax, kind in zip(axes, NETS):
        for r in ROWS:
            xs = [clean_of(results, kind, r, e) * 100 for e in EPS]
            ys = [cs(results, key_of(kind, r, e)) * 100 for e in EPS]
            ax.plot(xs, ys, marker=markers[r], label=r)
            for x, y, e in zip(xs, ys, EPS):
                ax.annotate(f"{e:g}", (x, y), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        label_axes(ax, xlabel="clean accuracy (%)", ylabel="constraint satisfaction (%)",
                   title=NETS[kind][1])
        ax.legend(fontsize=7)
    save_figure(fig, path)
    run.section(f"## Verifiability against accuracy\n\nEach point one network (labelled by "
                f"its radius).\n\n![constraint satisfaction against clean accuracy]({link})")


def budget_text(results: dict, budget: Budget) -> str:
    del results
    points = "all 60000" if budget.train is None else f"{budget.train}"
    return (f"{points} training points, {budget.epochs} epochs per network, "
            f"{budget.verify_points} verified test points per network and radius")


def summary(run: Run, results: dict, budget: Budget) -> str:
    del budget
    top = EPS[-1]
    parts = []
    for kind, (_, label) in NETS.items():
        parts.append(
            f"On the {label} at eps {top:g}, constraint satisfaction is "
            + ", ".join(f"{r} {pct(cs(results, key_of(kind, r, top)))}%" for r in ROWS)
            + f" (clean accuracy "
            + ", ".join(f"{pct(clean_of(results, kind, r, top))}%" for r in ROWS) + ").")
    held = sum(c.holds for c in run.claims)
    return " ".join(parts) + f" {held} of {len(run.claims)} anchors hold."
