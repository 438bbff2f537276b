"""Tibo et al. (seed 001), section 4, the page: how the run differs from the paper's grid,
Table 4's rows beside ours, the accuracy against N_c, the budget and the summary, all written
from the experiment's results.
"""
from __future__ import annotations

from specrob.reproduce.common import Run, pct, plot_curves, table
from specrob.reproduce.tibo_transfer.claims import COLUMNS, PAPER_MEAN_PLAIN, PAPER_TABLE4
from specrob.reproduce.tibo_transfer.experiment import (GAUSS_KIND, GAUSS_SEVERITY, Budget,
                                                        corrupted_mean, setup_rows)

TITLE = "Tibo et al. (seed 001, section 4): transfer by paired autoencoders"
NO_CODE = "no public code"
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("Data", "MNIST and C-MNIST (Mu and Gilmer): 15 corruptions of the training and test sets",
     NO_CODE, "Fashion-MNIST; corruptions made offline by specrob.corruptions, 3 families "
     "with a C-MNIST counterpart (impulse noise, rotate, scale) at severity 5"),
    ("Grid", "15 corruptions x N_c in {0, 128, 1024, 30k} x {SEPARATE, JOINT}, NN and SVM, 5 "
     "initialisations", NO_CODE, "3 corruptions x N_c in {128, 1024} x {SEPARATE, JOINT}, NN "
     "only, one seed (about 1.7 h of one core here: 75 s per epoch of an adapted classifier, "
     "measured alone); N_c = 0 (one autoencoder, clean inputs only) and the "
     "SVM are not run"),
    ("Clean points", "N_o = 60k - 15 N_c", NO_CODE, "N_o = 20000 (the first training points); "
     "each corruption's inputs from other training points, as in the paper"),
    ("Classifier f", "Conv(32) -> Conv(64) -> pool -> dropout -> Dense(128) -> dropout; Adam "
     "1e-3, batch 32, 50 epochs, best epoch on a 10% validation split", NO_CODE,
     "MLP 784-256-256-10 (examples/mlp_two_hidden.py), Adam 1e-3, batch 32, 10 epochs, the "
     "last kept"),
    ("Autoencoders", "E: Conv(32, s2) -> Conv(64, s2) -> Conv(128, s2) -> Dense(128); D_i: "
     "Dense(2048) -> Dense(7x7x64) -> ConvT(64) -> ConvT(32) -> ConvT(1), sigmoid; 100 epochs, "
     "Adam 1e-3, batch 32", NO_CODE, "the same E; D_i = Dense(2048) -> Dense(784), sigmoid "
     "(specrob reads no ConvTranspose, and f(T(x)) is exported and evaluated like any "
     "network); 2 pair steps per classifier step for 10 epochs (the paper's 100:50 ratio); "
     "mean squared reconstruction error (the paper: 'the reconstruction loss')"),
    ("GAUSS", "clean and Gaussian-noised copies (sigma 0.1 per pixel)", NO_CODE,
     "the same: gaussian-noise at severity 5 (sigma 0.10), not clipped away from [0, 1]"),
)


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figure."""
    run.section("## How this differs from the authors' experiments\n\n"
                + table(["item", "paper text", "authors' code", "specrob here"],
                        [list(row) for row in DIFFERENCES]))
    rows = setup_rows(results)
    corruptions = results["corruptions"]
    sets = ["clean", *corruptions]
    paper_col = {"PLAIN": 0, "GAUSS": 1}
    for n in results["sizes"]:
        for s in ("SEPARATE", "JOINT"):
            name = f"{s} {n}"
            if name in COLUMNS:
                paper_col[f"TRANSFER-{name}"] = COLUMNS.index(name)
    lines = []
    for setup, acc in rows.items():
        k = paper_col.get(setup)
        lines.append([setup] + [pct(acc[s]) for s in sets]
                     + [pct(corrupted_mean(acc, corruptions))]
                     + ([" / ".join(f"{PAPER_TABLE4[s][k]:.1f}" for s in sets)]
                        if k is not None else ["—"]))
    run.section("## Table 4 (cut down): accuracy per test set (%)\n\n"
                "Ours on Fashion-MNIST with specrob's corruptions; TRANSFER-SEPARATE evaluates "
                "each corruption with its own pair (its clean column: the mean over the pairs). "
                "The paper's column: its C-MNIST row for the same setup, "
                f"{' / '.join(['IDENTITY' if s == 'clean' else s for s in sets])}.\n\n"
                + table(["setup"] + sets + ["mean corrupted", "paper (C-MNIST NN)"], lines))
    path, link = run.figure("accuracy-vs-nc")
    sizes = results["sizes"]
    series = {f"TRANSFER-{s}": [corrupted_mean(rows[f"TRANSFER-{s} {n}"], corruptions)
                                for n in sizes] for s in ("SEPARATE", "JOINT")}
    for base in ("PLAIN", "GAUSS"):
        series[base] = [corrupted_mean(rows[base], corruptions)] * len(sizes)
    plot_curves(path, sizes, series, xlabel="N_c (corrupted training inputs per corruption)",
                ylabel="mean accuracy on the corrupted test sets",
                title="Accuracy under the shift against N_c", ylim=(0.0, 1.0))
    run.section(f"## Accuracy against N_c\n\n![accuracy against N_c]({link})")


def budget_text(results: dict, budget: Budget) -> str:
    data = results["dataset"]
    return (f"{data['name']}: {budget.clean} clean training points, "
            f"{', '.join(map(str, budget.shifted))} corrupted inputs per corruption "
            f"({', '.join(budget.corruptions)}, severity {budget.severity}); test sets of "
            f"{data['test'] if budget.test is None else budget.test} points; f = MLP "
            f"{data['input_dim']}-{budget.hidden}-{budget.hidden}-{data['classes']}, "
            f"{budget.epochs} epochs, batch {budget.batch_size}, Adam lr {budget.lr:g}; the "
            f"pair {budget.transfer_steps} steps per classifier step; GAUSS: {GAUSS_KIND} "
            f"severity {GAUSS_SEVERITY}; one seed.")


def summary(run: Run, results: dict, budget: Budget) -> str:
    rows, corruptions = setup_rows(results), results["corruptions"]
    mean = {k: corrupted_mean(v, corruptions) for k, v in rows.items()}
    best = max((k for k in rows if k.startswith("TRANSFER")), key=lambda k: mean[k])
    return (f"On {results['dataset']['name']} with {len(corruptions)} corruptions, PLAIN "
            f"reaches {pct(rows['PLAIN']['clean'])}% on clean test data and "
            f"{pct(mean['PLAIN'])}% on the corrupted sets on average (the paper's PLAIN NN: "
            f"99.1% and {PAPER_MEAN_PLAIN:.1f}% over C-MNIST's 15 corruptions); GAUSS "
            f"{pct(mean['GAUSS'])}%; the best transfer setup, {best}, {pct(mean[best])}%. "
            "The grid is cut (see the table of differences): 3 corruptions, two sizes, one "
            "seed, an MLP classifier and dense decoders, so the comparison with the paper is "
            "of directions, not of levels.")
