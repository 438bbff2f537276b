"""Evaluation results for people: a terminal table and PNG plots (security vs eps as in
Casadio et al.'s figures, margin curves with their area as in Tibo et al. Fig. 3, alpha_lim(r)
as in Lassance et al. Fig. 5)."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def _fmt(e: dict | None) -> str:
    if not e:
        return "-"
    return f"{e['value']:.3f} [{e['low']:.3f},{e['high']:.3f}]"


def print_results(results: dict, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    for name, entry in results["properties"].items():
        c = entry["centres"]
        if "points" not in entry:  # a shard's part: its blocks are joined by `specrob merge`
            console.print(f"property {name}: shard {entry.get('shard')}, blocks "
                          f"{entry.get('blocks')} of {entry.get('block_count')} (join the "
                          f"shards with `specrob merge`)")
            continue
        table = Table(title=f"property {name} (l_{entry['norm']} ball; {c['used']} centres "
                            f"from {c['source']})", title_justify="left")
        radius = "r" if "alpha_lim" in entry else "eps"  # local Lipschitz: the radius r
        for col in (radius, "security [95% CI]", "accuracy [95% CI]", "violations", "found by"):
            table.add_column(col, justify="right" if col != "found by" else "left",
                             no_wrap=col != "found by")
        for pt in entry["points"]:
            found = ", ".join(f"{k}: {v}" for k, v in pt["found_by"].items())
            table.add_row(f"{pt['eps']:g}", _fmt(pt["security"]), _fmt(pt["accuracy"]),
                          str(pt["violations"]), found)
        console.print(table)
        if entry.get("note"):
            console.print(f"  [dim]note: {entry['note']}[/dim]")
        if "alpha_lim" in entry:
            a = entry["alpha_lim"]
            pairs = ", ".join(f"r={r:.3g}: {v:.3g}" for r, v in zip(a["radii"], a["alpha_lim"]))
            console.print(f"  alpha_lim(r) ({a['output']}; sampled lower bounds): {pairs}")
            if a.get("refuted") and any(a["refuted"]):
                console.print(f"  alpha = {a['alpha']:g} is refuted at r >= "
                              f"{a['radii'][a['refuted'].index(True)]:.3g}")
    for name, entry in results["scores"].items():
        bound = " (upper bound)" if entry.get("upper_bound") else ""
        console.print(f"score [bold]{name}[/bold]: {_fmt(entry['value'])}{bound}"
                      f"  [dim]{entry.get('note', '')}[/dim]")
        if "margins" in entry:
            shares = ", ".join(f"{k} {v['value']:.0%}" for k, v in entry["margins"]["shares"].items())
            console.print(f"  area under the margin curve on [0, {entry['d']:.3g}]: "
                          f"{_fmt(entry['area'])}; closest adversarial example found by: {shares}")
    console.print()


def plot_results(results: dict, out: Path) -> list[Path]:
    """Write the PNG plots for the results; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    props = {k: v for k, v in results["properties"].items() if len(v.get("points", ())) > 1}
    by_norm: dict[str, dict] = {}
    for name, entry in props.items():  # radii of different norms never share an axis
        by_norm.setdefault(str(entry.get("norm", "inf")), {})[name] = entry
    for norm, group in sorted(by_norm.items()):
        radius = "r" if all("alpha_lim" in e for e in group.values()) else "eps"
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, entry in group.items():
            eps = [p["eps"] for p in entry["points"]]
            sec = [p["security"] for p in entry["points"]]
            line, = ax.plot(eps, [s["value"] for s in sec], marker="o", label=f"{name} security")
            ax.fill_between(eps, [s["low"] for s in sec], [s["high"] for s in sec],
                            color=line.get_color(), alpha=0.15)
            acc = [p["accuracy"] for p in entry["points"]]
            if all(acc):
                ax.plot(eps, [a["value"] for a in acc], linestyle="--", color=line.get_color(),
                        label=f"{name} accuracy")
        ax.set_xlabel(f"{radius} (l_{norm} radius)")
        ax.set_ylabel("fraction of centres")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"constraint security (solid) and accuracy (dashed), l_{norm} balls")
        ax.legend(fontsize=8)
        name = "security.png" if len(by_norm) == 1 else f"security-l{norm}.png"
        written.append(_save(fig, out / name))
    margin_scores = {k: v for k, v in results["scores"].items() if "margins" in v}
    if margin_scores:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, entry in margin_scores.items():
            curve = entry["curve"]
            eps = [p["eps"] for p in curve]
            line, = ax.plot(eps, [p["value"] for p in curve],
                            label=f"{name}: area {entry['area']['value']:.3f}")
            ax.fill_between(eps, [p["low"] for p in curve], [p["high"] for p in curve],
                            color=line.get_color(), alpha=0.15)
        reach = max((p["eps"] for e in margin_scores.values() for p in e["curve"]
                     if p["value"] > 0), default=1.0)
        ax.set_xlim(0, reach * 1.2)  # past the largest margin the curves are 0 up to d
        ax.set_xlabel("eps (distance to the decision boundary)")
        ax.set_ylabel("R(eps): fraction with margin > eps")
        ax.set_title("margin curves (upper bounds: margins found by attacks)")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "margins.png"))
    alphas = {k: v["alpha_lim"] for k, v in results["properties"].items() if "alpha_lim" in v}
    if alphas:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, a in alphas.items():
            ax.plot(a["radii"], a["alpha_lim"], marker="o", label=f"{name}")
            if a.get("gaussian"):
                ax.plot(a["radii"], a["gaussian"], linestyle=":", label=f"{name} (Gaussian noise)")
        ax.set_xlabel("r")
        ax.set_ylabel("alpha_lim(r) (sampled lower bound)")
        ax.set_title("local Lipschitz constant vs radius")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "alpha_lim.png"))
    incompatible = {k: v["incompatibility"] for k, v in results["properties"].items()
                    if "incompatibility" in v}
    if incompatible:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, inc in incompatible.items():
            for c in inc["curves"]:
                ax.plot([p["d"] for p in c["points"]], [p["value"] for p in c["points"]],
                        marker=".", label=f"{name}: alpha = {c['alpha']:g}")
        ax.set_xlabel(f"d (l_{inc['p']} distance between training points)")
        ax.set_ylabel("fraction of distinct-class pairs")
        ax.set_title("pairs within d that no alpha-robust function separates")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "incompatibility.png"))
    noisy = {k: v["noise_accuracy"] for k, v in results["properties"].items()
             if "noise_accuracy" in v}
    if noisy:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, n in noisy.items():
            snr = [p["snr_db"] for p in n["curve"]]
            line, = ax.plot(snr, [p["value"] for p in n["curve"]], marker="o", label=name)
            ax.fill_between(snr, [p["low"] for p in n["curve"]], [p["high"] for p in n["curve"]],
                            color=line.get_color(), alpha=0.15)
            ax.axhline(n["clean"]["value"], color=line.get_color(), linestyle=":",
                       label=f"{name} clean")
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("accuracy under Gaussian noise")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "noise.png"))
    return written


def plot_counterexamples(rows: list[dict], x0, index: list[int], shape: tuple[int, ...],
                         out: Path, limit: int = 12) -> Path | None:
    """counterexamples.png: for the first `limit` falsified centres, x0 (label), x* (the
    predicted class) and |x* - x0|, for image data of `shape` (H, W) or (C, H, W)."""
    bad = [r for r in sorted(rows, key=lambda r: r["index"])
           if r.get("verdict") == "falsified" and r.get("counterexample")][:limit]
    if not bad:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    where = {int(i): k for k, i in enumerate(index)}

    def image(v):
        a = np.asarray(v, dtype=np.float64).reshape(shape)
        return a if a.ndim == 2 else (a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1))

    fig, axes = plt.subplots(len(bad), 3, figsize=(6, 2 * len(bad)), squeeze=False)
    for row, (a, b, c) in zip(bad, axes):
        centre = x0[where[row["index"]]]
        x = np.asarray(row["counterexample"])
        for ax, picture, title in ((a, image(centre), f"x0 #{row['index']}: {row['label']}"),
                                   (b, image(x), f"x*: {row.get('predicted', '?')}"),
                                   (c, image(np.abs(x - centre)), "|x* - x0|")):
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _save(fig, out / "counterexamples.png")


def plot_training(metrics: list[dict], out: Path) -> Path | None:
    """training.png: cross-entropy, test accuracy and the share of PGD points satisfying the
    property per epoch (from metrics.json); None when there is nothing to draw."""
    if not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [m["epoch"] for m in metrics]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [m["ce"] for m in metrics], marker="o", label="cross-entropy (train)")
    if all("constraint_loss" in m for m in metrics):
        left.plot(epochs, [m["constraint_loss"] for m in metrics], marker="o",
                  label="constraint loss")
    left.set_xlabel("epoch")
    left.legend(fontsize=8)
    right.plot(epochs, [m["test_accuracy"] for m in metrics], marker="o", label="test accuracy")
    for key, label in (("test_satisfied", "PGD points satisfying (test)"),
                       ("train_satisfied", "PGD points satisfying (train)")):
        if all(key in m for m in metrics):
            right.plot(epochs, [m[key] for m in metrics], marker="o", label=label)
    right.set_xlabel("epoch")
    right.set_ylim(-0.02, 1.02)
    right.legend(fontsize=8)
    return _save(fig, out / "training.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
