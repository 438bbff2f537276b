"""Certified training (issue 17), the experiment: for each network (the seed 003 784-100-10
clamp net, a small CNN) and each radius, the CR property trained five ways on Fashion-MNIST
and every resulting network judged by `specrob verify` (its pipeline in-process: the PGD
attack, then CROWN; every verdict sound) on the first test points, and by clean accuracy.

One spec text (`SPEC`) holds the property; its radius is set per run (`--set eps=`), so the
constraint loss, the PGD attack of adversarial training, the certified bound and the verifier
all read the same body and ball.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import specrob
from specrob.data import Dataset
from specrob.reproduce.common import Run, accuracy, describe_data
from specrob.training.trainer import TrainConfig

SPEC = """\
# Classification robustness in the l_inf ball, the certified-training literature's property
# (Casadio et al.'s CR, Definition 1, as its margin conjunction); the radius is set per network
property CR(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        forall j != y: f(x)[y] > f(x)[j]
"""
EPS = (0.01, 0.05, 0.1)
NETS = {"mlp": ("fashion_mnist_net.py", "784-100-10 clamp net (seed 003)"),
        "cnn": ("small_cnn.py", "small CNN (conv16-conv32-100-10)")}
# name, label, regime options (the certified ones: Gowal et al.'s ramp: a tenth of the epochs
# of warmup, then eps, kappa and CROWN-IBP's beta ramped over half of them; `_ramp`)
CERTIFIED = {"kappa": 0.5, "cert_loss": "ce"}
REGIMES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("constraint", "Constraint loss (Casadio et al.: CE + 0.2 DL2 at PGD's worst point)",
     {"regime": "constraint", "a": 1.0, "b": 0.2}),
    ("adversarial", "PGD adversarial training", {"regime": "adversarial"}),
    ("ibp", "Certified: IBP", {"regime": "certified", "bound": "ibp", **CERTIFIED}),
    ("crown-ibp", "Certified: CROWN-IBP", {"regime": "certified", "bound": "crown-ibp",
                                          **CERTIFIED}),
    ("ibp-pgd", "Certified: IBP mixed with the PGD constraint loss (alpha 0.5, as MTL-IBP)",
     {"regime": "certified", "bound": "ibp", "pgd_mix": 0.5, **CERTIFIED}),
    ("ibp-dl2", "Certified: IBP, the body in DL2 (--cert-loss logic)",
     {"regime": "certified", "bound": "ibp", **{**CERTIFIED, "cert_loss": "logic"}}),
)
LABEL = {"baseline": "Baseline (cross-entropy)", **{n: label for n, label, _ in REGIMES}}


@dataclass(frozen=True)
class Budget:
    epochs: int
    lr: float
    batch_size: int
    pgd_steps: int         # PGD steps of the constraint loss, adversarial training and ibp-pgd
    train: int | None      # training points (None: all 60000)
    test: int | None       # test points for clean accuracy (None: all 10000)
    verify_points: int     # the first test points given to `specrob verify`
    verify_timeout: float  # seconds per point


FULL = Budget(epochs=5, lr=1e-3, batch_size=128, pgd_steps=5, train=20000, test=None,
              verify_points=100, verify_timeout=10.0)
SMOKE = Budget(epochs=1, lr=1e-3, batch_size=64, pgd_steps=2, train=600, test=200,
               verify_points=6, verify_timeout=5.0)
PAGE_ONLY = ("dataset",)


def build_net(kind: str, input_dim: int, classes: int) -> nn.Module:
    """A network from its model file in examples/, read as any user's model file is."""
    from specrob.network.model_file import build_model
    from specrob.resources import examples_dir
    return build_model(examples_dir() / NETS[kind][0], input_dim, classes)


def measure(run: Run, budget: Budget) -> dict:
    """Train every network (or reload it) and verify it; every stage is cached in <work>."""
    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget=asdict(budget), experiment=1)
    spec_path = run.work / "certified.rspec"
    spec_path.write_text(SPEC)
    x_test, y_test = run.tensors(data, "test")
    x0, y0 = run.tensors(data, "test", budget.verify_points)
    clean: dict[str, float] = {}
    verdicts: dict[str, dict] = {}
    for kind in NETS:
        # the baseline does not depend on eps: trained once, verified at every eps
        runs: list[tuple[str, float, dict[str, Any]]] = [
            (f"{kind}-baseline", EPS[0], {"regime": "baseline"})]
        runs += [(f"{kind}-{name}-{eps:g}", eps, options) for eps in EPS
                 for name, _, options in REGIMES]
        for name, eps, options in runs:
            torch.manual_seed(run.options.seed)
            prop = specrob.load(spec_path, eps=eps)["CR"]
            if options["regime"] == "certified":
                options = {**options, "warmup": budget.epochs / 10, "ramp": budget.epochs / 2}
            config = TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size,
                                 lr=budget.lr, seed=run.options.seed, steps=budget.pgd_steps,
                                 adv_steps=budget.pgd_steps, eval_points=256, eval_steps=10,
                                 **options)
            model = run.train(name, build_net(kind, data.input_dim, data.classes), prop, data,
                              config, export=True)
            clean[name] = run.stage(f"clean-{name}", lambda m=model: {
                "accuracy": accuracy(m, x_test, y_test)})["accuracy"]
            for at in (EPS if name.endswith("-baseline") else (eps,)):
                key = f"{name}@{at:g}" if name.endswith("-baseline") else name
                verdicts[key] = run.stage(f"verify-{key}", lambda n=name, e=at: _verify(
                    run, n, data, spec_path, e, x0, y0, budget))
    return {"spec": SPEC, "eps": list(EPS), "clean_accuracy": clean,
            "constraint_satisfaction": verdicts, "dataset": describe_data(data)}


def _verify(run: Run, name: str, data: Dataset, spec_path: Path, eps: float,
            x0: torch.Tensor, y0: torch.Tensor, budget: Budget) -> dict:
    """Constraint satisfaction (Casadio et al., Def. 5) of one exported network by the
    pipeline of `specrob verify --backend bounds` (the PGD attack, then CROWN)."""
    from specrob.verification.config import VerifyConfig

    onnx_path = run.work / name / "model.onnx"
    spec = specrob.load(spec_path, eps=eps)
    config = VerifyConfig(backend="bounds", timeout=budget.verify_timeout,
                          points=budget.verify_points, seed=run.options.seed,
                          device=str(run.device))
    folder = run.work / name / f"verify-{eps:g}-{config.key()}"
    summary = specrob.verify(onnx_path, spec, property="CR", config=config, data=data,
                             out=folder, centres=(x0, y0), progress=run.options.progress).summary
    out = {k: summary[k] for k in ("points", "verified", "falsified", "unknown",
                                   "constraint_satisfaction", "by_method", "stage_seconds")}
    out["command"] = (f"specrob verify {onnx_path} {spec_path} --set eps={eps:g} --points "
                      f"{budget.verify_points} --data {run.data_spec} --backend bounds")
    return out


def cs(results: dict, key: str) -> float:
    """The verified share of network `key` (`<net>-<regime>-<eps>` or `<net>-baseline@<eps>`)."""
    return results["constraint_satisfaction"][key]["constraint_satisfaction"]["value"]


def decided(results: dict, key: str) -> float:
    """The share of points the verifier decided (verified or falsified)."""
    row = results["constraint_satisfaction"][key]
    return (row["verified"] + row["falsified"]) / max(1, row["points"])


def key_of(kind: str, regime: str, eps: float) -> str:
    return f"{kind}-baseline@{eps:g}" if regime == "baseline" else f"{kind}-{regime}-{eps:g}"


def clean_of(results: dict, kind: str, regime: str, eps: float) -> float:
    name = f"{kind}-baseline" if regime == "baseline" else f"{kind}-{regime}-{eps:g}"
    return results["clean_accuracy"][name]
