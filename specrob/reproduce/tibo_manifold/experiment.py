"""Tibo et al. (seed 000), section 7, the experiment: a Wasserstein autoencoder g trained on
the training inputs (`specrob.training.autoencoder`), then, with g fixed, four classifiers of
the same structure: NO REG (cross-entropy), R2 (co-training with the adversarial generator,
Algorithm 1), R4 (the `on-manifold` regime: the robust loss of Example 4 over samples
dec(enc(x) + N(0, sigma^2))) and STUTZ (the `latent-adversarial` regime: Stutz et al.'s
on-manifold adversarial training in g's code space). Measured on the first test points: the
accuracy, R4 (the score on_manifold_average of specs/manifold.rspec with g as its generator:
|Σ| values of eps, samples per point) and R2 (the mean l_2 margin of §3.2's attack ensemble,
the area under the margin curve).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from specrob.network.model_file import build_model
from specrob.reproduce.common import Run, accuracy, describe_data
from specrob.reproduce.tibo.experiment import margin_stage
from specrob.resources import examples_dir, specs_dir

# the trainer needs a property: its box [0, 1] bounds the co-training generator's output and
# its l_2 ball is where the per-epoch PGD check looks (as on the Tibo page)
PROPERTY = "property P = CR(eps = 0.5, p = 2)"
SCORE = "on_manifold_average"  # specs/manifold.rspec: Example 4, H = id, G = p(x) / eps
NETS = ("NO REG", "R2", "R4", "STUTZ")


@dataclass(frozen=True)
class Budget:
    """The knobs of one run."""

    train: int | None        # training points (None: all 60000)
    test: int | None         # test points for accuracy (None: all 10000)
    score_points: int        # test points whose R2 and R4 are estimated
    epochs: int              # every classifier
    ae_epochs: int           # the autoencoder g
    latent: int = 8          # g's code size
    hidden: int = 256
    batch_size: int = 64
    lr: float = 1e-3
    lam_r2: float = 1.0      # co-training's lambda (the Tibo page's grid: 1 and 3)
    lam_r4: float = 1.0      # the R4 term's weight (the paper gives none)
    sigma: float = 0.06      # the paper's code-space noise
    radii_train: int = 10    # |Σ| while training (the paper: 10)
    draws_train: int = 10    # samples of S(x) per training point (the paper: not given)
    radii_eval: int = 200    # |Σ| for the score (the paper: 200)
    draws_eval: int = 20     # samples of S(x) per test point and eps (the paper: not given)
    latent_eps: float = 0.3  # STUTZ: the l_inf radius in code space
    latent_steps: int = 10   # STUTZ: PGD steps
    eval_points: int = 512   # the trainer's per-epoch check
    eval_steps: int = 5


# one seed, all training points, 10 epochs for g and for each f
FULL = Budget(train=None, test=None, score_points=500, epochs=10, ae_epochs=10)
PAPER = None  # the paper's convnet and WAE (its appendix) and epochs are not in the text
SMOKE = Budget(train=1000, test=300, score_points=24, epochs=1, ae_epochs=1, hidden=64,
               radii_train=3, draws_train=3, radii_eval=8, draws_eval=4, latent_steps=2,
               eval_points=64, eval_steps=2)
PAGE_ONLY = ("dataset", "samples")


def build_net(input_dim: int, classes: int, *, hidden: int, seed: int) -> nn.Module:
    """f: examples/mlp_two_hidden.py with the same initial weights for every regime (the
    paper's f is the convnet of its section 6: see the page)."""
    torch.manual_seed(seed)
    return build_model(examples_dir() / "mlp_two_hidden.py", input_dim, classes, hidden=hidden)


def measure(run: Run, budget: Budget) -> dict:
    """Train g and the four classifiers (or reload them), then accuracy, R4 and R2 of each;
    every network and stage is cached in <work>."""
    import specrob
    from specrob.stats import proportion
    from specrob.training.autoencoder import train_autoencoder
    from specrob.training.config import AutoencoderConfig, TrainConfig

    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget=asdict(budget))
    seed = run.options.seed
    # g: trained once in <work>/autoencoder (resumes; reloaded when finished)
    run.log("autoencoder g (WAE)")
    generator = str(train_autoencoder(
        data.x_train, run.work / "autoencoder",
        AutoencoderConfig(latent=budget.latent, epochs=budget.ae_epochs, seed=seed,
                          device=str(run.device)), data_name=data.name,
        progress=run.options.progress))
    prop = specrob.loads(PROPERTY)["P"]

    def config(regime: str, **more) -> TrainConfig:
        return TrainConfig(regime=regime, epochs=budget.epochs, batch_size=budget.batch_size,
                           lr=budget.lr, seed=seed, eval_points=budget.eval_points,
                           eval_steps=budget.eval_steps, **more)

    def net() -> nn.Module:
        return build_net(data.input_dim, data.classes, hidden=budget.hidden, seed=seed)

    nets = {
        "NO REG": run.train("noreg", net(), prop, data, config("baseline")),
        "R2": run.train("r2", net(), prop, data, config("cotrain", lam=budget.lam_r2)),
        "R4": run.train("r4", net(), prop, data, config(
            "on-manifold", generator=generator, sigma=budget.sigma, lam=budget.lam_r4,
            radii=budget.radii_train, draws=budget.draws_train)),
        "STUTZ": run.train("stutz", net(), prop, data, config(
            "latent-adversarial", generator=generator, latent_eps=budget.latent_eps,
            adv_steps=budget.latent_steps)),
    }
    x_test, y_test = run.tensors(data, "test")
    results: dict = {"accuracy": {}, "R4": {}, "R2": {}}
    for name, model in nets.items():
        right = round(accuracy(model, x_test, y_test) * len(y_test))
        results["accuracy"][name] = proportion(right, len(y_test)).as_dict()
    xs, ys = x_test[:budget.score_points], y_test[:budget.score_points]
    tag = f"n{len(xs)}-s{seed}"
    for name, model in nets.items():
        slug = name.lower().replace(" ", "")
        results["R4"][name] = run.stage(f"r4-{slug}-{tag}", lambda m=model: r4_stage(
            m, xs, ys, generator, budget, seed))
        found = run.stage(f"margins-{slug}-{tag}", lambda m=model: margin_stage(m, xs,
                                                                                seed=seed))
        results["R2"][name] = r2_of(found["margin"])
    results["autoencoder"] = run.stage("autoencoder-history", lambda: autoencoder_history(
        run.work / "autoencoder"))
    results["samples"] = samples(generator, xs[:6], budget.sigma, seed)
    results["dataset"] = describe_data(data)
    return results


def r4_stage(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: str,
             budget: Budget, seed: int) -> dict:
    """R4 of `model` at the points x: the score on_manifold_average of specs/manifold.rspec
    with `generator`, |Σ| = radii_eval eps values and draws_eval samples each."""
    import specrob
    from specrob.estimate.scores import estimate_score
    from specrob.lang.ir import Score
    spec = specrob.load(specs_dir() / "manifold.rspec", generator=generator,
                        sigma=budget.sigma)
    score = spec[SCORE]
    assert isinstance(score, Score)  # specs/manifold.rspec declares it as a score
    model.eval()
    found = estimate_score(score, model, x, y, samples=budget.draws_eval,
                           grid=budget.radii_eval, seed=seed, spec_dir=specs_dir())
    return found.as_dict()


def r2_of(margins: list[float | None]) -> dict:
    """R2 (Example 2 integrated over eps): the mean l_2 margin over the points whose margin
    the ensemble found, and how many it found."""
    found = [m for m in margins if m is not None and math.isfinite(m)]
    return {"value": sum(found) / max(len(found), 1), "found": len(found),
            "count": len(margins)}


def autoencoder_history(folder) -> dict:
    from specrob.runfolder import read_json
    saved = read_json(folder / "autoencoder.json", "rerun with --fresh")
    return {"history": saved["history"], "settings": saved["settings"]}


def samples(generator: str, x: torch.Tensor, sigma: float, seed: int) -> dict:
    """For the page's figure: points, their reconstructions and 5 draws of S(x) each."""
    from specrob.network.generator import load_generator, manifold_samples
    from specrob.numerics import generator as seeded
    g = load_generator(generator)
    with torch.no_grad():
        recon = g.decode(g.encode(x))
    draws = manifold_samples(g, x, sigma, 5, seeded(seed, x.device))
    return {"x": x.cpu(), "reconstruction": recon.cpu(), "draws": draws.cpu()}
