"""Tibo et al. (seed 001), section 4, the paper's side: its reference, its C-MNIST numbers for
the neural network (Table 4 of Appendix B, the rows of the corruptions reproduced here) and its
claims, each checked against the experiment's results.
"""
from __future__ import annotations

from specrob.reproduce.common import Run, pct
from specrob.reproduce.tibo_transfer.experiment import Budget, corrupted_mean, setup_rows

PAPER_REF = ("Tibo, Jaeger, Larsen et al., *A general framework for defining and optimizing "
             "robustness* (seed 001, section 4 and Appendix B: transfer by paired autoencoders "
             "on C-MNIST).")

# Table 4 (NN on C-MNIST, %): PLAIN, GAUSS, N_c = 0 (one autoencoder), TRANSFER-SEPARATE
# 128 / 1024 / 30k, TRANSFER-JOINT 128 / 1024 / 30k, means over 5 initialisations.
COLUMNS = ("PLAIN", "GAUSS", "0", "SEPARATE 128", "SEPARATE 1024", "SEPARATE 30k",
           "JOINT 128", "JOINT 1024", "JOINT 30k")
PAPER_TABLE4 = {
    "clean": (99.1, 99.3, 99.1, 99.0, 99.0, 99.1, 99.0, 99.1, 99.1),          # IDENTITY
    "impulse-noise": (88.6, 93.4, 88.8, 84.7, 90.4, 93.8, 71.4, 92.4, 93.4),
    "rotate": (90.7, 92.1, 90.7, 90.1, 91.1, 91.9, 90.5, 91.0, 92.1),
    "scale": (91.5, 94.3, 91.5, 87.4, 87.6, 94.4, 90.9, 92.7, 94.1),
}
PAPER_MEAN_PLAIN = 86.30  # the text: PLAIN NN over the 15 corruptions, ± 0.52


def check(run: Run, results: dict, budget: Budget) -> None:
    """Record the paper's numbers (the JSON's "paper") and its claims of section 4."""
    run.results["paper"] = {"table4": PAPER_TABLE4, "columns": COLUMNS}
    rows, corruptions = setup_rows(results), results["corruptions"]
    mean = {k: corrupted_mean(v, corruptions) for k, v in rows.items()}
    clean = {k: v["clean"] for k, v in rows.items()}
    sizes = results["sizes"]
    drop = {k: clean["PLAIN"] - clean[k] for k in rows if k != "PLAIN"}
    run.claim("Adding a robust training approach nowhere leads to a significant decrease in "
              "the clean accuracy (here: every setup within 1 percentage point of PLAIN on "
              "the clean test set)", max(drop.values()) <= 0.01,
              "clean accuracy: " + ", ".join(f"{k} {pct(v)}%" for k, v in clean.items()))
    gap = clean["PLAIN"] - mean["PLAIN"]
    run.claim("PLAIN is significantly less accurate on the corrupted than on the clean data "
              "(here: by 5 points or more on average)", gap >= 0.05,
              f"PLAIN: {pct(clean['PLAIN'])}% clean, {pct(mean['PLAIN'])}% on the corrupted "
              f"sets on average (" + ", ".join(f"{k} {pct(rows['PLAIN'][k])}%"
                                              for k in corruptions) + ")")
    gain = mean["GAUSS"] - mean["PLAIN"]
    run.claim("GAUSS (Gaussian noise augmentation) gives only a minor improvement on the "
              "corrupted data (here: under 3 points on average)", gain < 0.03,
              f"mean corrupted accuracy GAUSS {pct(mean['GAUSS'])}% vs PLAIN "
              f"{pct(mean['PLAIN'])}% ({100 * gain:+.1f} pp)")
    small, large = sizes[0], sizes[-1]
    grows = all(mean[f"TRANSFER-{s} {large}"] > mean[f"TRANSFER-{s} {small}"]
                and mean[f"TRANSFER-{s} {large}"] > mean["PLAIN"]
                for s in ("SEPARATE", "JOINT"))
    run.claim("TRANSFER improves the accuracy on corrupted examples over PLAIN, more as the "
              f"number of corrupted training examples grows (here: N_c = {large} above "
              f"N_c = {small} and above PLAIN, for both setups)", grows,
              "; ".join(f"{s}: " + ", ".join(f"N_c {n} {pct(mean[f'TRANSFER-{s} {n}'])}%"
                                              for n in sizes) for s in ("SEPARATE", "JOINT"))
              + f"; PLAIN {pct(mean['PLAIN'])}%")
    diffs = {n: mean[f"TRANSFER-SEPARATE {n}"] - mean[f"TRANSFER-JOINT {n}"] for n in sizes}
    run.claim("TRANSFER-SEPARATE and TRANSFER-JOINT are very similar: one transfer model "
              "handles all the corruptions (here: mean accuracies within 2 points at every "
              "N_c)", all(abs(d) <= 0.02 for d in diffs.values()),
              ", ".join(f"N_c {n}: SEPARATE - JOINT {100 * d:+.1f} pp" for n, d in diffs.items()))
