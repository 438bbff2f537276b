"""Tibo, Jaeger and Larsen (seeds 000/001), the page: the setup and its deviations from §3.3,
Table 1 (clean accuracy), Figure 3 (margin curves and areas), Table 3 (which attack finds the
closest adversarial example), the budget and the summary, all written from the experiment's
results.
"""
from __future__ import annotations

from specrob.reproduce.common import Run, pct, pct_ci, plot_curves, table
from specrob.reproduce.tibo.claims import (
    PAPER_ACCURACY,
    PAPER_KEY,
    PAPER_SHARES,
    overlap,
)
from specrob.reproduce.tibo.experiment import Budget, accuracies, as_tensor

TITLE = "Tibo et al. (seeds 000/001): robust co-training and margin curves"
# item, the paper's text (seed 001 unless said), the authors' code, specrob here. No code of
# the authors for §3 is public (searched: the first author's GitHub account alessandro-t, the
# title, the co-authors; alessandro-t/uppaal-bn's README once named this paper, but the
# repository never held its training code).
NO_CODE = "no public code"
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("Data", "MNIST, CIFAR-10, SVHN, F-MNIST (§3.3)", NO_CODE,
     "Fashion-MNIST only, pixels in [0, 1]"),
    ("Validation split", "10% of the training set held out; the best epoch by validation "
     "accuracy (App. A.1)", NO_CODE, "all training points; the last epoch kept"),
    ("Classifier f", "convnet: 5x5 convolutions, 128 channels, batch norm, LeakyReLU(0.1), a "
     "1024-unit layer (App. A.1)", NO_CODE, "MLP 784-256-256-10 (ReLU): the convnet is about "
     "8x slower per step on one core, its margins about 30x"),
    ("Generator g", "convnet of the same layers, sigmoid output (App. A.1)", NO_CODE,
     "specrob's default generator: clip(x + 0.5 tanh(MLP 784-256-784)) into [0, 1]"),
    ("Optimiser", "Adam for f and g; batch 32; 10 epochs; lr 1e-3 for 5 epochs, then 1e-4 "
     "(App. A.1)", NO_CODE, "--budget paper: the same (lr_steps 5); quick: 8 epochs, batch 64, "
     "constant 1e-3; g's Adam follows f's rate"),
    ("Loss of f (eq. 10) and of g (eq. 9)", "as in the text (seed 000's eq. 12 is an earlier, "
     "different regulariser)", NO_CODE, "the same, seed 001's equations"),
    ("λ", "several values, not given; the one whose test accuracy matches NO REG's best",
     NO_CODE, "λ in {1, 3}; the same choice rule, per seed"),
    ("HEIN", "the Cross-Lipschitz regulariser of Hein and Andriushchenko, a column of Tables 1 "
     "and 3, its λ chosen like OURS's; its value not given", NO_CODE + " (Hein and "
     "Andriushchenko's own TensorFlow code, max-andr/cross-lipschitz, normalises by n K^2)",
     "`cross-lipschitz` regime, the same normalisation, λ in {0.01, 0.1, 1}, chosen by the "
     "same rule"),
    ("Margin attacks", "FGSM, PGD and BG; radii and steps not given (§3.2)", NO_CODE,
     "FGSM and PGD (20 steps) at l_2 radii 1/64, 1/16, 1/4, 1 of the box's diameter; "
     "DeepFool in place of BG (also a minimum-distance attack)"),
    ("Margin points", "every test point (§3.2; Table 3's caption says training examples)",
     NO_CODE, "--budget paper: all 10000 test points; quick: the first 1000"),
    ("Area R", "the area under R(eps) on [0, d], d = sqrt(784) = 28", NO_CODE,
     "[0, d] with d the largest margin found (rounded up): the same area when every margin is "
     "found (the mean margin)"),
    ("Seeds", "one run per net, no ± in Tables 1 and 3", NO_CODE,
     "accuracy gap and area difference over `seeds` runs with standard errors (see Seeds)"),
    ("Section 4", "transfer with paired autoencoders (C-MNIST)", NO_CODE, "not reproduced "
     "(issue 16)"),
)
ATTACK_NAMES = {"deepfool": "DeepFool (for BG)", "fgsm": "FGSM", "pgd": "PGD"}


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figures, in the page's order."""
    chosen, data, hein = results["chosen"], results["dataset"], results["chosen_hein"]
    margins = {k: as_tensor(m) for k, m in results["margins"].items()}
    run.section("## How this differs from the authors' experiments\n\n"
                + table(["item", "paper text", "authors' code", "specrob here"],
                        [list(row) for row in DIFFERENCES]))
    setup_section(run, data, budget, chosen, hein)
    accuracy_section(run, results["accuracy"], chosen, hein)
    curve_section(run, results["curves"], results["area_difference_vs_noreg"], margins, chosen,
                  hein, results["d"], data["name"], results["ours_vs_hein"])
    shares_section(run, results["shares"], chosen, hein)
    seeds_section(run, results["seeds"])


def seeds_section(run: Run, seeds: dict) -> None:
    """Accuracies, the λ chosen and the areas, seed by seed, with means and standard errors."""
    from specrob.reproduce.common import mean_se
    if len(seeds) < 2:
        run.section("## Seeds\n\nOne seed at this budget: the intervals above are over test "
                    "points only.")
        return
    names = list(next(iter(seeds.values()))["accuracy"])
    rows = [[f"seed {k}"] + [pct(r["accuracy"][n], 2) for n in names]
            + [f"{r['chosen']}, {r['chosen_hein']}", f"{r['area_difference']:+.3f}",
               f"{r['hein_area_difference']:+.3f}", f"{r['ours_minus_hein']:+.3f}"]
            for k, r in seeds.items()]
    gaps = mean_se([r["accuracy"][r["chosen"]] - r["accuracy"]["NO REG"]
                    for r in seeds.values()])
    areas = [mean_se([r[key] for r in seeds.values()])
             for key in ("area_difference", "hein_area_difference", "ours_minus_hein")]
    means = [mean_se([r["accuracy"][n] for r in seeds.values()]) for n in names]
    rows.append(["mean ± SE"] + [f"{100 * m:.2f} ± {100 * e:.2f}" for m, e in means]
                + [f"OURS' gap {100 * gaps[0]:+.2f} ± {100 * gaps[1]:.2f} pp"]
                + [f"{m:+.3f} ± {e:.3f}" for m, e in areas])
    run.section(f"""## Seeds

Every network trained again from other initial weights and batch orders; test accuracy (%),
the λs chosen by the paper's rule, and the area differences of the chosen nets (each seed's own
d):

{table(["run"] + names + ["chosen", "R(OURS) − R(NO REG)", "R(HEIN) − R(NO REG)",
                          "R(OURS) − R(HEIN)"], rows)}""")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def budget_text(results: dict, budget: Budget) -> str:
    data, chosen = results["dataset"], results["chosen"]
    return (f"{data['name']}, {data['train']} training / {data['test']} test points; f = MLP "
            f"{data['input_dim']}-{budget.hidden}-{budget.hidden}-{data['classes']} (ReLU), "
            f"{plural(budget.epochs, 'epoch')}, batch {budget.batch_size}, Adam lr {budget.lr:g}"
            + (f" (x0.1 after epoch {', '.join(map(str, budget.lr_steps))})"
               if budget.lr_steps else "") + f", {plural(budget.seeds, 'seed')}; "
            f"co-training λ in {{{', '.join(f'{x:g}' for x in budget.lams)}}} "
            f"(chosen: {chosen.split('=')[-1]}), HEIN λ in "
            f"{{{', '.join(f'{x:g}' for x in budget.hein_lams)}}} "
            f"(chosen: {results['chosen_hein'].split('=')[-1]}); margins of the first "
            f"{budget.margin_points} test points by FGSM + PGD (20 steps) + DeepFool, l_2.")


# --- page sections --------------------------------------------------------------------------
def setup_section(run: Run, data: dict, budget: Budget, chosen: str, hein: str) -> None:
    lams = ", ".join(f"{x:g}" for x in budget.lams)
    hein_lams = ", ".join(f"{x:g}" for x in budget.hein_lams)
    run.section(f"""## Setup and deviations from the paper

- **Networks.** NO REG is trained with cross-entropy only (`baseline` regime); OURS is
  co-trained with an adversarial generator g by Algorithm 1 with the losses (9) for g and (10)
  for f (`cotrain` regime, option `lam` = λ); HEIN with cross-entropy plus λ times Hein and
  Andriushchenko's Cross-Lipschitz regulariser, the mean over class pairs of
  ||∇f_l(x) − ∇f_m(x)||² (`cross-lipschitz` regime, `lam` = λ). All start from the same initial
  weights.
- **f** is an MLP {data['input_dim']}-{budget.hidden}-{budget.hidden}-{data['classes']}, not the
  paper's convnet (128-channel 5x5 convolutions, a 1024-unit layer): on one CPU core that
  convnet is about 8 times slower per step, and its margin evaluation about 30 times slower.
  {plural(budget.epochs, 'epoch')} at Adam lr {budget.lr:g}{
      f" (x0.1 after epoch {budget.lr_steps[0]})" if budget.lr_steps else ""}, batch
  {budget.batch_size} (the paper: 10 epochs, batch 32, lr 1e-3 then 1e-4, the best epoch on a
  10% validation split). So our accuracies are lower than the paper's.
- **g** is specrob's default generator, an MLP perturbation network
  g(x) = clip(x + 0.5 tanh(MLP(x))) with one 256-unit hidden layer, not the paper's convnet
  with a sigmoid output.
- **λ.** We co-train with λ in {{{lams}}} and, as the paper does, report the λ whose test
  accuracy is closest to NO REG's: **{chosen}**. The other λ is listed too.
- **HEIN's λ** in {{{hein_lams}}}, chosen by the same rule: **{hein}**.
- **Margins** (§3.2): for each of the first {budget.margin_points} test points, FGSM and
  PGD (maximising the margin loss in l_2 balls of 1/64, 1/16, 1/4 and 1 times the box's
  diameter) and DeepFool each propose an adversarial example x'; a binary search on the
  segment [x, x'] moves it to the decision boundary, and the closest, in l_2, gives the margin.
  DeepFool stands in for the paper's BG attack (Hein and Andriushchenko's, also a
  minimum-distance attack). Margins refer to the predicted label f(x), so every point counts.""")




def accuracy_section(run: Run, accuracy: dict, chosen: str, hein: str) -> None:
    """Table 1: every network's accuracy (a proportion with its Wilson interval)."""
    rows = [["NO REG", pct_ci(accuracy["NO REG"], 2),
             f"{PAPER_ACCURACY['001']['NO REG']:.2f}", f"{PAPER_ACCURACY['000']['NO REG']:.2f}"]]
    for k in [hein, chosen] + [k for k in accuracy if k not in ("NO REG", chosen, hein)]:
        mine = pct_ci(accuracy[k], 2)
        if k in (chosen, hein):
            paper = k.split(" ")[0]
            rows.append([f"{paper} ({k.split(' ')[1]}, chosen)", mine,
                         f"{PAPER_ACCURACY['001'][paper]:.2f}",
                         f"{PAPER_ACCURACY['000'][paper]:.2f}"])
        else:
            rows.append([f"{k} (not chosen)", mine, "—", "—"])
    n = accuracy["NO REG"]["count"]
    run.section(f"## Table 1: clean test accuracy (%)\n\nOurs on all {n} test points "
                "(95% Wilson intervals) beside the paper's F-MNIST row.\n\n"
                + table(["network", "ours", "paper (seed 001)", "paper (seed 000)"], rows))


def curve_section(run: Run, curves: dict, diff: dict, margins: dict, chosen: str, hein: str,
                  d: float, dataset: str, ours_vs_hein: dict) -> None:
    from specrob.stats import proportion
    shown = ["NO REG", hein, chosen] + [k for k in curves if k not in ("NO REG", chosen, hein)]
    label = {k: (f"{k}, chosen" if k in (chosen, hein) else k) for k in shown}
    series = {f"{label[k]} (R = {curves[k]['area']['value']:.3f})":
              [r["value"] for r in curves[k]["curve"]] for k in shown}
    bands = {f"{label[k]} (R = {curves[k]['area']['value']:.3f})":
             ([r["low"] for r in curves[k]["curve"]], [r["high"] for r in curves[k]["curve"]])
             for k in shown}
    path, link = run.figure("fig3-margin-curves")
    plot_curves(path, [r["eps"] for r in curves["NO REG"]["curve"]], series, bands=bands,
                xlabel="eps (l_2 distance)", ylabel="R(eps): fraction with margin > eps",
                title=f"Figure 3 ({dataset}): margin curves; R = area on [0, {d:g}]",
                ylim=(0.0, 1.02))
    rows = []
    for k in shown:
        area = curves[k]["area"]
        change = ("—" if k == "NO REG" else
                  f"{diff[k]['value']:+.3f} [{diff[k]['low']:+.3f}, {diff[k]['high']:+.3f}]")
        mid = proportion(int((margins[k] > 0.5).sum()), len(margins[k]))
        rows.append([f"{k.split(' ')[0]} ({k.split(' ')[1]}, chosen)"
                     if k in (chosen, hein) else k,
                     f"{area['value']:.3f} [{area['low']:.3f}, {area['high']:.3f}]", change,
                     f"{float(margins[k].median()):.3f}", pct_ci(mid.as_dict())])
    n = len(margins["NO REG"])
    run.section(f"""## Figure 3: margin curves and their areas R

R(eps) is the fraction of the {n} evaluated test points whose (ensemble) margin exceeds eps,
with 95% Wilson bands; the area R = ∫_0^d R(eps) d eps uses d = {d:g}, the largest margin
found for the three compared networks (rounded up to 0.25), so R is their mean margin. Margins
are distances to adversarial examples actually found, hence upper bounds of the true margins
(and the curves upper bounds of the true R). The paper's figure gives areas for its convnets on
its own scale, which are not comparable with an MLP's; we compare the shape: whether OURS lies
above NO REG and HEIN, as in the paper. OURS against HEIN, paired over the same points:
R(OURS) − R(HEIN) = {ours_vs_hein['value']:+.3f} [{ours_vs_hein['low']:+.3f},
{ours_vs_hein['high']:+.3f}].

![margin curves]({link})

""" + table(["network", "area R [95% CI]", "R − R(NO REG), paired [95% CI]", "median margin",
             "R(0.5) in %"], rows))


def shares_section(run: Run, shares: dict, chosen: str, hein: str) -> None:
    rows = []
    for k in ["NO REG", hein, chosen] + [k for k in shares if k not in ("NO REG", chosen, hein)]:
        paper = "NO REG" if k == "NO REG" else (k.split(" ")[0] if k in (chosen, hein) else None)
        for a in ("deepfool", "fgsm", "pgd"):
            p1 = f"{PAPER_SHARES['001'][paper][PAPER_KEY[a]]:.2f}" if paper else "—"
            p0 = f"{PAPER_SHARES['000'][paper][PAPER_KEY[a]]:.2f}" if paper else "—"
            name = k if k not in (chosen, hein) else f"{paper} ({k.split(' ')[1]})"
            rows.append([name, ATTACK_NAMES[a], pct_ci(shares[k][a], 2), p1, p0])
    run.section("## Table 3: share of closest adversarial examples by attack (%)\n\n"
                "Among the evaluated test points, the share whose closest boundary point "
                "(after the binary search) came from each attack (ties go to FGSM, then PGD, "
                "then DeepFool). The paper's BG column is compared with our DeepFool.\n\n"
                + table(["network", "attack", "ours [95% CI]", "paper (seed 001)",
                         "paper (seed 000)"], rows))


# --- the summary ----------------------------------------------------------------------------
def epoch_spread(metrics: list[dict], *, last: int = 4) -> tuple[float, float]:
    """(lowest, highest) per-epoch test accuracy (on the trainer's check points) over the
    last `last` epochs: how much the final accuracy owes to where training stopped."""
    values = [m["test_accuracy"] for m in metrics[-last:]]
    return min(values), max(values)


def stability(training: dict, stepped: bool = False) -> str:
    """A sentence on the epoch-to-epoch wobble of NO REG's accuracy (no best-epoch
    selection; `stepped`: the rate was lowered on the way), against which the accuracy match
    must be read."""
    metrics = training["noreg"]
    if len(metrics) < 2:
        return ""
    low, high = epoch_spread(metrics)
    k = min(4, len(metrics))
    rate = "the paper's lowered learning rate" if stepped else "a constant learning rate"
    return (f"With {rate} and no best-epoch selection, NO REG's accuracy on "
            f"the trainer's check points moved between {pct(low)}% and {pct(high)}% over its "
            f"last {k} epochs, so an accuracy match within 1 point is partly chance.")


def summary(run: Run, results: dict, budget: Budget) -> str:
    """Sentences computed from the numbers: where we agree with the paper and where not, and
    how much NO REG's accuracy wobbled between epochs."""
    acc, chosen, dataset = accuracies(results), results["chosen"], results["dataset"]["name"]
    curves, diff = results["curves"], results["area_difference_vs_noreg"]
    share = {k: results["shares"][k] for k in ("NO REG", chosen)}
    gap = 100 * (acc[chosen] - acc["NO REG"])
    dd = diff[chosen]
    a, b = curves[chosen]["area"]["value"], curves["NO REG"]["area"]["value"]
    if dd["low"] > 0 and abs(gap) <= 1:
        robust = (f"co-training increased the area under the margin curve from {b:.3f} to "
                  f"{a:.3f} ({100 * (a / b - 1):+.0f}%, the paired interval excludes 0) at "
                  "about the same accuracy, agreeing with the paper's Figure 3")
    elif dd["low"] > 0:
        robust = (f"co-training increased the area under the margin curve from {b:.3f} to "
                  f"{a:.3f} ({100 * (a / b - 1):+.0f}%, the paired interval excludes 0), but "
                  f"with an accuracy {gap:+.1f} points off NO REG's, so the comparison is not at "
                  "equal accuracy as in the paper")
    elif dd["value"] > 0:
        robust = (f"the co-trained net's area R is larger ({a:.3f} vs {b:.3f}) but the paired "
                  "95% interval of the difference includes 0, so the paper's robustness gain "
                  "is not established here")
    else:
        robust = (f"the co-trained net's area R is not larger ({a:.3f} vs {b:.3f}), unlike "
                  "the paper's Figure 3")
    acc_text = (f"Its accuracy is {pct(acc[chosen], 2)}% against {pct(acc['NO REG'], 2)}% for "
                f"NO REG ({gap:+.2f} pp; the paper: 93.57% vs 93.47%)")
    df = min(share[k]["deepfool"]["value"] for k in share)
    shares = (f"DeepFool finds the closest adversarial example for {pct(df)}% or more of the "
              f"points of NO REG and OURS ({'most, as BG does in the paper' if df > 0.5 else 'not most, unlike BG in the paper'}); "
              f"PGD's share goes from {pct(share['NO REG']['pgd']['value'])}% (NO REG) to "
              f"{pct(share[chosen]['pgd']['value'])}% (OURS), the paper: 0.65% → 11.29%"
              + (" (our change is within the intervals' overlap)"
                 if overlap(share["NO REG"]["pgd"], share[chosen]["pgd"]) else ""))
    pgd_base = share["NO REG"]["pgd"]["value"]
    below = 100 * (PAPER_ACCURACY["001"]["NO REG"] / 100 - acc["NO REG"])
    epochs = plural(budget.epochs, "epoch")
    why = (f"Our NO REG accuracy is {below:.1f} points below the paper's because f is a small "
           f"MLP ({epochs}, the last one kept), not the paper's convnet with the best of its "
           f"10 epochs on a validation split")
    if dataset != "fashion-mnist":
        why = (f"Our accuracies are not comparable with the paper's F-MNIST numbers ({dataset} "
               f"data, a small MLP, {epochs})")
    if pgd_base > 0.05:
        why += ("; and our PGD, run in a sweep of four ball radii, is a stronger competitor "
                "for NO REG than the paper's PGD (whose NO REG share is under 3%)")
    where = "" if dataset == "fashion-mnist" else " (not the paper's Fashion-MNIST)"
    hein, vs = results["chosen_hein"], results["ours_vs_hein"]
    hein_text = (f"HEIN ({hein.split(' ')[1]}) reaches {pct(acc[hein], 2)}% (the paper: "
                 f"92.80%) and an area R of {curves[hein]['area']['value']:.3f}; co-training's "
                 f"area is {'larger' if vs['low'] > 0 else 'smaller' if vs['high'] < 0 else 'not significantly different'}"
                 f" (R(OURS) − R(HEIN) = {vs['value']:+.3f} [{vs['low']:+.3f}, "
                 f"{vs['high']:+.3f}], paired)")
    return (f"On {dataset}{where}, with λ = "
            f"{chosen.split('=')[-1]} chosen as in the paper (accuracy closest to NO REG), "
            f"{robust}. {acc_text}. {hein_text}. {shares}. {why}. "
            + stability(run.results["training"], bool(budget.lr_steps)))
