"""Casadio et al. 2022 (seed 003), the paper's side: its reference, its Table 2 and its claims
(Table 2, experiments E1-E4 of §4 with Figs. 2-4, App. A, and §4's remark on constraint
accuracy), each checked against the experiment's results.
"""
from __future__ import annotations

from specrob.reproduce.casadio.experiment import (
    LABEL,
    PAPER_NOTIONS,
    PAPER_ROWS,
    Budget,
    security_values,
)
from specrob.reproduce.common import Run, pct

PAPER_REF = ("Marco Casadio, Ekaterina Komendantskaya, Matthew L. Daggitt, Wen Kokke, Guy "
             "Katz, Guy Amir, Idan Refaeli: *Neural Network Robustness as a Verification "
             "Property: A Principled Case Study* (CAV 2022; seed 003, the ICLR submission "
             "text).")
# Table 2: standard test-set accuracy (%), FASHION and GTSRB columns
PAPER_TABLE2 = {"baseline": (88.2, 92.4), "aug-ru": (88.6, 92.8), "aug-fgsm": (88.8, 94.5),
                "adversarial": (85.1, 83.5), "constraint-sr": (88.2, 93.3),
                "constraint-scr": (88.1, 91.9), "constraint-lr": (86.6, 93.1)}


def mean_attacked(security: dict, name: str, notion: str) -> float:
    """Mean security over the attacked radii eps > 0 (the area under a Fig. 2-4 curve / 0.1)."""
    vals = security_values(security, name, notion)[1:]
    return sum(vals) / len(vals)


def check(run: Run, results: dict, budget: Budget) -> None:
    """Record the paper's claims, in the paper's order, with the numbers that decide them: on
    the networks trained as the authors' code trains them (`PAPER_ROWS`), with the SCR of
    their code."""
    clean, security = results["clean_accuracy"], results["security"]
    cacc = results["constraint_accuracy"]
    m = lambda n, a: mean_attacked(security, n, a)
    f = lambda v: f"{100 * v:.1f}"
    worst = min(PAPER_ROWS, key=clean.get)
    run.claim("Table 2: the most notable accuracy drop occurs for adversarial training",
              worst == "adversarial",
              f"lowest clean accuracy: {LABEL[worst]} ({pct(clean[worst])}%)")
    drop = max(clean["baseline"] - clean[n] for n in ("constraint-sr", "constraint-scr",
                                                      "constraint-lr"))
    run.claim("Table 2: constraint training does not deteriorate accuracy drastically "
              "(the paper: at most 1.6 points below the baseline; read: within 2 points)",
              drop <= 0.02,
              f"largest drop of a constraint-trained net: {100 * drop:.1f} points")
    run.claim("E1 (Fig. 2): the LR-trained net has higher security than the SR-trained one "
              "against both the SR and the LR attack",
              m("constraint-lr", "SR") > m("constraint-sr", "SR")
              and m("constraint-lr", "LR") > m("constraint-sr", "LR"),
              f"mean security over eps > 0, LR-trained vs SR-trained: SR attack "
              f"{f(m('constraint-lr', 'SR'))} vs {f(m('constraint-sr', 'SR'))}, LR attack "
              f"{f(m('constraint-lr', 'LR'))} vs {f(m('constraint-sr', 'LR'))}")
    lr_weakest = all(m(n, "LR") <= min(m(n, "SR"), m(n, "SCR"))
                     for n in ("constraint-sr", "constraint-lr"))
    run.claim("E1 (Fig. 2): trained with SR or LR, a net is less robust against the LR attack "
              "than against any other attack", lr_weakest,
              "; ".join(f"{LABEL[n]}: " + ", ".join(f"{a} {f(m(n, a))}" for a in PAPER_NOTIONS)
                        for n in ("constraint-sr", "constraint-lr")))
    run.claim("E2 (Fig. 3): training with the SCR constraint does not help against SR attacks",
              m("constraint-scr", "SR") <= m("baseline", "SR") + 0.05,
              f"mean SR security: SCR-trained {f(m('constraint-scr', 'SR'))}, baseline "
              f"{f(m('baseline', 'SR'))}")
    run.claim("E3 (Fig. 4): adversarial training gives the most robustness against SR attacks, "
              "Constraint Loss (SR) almost as much, both above the baseline",
              m("adversarial", "SR") >= m("constraint-sr", "SR") > m("baseline", "SR"),
              f"mean SR security: adversarial {f(m('adversarial', 'SR'))}, constraint SR "
              f"{f(m('constraint-sr', 'SR'))}, baseline {f(m('baseline', 'SR'))}")
    run.claim("E3 (Fig. 4): networks trained with data augmentation are worse than even the "
              "baseline (SR attack)",
              max(m("aug-ru", "SR"), m("aug-fgsm", "SR")) < m("baseline", "SR"),
              f"mean SR security: RU {f(m('aug-ru', 'SR'))}, FGSM {f(m('aug-fgsm', 'SR'))}, "
              f"baseline {f(m('baseline', 'SR'))}")
    run.claim("E4 (Fig. 4): augmentation by random uniform sampling is less successful than by "
              "FGSM", m("aug-ru", "SR") < m("aug-fgsm", "SR"),
              f"mean SR security: RU {f(m('aug-ru', 'SR'))}, FGSM {f(m('aug-fgsm', 'SR'))}")
    top_lr = max(security_values(security, n, "LR")[-1] for n in PAPER_ROWS)
    run.claim("App. A: no training technique succeeds in ensuring robustness against LR "
              "attacks (read: LR security below 50% at eps = 0.1 for every net)", top_lr < 0.5,
              f"best LR security at eps 0.1: {f(top_lr)}%")
    sr_acc = min(cacc[n]["SR"]["value"] for n in PAPER_ROWS)
    scr_acc = min(cacc[n]["SCR"]["value"] for n in PAPER_ROWS)
    run.claim("§4: constraint accuracy (random sampling) is deceivingly high: 100% for SR, "
              "> 98% for SCR", sr_acc >= 0.995 and scr_acc > 0.98,
              f"lowest over the nets: SR {f(sr_acc)}%, SCR {f(scr_acc)}%")
