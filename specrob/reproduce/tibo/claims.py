"""Tibo, Jaeger and Larsen (seeds 000/001), the paper's side: its reference, its F-MNIST
numbers (Tables 1 and 3 of seed 001, Tables 1 and 2 of seed 000) and its claims of §3.3,
each checked against the experiment's results.
"""
from __future__ import annotations

from specrob.reproduce.common import Run, mean_se, pct, pct_ci
from specrob.reproduce.tibo.experiment import Budget, accuracies

PAPER_REF = ("Tibo, Jaeger, Larsen et al., *A general framework for defining and optimizing "
             "robustness* (seed 001, §3.3 and Appendix A.2; seed 000 is an earlier version "
             "with slightly different numbers, §6 and its Table 2).")

# The paper's F-MNIST numbers (percent): Table 1 and Table 3 (seed 001), Table 1 and Table 2
# (seed 000). HEIN is the cross-Lipschitz regulariser of Hein and Andriushchenko.
PAPER_ACCURACY = {"001": {"NO REG": 93.47, "HEIN": 92.80, "OURS": 93.57},
                  "000": {"NO REG": 93.72, "HEIN": 93.30, "OURS": 93.29}}
PAPER_SHARES = {"001": {"NO REG": {"bg": 93.17, "fgsm": 6.18, "pgd": 0.65},
                        "HEIN": {"bg": 92.46, "fgsm": 7.03, "pgd": 0.51},
                        "OURS": {"bg": 82.43, "fgsm": 6.28, "pgd": 11.29}},
                "000": {"NO REG": {"bg": 94.09, "fgsm": 3.05, "pgd": 2.86},
                        "HEIN": {"bg": 93.54, "fgsm": 3.60, "pgd": 2.86},
                        "OURS": {"bg": 89.22, "fgsm": 2.91, "pgd": 7.87}}}
PAPER_KEY = {"deepfool": "bg", "fgsm": "fgsm", "pgd": "pgd"}  # our attack -> the paper's column


def overlap(a: dict, b: dict) -> bool:
    """Whether two estimates' 95% intervals overlap."""
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def check(run: Run, results: dict, budget: Budget) -> None:
    """Record the paper's numbers (the JSON's "paper") and its claims, with the numbers that
    decide them."""
    run.results["paper"] = {"accuracy": PAPER_ACCURACY, "shares": PAPER_SHARES}
    acc, chosen, shares = accuracies(results), results["chosen"], results["shares"]
    curves, diff = results["curves"], results["area_difference_vs_noreg"]
    seeds = results["seeds"]
    gap = acc[chosen] - acc["NO REG"]
    a, b, dd = curves[chosen]["area"], curves["NO REG"]["area"], diff[chosen]
    if len(seeds) > 1:  # across seeds: the chosen net of each seed against its NO REG
        accuracy_kept(run, "Co-training keeps the accuracy almost unchanged (here: within 1 "
                      "percentage point of NO REG)", seeds, "chosen", "accuracy gap to NO REG",
                      f"; seed {next(iter(seeds))}: {pct(acc[chosen], 2)}% vs "
                      f"{pct(acc['NO REG'], 2)}%")
        area_gain(run, "Co-training learns a more robust model: a larger area R under the "
                  "margin curve than NO REG", seeds, "area_difference", "chosen λ - NO REG",
                  f"R = {a['value']:.3f} vs {b['value']:.3f}, paired 95% interval "
                  f"[{dd['low']:+.3f}, {dd['high']:+.3f}]")
    else:
        run.claim("Co-training keeps the accuracy almost unchanged (here: within 1 percentage "
                  "point of NO REG)", abs(gap) <= 0.01,
                  f"{pct(acc[chosen], 2)}% vs {pct(acc['NO REG'], 2)}% ({100 * gap:+.2f} pp)")
        run.claim("Co-training learns a more robust model: a larger area R under the margin "
                  "curve than NO REG (here: the paired 95% interval of the difference above 0)",
                  dd["low"] > 0,
                  f"R = {a['value']:.3f} vs {b['value']:.3f}, difference {dd['value']:+.3f} "
                  f"[{dd['low']:+.3f}, {dd['high']:+.3f}]")
    hein_claims(run, results)
    hein = results["chosen_hein"]
    bg = {k: shares[k]["deepfool"]["value"] for k in ("NO REG", chosen, hein)}
    run.claim("The BG-type attack (DeepFool here) produces most of the closest adversarial "
              "examples, for all three networks (Table 3: 93.17%, 92.46%, 82.43%)",
              min(bg.values()) > 0.5,
              f"DeepFool shares {pct(bg['NO REG'])}% (NO REG), {pct(bg[hein])}% (HEIN), "
              f"{pct(bg[chosen])}% (OURS)")
    pgd = {k: shares[k]["pgd"] for k in ("NO REG", chosen)}
    rise = pgd[chosen]["value"] > pgd["NO REG"]["value"]
    run.claim("For the co-trained network PGD's share of closest examples rises compared with "
              "NO REG (Table 3)", rise,
              f"PGD share {pct_ci(pgd['NO REG'])}% (NO REG) → {pct_ci(pgd[chosen])}% (OURS)"
              + ("; the intervals overlap: within noise" if rise and overlap(*pgd.values())
                 else ""))


def hein_claims(run: Run, results: dict) -> None:
    """Table 1's HEIN column and Figure 3's comparison of the regularisers: HEIN keeps the
    accuracy close to NO REG's, and co-training is the more robust of the two."""
    acc, seeds = accuracies(results), results["seeds"]
    hein, chosen = results["chosen_hein"], results["chosen"]
    paper_gap = PAPER_ACCURACY["001"]["HEIN"] - PAPER_ACCURACY["001"]["NO REG"]
    vs = results["ours_vs_hein"]
    if len(seeds) > 1:
        accuracy_kept(run, f"HEIN keeps the accuracy close to NO REG's (Table 1: "
                      f"{paper_gap:+.2f} pp; here: within 1 percentage point)", seeds,
                      "chosen_hein", "HEIN's accuracy gap to NO REG")
        area_gain(run, "Co-training gives a more robust model than HEIN: a larger area R "
                  "under the margin curve (Figure 3)", seeds, "ours_minus_hein",
                  "OURS - HEIN, each seed's chosen λ",
                  f"paired 95% interval [{vs['low']:+.3f}, {vs['high']:+.3f}]")
    else:
        gap = acc[hein] - acc["NO REG"]
        run.claim(f"HEIN keeps the accuracy close to NO REG's (Table 1: {paper_gap:+.2f} pp; "
                  f"here: within 1 percentage point)", abs(gap) <= 0.01,
                  f"{pct(acc[hein], 2)}% vs {pct(acc['NO REG'], 2)}% ({100 * gap:+.2f} pp)")
        run.claim("Co-training gives a more robust model than HEIN: a larger area R under the "
                  "margin curve (Figure 3; here: the paired 95% interval above 0)",
                  vs["low"] > 0,
                  f"R(OURS) - R(HEIN) = {vs['value']:+.3f} [{vs['low']:+.3f}, "
                  f"{vs['high']:+.3f}] ({chosen} vs {hein})")


def accuracy_kept(run: Run, text: str, seeds: dict, chosen: str, what: str,
                  more: str = "") -> None:
    """A claim that a regularised net (each seed's `chosen` one) keeps NO REG's accuracy:
    it holds when the mean gap over the seeds, ± 2 standard errors, stays within ±1 point."""
    gm, gse = mean_se([r["accuracy"][r[chosen]] - r["accuracy"]["NO REG"]
                       for r in seeds.values()])
    run.claim(text, abs(gm) + 2 * gse <= 0.01,
              f"{what}, mean ± standard error over {len(seeds)} seeds: {100 * gm:+.2f} ± "
              f"{100 * gse:.2f} pp (holds when the mean ± 2 SE stays within ±1 pp{more})")


def area_gain(run: Run, text: str, seeds: dict, key: str, what: str, first: str) -> None:
    """A claim that an area difference (each seed's `key`) is positive: it holds when its
    mean over the seeds is above two standard errors. `first`: the first seed's numbers."""
    m, se = mean_se([r[key] for r in seeds.values()])
    run.claim(f"{text} (here: the mean difference over the seeds above two standard errors)",
              m > 2 * se, f"area difference ({what}), mean ± SE over {len(seeds)} seeds: "
              f"{m:+.3f} ± {se:.3f}; seed {next(iter(seeds))}: {first}")
