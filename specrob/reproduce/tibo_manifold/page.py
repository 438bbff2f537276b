"""Tibo et al. (seed 000), section 7, the page: how the run differs from the paper's, Tables 4
and 5 with the paper's numbers beside ours, the generator's samples and the R4 curves, the
budget and the summary, all written from the experiment's results.
"""
from __future__ import annotations

from specrob.reproduce.common import Run, pct, plot_curves, save_figure, table
from specrob.reproduce.tibo_manifold.claims import PAPER_TABLE4, PAPER_TABLE5
from specrob.reproduce.tibo_manifold.experiment import NETS, Budget

TITLE = "Tibo et al. (seed 000, section 7): on-manifold robustness R4"
NO_CODE = "no public code"


def differences(budget: Budget) -> list[list[str]]:
    """The rows of "How this differs from the authors' experiments" for this budget."""
    points = "all 60000" if budget.train is None else f"the first {budget.train}"
    return [
        ["Generator g", "a Wasserstein autoencoder (details in the paper's appendix, not in the "
         "text)", NO_CODE, "WAE-MMD (Tolstikhin et al.: inverse multiquadratic kernels, lambda 10, "
         "prior N(0, I)); encoder Conv(32)-Conv(64)-Conv(128)-Dense(latent), decoder "
         f"Dense(2048)-Dense(784) sigmoid; code size {budget.latent}, {budget.ae_epochs} epochs "
         "(`specrob autoencoder`)"],
        ["Classifier f", "the convnet of section 6", NO_CODE,
         f"MLP 784-{budget.hidden}-{budget.hidden}-10 (examples/mlp_two_hidden.py), as on the "
         "Tibo page"],
        ["Training data and epochs", "F-MNIST; epochs not given", NO_CODE,
         f"{points} training points, {budget.epochs} epochs, Adam {budget.lr:g}, batch "
         f"{budget.batch_size}, one seed"],
        ["R4 training", "Definition 4 with |Σ| = 10, sigma = 0.06; the indicator replaced by "
         "CE(f^(x), f^(x')); lambda not given", NO_CODE,
         f"regime on-manifold: |Σ| = {budget.radii_train} eps uniform in [0, d] (d = 28, the l_2 "
         f"diameter of [0, 1]^784), sigma = {budget.sigma}, {budget.draws_train} samples of S(x) "
         f"per point (not given), weight 1/eps, lambda {budget.lam_r4:g}"],
        ["R2 training", "Algorithm 1 (co-training with an adversarial generator)", NO_CODE,
         f"regime cotrain, lambda {budget.lam_r2:g} (the Tibo page's grid)"],
        ["STUTZ", "Stutz et al. 2019, on-manifold adversarial training (with their VAE-GAN)",
         "Stutz et al.'s own code (not run here)", "regime latent-adversarial in the same g's "
         f"code space: {budget.latent_steps} PGD steps in an l_inf ball of radius "
         f"{budget.latent_eps} around enc(x), half clean and half adversarial cross-entropy"],
        ["R4 score", "eq. 9 with the same generator, |Σ| = 200, for each test x", NO_CODE,
         f"score on_manifold_average of specs/manifold.rspec: {budget.radii_eval} eps values "
         f"(midpoints), {budget.draws_eval} samples of S(x) per point and eps, on the first "
         f"{budget.score_points} test points, with a 95% interval"],
        ["R2 score", "the margins of section 5's attacks (FGSM, PGD, BG)", NO_CODE,
         "§3.2's ensemble of the Tibo page (FGSM, PGD, DeepFool for BG), the mean l_2 margin of "
         f"the first {budget.score_points} test points"],
    ]


def write(run: Run, results: dict, budget: Budget) -> None:
    """The page's sections and figures."""
    run.section("## How this differs from the authors' experiments\n\n"
                + table(["item", "paper text", "authors' code", "specrob here"],
                        differences(budget)))
    acc, r4, r2 = results["accuracy"], results["R4"], results["R2"]

    def r4_text(name: str) -> str:
        v = r4[name]["value"]
        return f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    rows4 = [[name, pct(acc[name]["value"], 2), r4_text(name),
              *((f"{PAPER_TABLE4[name][0]:.2f}", f"{PAPER_TABLE4[name][1]:.3f}")
                if name in PAPER_TABLE4 else ("—", "—"))] for name in ("STUTZ", "R4", "NO REG")]
    run.section("## Table 4: accuracy and R4\n\n"
                "OURS of the paper is the R4-trained net. R4 with its 95% interval.\n\n"
                + table(["trained", "accuracy %", "R4", "paper accuracy %", "paper R4"],
                        rows4))
    rows5 = []
    for name in ("R2", "R4", "NO REG"):
        paper = PAPER_TABLE5.get(name)
        rows5.append([f"{name}-trained" if name != "NO REG" else name,
                      pct(acc[name]["value"], 2), f"{r2[name]['value']:.3f}", r4_text(name),
                      *((f"{paper['accuracy']:.2f}", f"{paper['R2']:.3f}", f"{paper['R4']:.3f}")
                        if paper else ("—", "—", "—"))])
    run.section("## Table 5: each training objective under both evaluations\n\n"
                "R2: the mean l_2 margin (the area under the margin curve); R4 as in Table 4.\n\n"
                + table(["trained", "accuracy %", "R2", "R4", "paper accuracy %", "paper R2",
                         "paper R4"], rows5))
    samples_figure(run, results)
    path, link = run.figure("r4-curves")
    curves = {name: r4[name]["curve"] for name in NETS}
    eps = [c["eps"] for c in curves["NO REG"]]
    plot_curves(path, eps, {name: [c["value"] for c in curve] for name, curve in curves.items()},
                xlabel="eps (l_2)", ylabel="share of the samples within eps keeping the label",
                title="On-manifold robustness rho(eps), averaged over the test points",
                ylim=(0.0, 1.02))
    run.section("## The on-manifold robustness curves\n\n"
                "rho(eps) of Example 4 before the 1/eps weight: of the samples "
                "dec(enc(x) + N(0, 0.06^2)) within distance eps of x, the share that keeps "
                "f(x)'s label (mean over the test points that have such samples). R4 is the "
                f"mean of rho(eps)/eps over the eps grid.\n\n![R4 curves]({link})")


def samples_figure(run: Run, results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = results["samples"]
    x, recon, draws = s["x"], s["reconstruction"], s["draws"]
    side = round(x.shape[-1] ** 0.5)
    columns = 2 + draws.shape[0]
    fig, axes = plt.subplots(len(x), columns, figsize=(1.1 * columns, 1.1 * len(x)))
    for i in range(len(x)):
        images = [x[i], recon[i], *[draws[k, i] for k in range(draws.shape[0])]]
        for j, image in enumerate(images):
            ax = axes[i, j]
            ax.imshow(image.reshape(side, side).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("x" if j == 0 else "dec(enc(x))" if j == 1 else f"S(x) {j - 1}",
                             fontsize=7)
    path, link = run.figure("samples")
    save_figure(fig, path)
    run.section("## The generator's samples\n\n"
                "Test points x, their reconstructions and draws dec(enc(x) + N(0, 0.06^2)) "
                f"(eq. 13).\n\n![samples]({link})")


def budget_text(results: dict, budget: Budget) -> str:
    data = results["dataset"]
    ae = results["autoencoder"]["history"][-1]
    return (f"{data['name']}: {data['train']} training points, accuracy on {data['test']} "
            f"test points, R2 and R4 on the first {budget.score_points}; g: WAE with code "
            f"size {budget.latent}, {budget.ae_epochs} epochs (last epoch: squared "
            f"reconstruction error {ae['reconstruction']:.2f} per image, MMD {ae['mmd']:.4f}); "
            f"f = MLP {data['input_dim']}-{budget.hidden}-{budget.hidden}-{data['classes']}, "
            f"{budget.epochs} epochs, batch {budget.batch_size}, Adam lr {budget.lr:g}; R4 "
            f"training |Σ| = {budget.radii_train}, {budget.draws_train} samples, sigma "
            f"{budget.sigma}, lambda {budget.lam_r4:g}; R2 training lambda {budget.lam_r2:g}; "
            f"STUTZ radius {budget.latent_eps} in code space, {budget.latent_steps} steps; the "
            f"R4 score |Σ| = {budget.radii_eval}, {budget.draws_eval} samples; one seed.")


def summary(run: Run, results: dict, budget: Budget) -> str:
    acc = {k: v["value"] for k, v in results["accuracy"].items()}
    r4 = {k: v["value"]["value"] for k, v in results["R4"].items()}
    r2 = {k: v["value"] for k, v in results["R2"].items()}
    return (f"On {results['dataset']['name']} with an MLP and a WAE generator, the R4-trained "
            f"net reaches {pct(acc['R4'], 2)}% (STUTZ {pct(acc['STUTZ'], 2)}%, R2-trained "
            f"{pct(acc['R2'], 2)}%, NO REG {pct(acc['NO REG'], 2)}%) with R4 = "
            f"{r4['R4']:.3f} (STUTZ {r4['STUTZ']:.3f}, R2-trained {r4['R2']:.3f}); under R2 "
            f"the R2-trained net scores {r2['R2']:.3f} and the R4-trained {r2['R4']:.3f}. "
            "The absolute R4 values depend on the normalisation of the eps family and on the "
            "generator, which the paper does not fully give; the comparison with its tables "
            "is of directions.")
