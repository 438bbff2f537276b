"""The options of a training run, one frozen dataclass: its defaults are the CLI's defaults
(`specrob train --help` shows these values), and it refuses values out of range when built, so
an API caller gets the CLI's checks too."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from specrob.options import DEVICES, device_ok, need, number as _number, whole as _whole

SEARCHES = ("pgd", "sample", "fgsm")
# online (a fresh draw every step) | static (made once, appended to the training set;
# `training.static_augment`)
AUGMENTS = ("uniform", "fgsm", "static-fgsm", "random-walk")


@dataclass(frozen=True)
class TrainConfig:
    """Options of `specrob train` / `specrob.train`.

    regime: baseline | constraint | adversarial | augmentation | cotrain (`regimes.REGIMES`);
    logic: dl2 | goedel | lukasiewicz | product | yager[:P]; search: how the constraint's worst
    point is found (pgd | sample | fgsm) with `steps`, `restarts`, `samples`; `epochs`,
    `batch_size`, `lr` (Adam; the co-training generator uses the same rate); constraint regime:
    loss a·CE + b·L_C (Casadio et al. eq. 2); adversarial: `adv_steps` (1 = one steepest-ascent
    step, Shaham et al.); augmentation: `extra` points per sample, `augment` uniform | fgsm
    (online), or static-fgsm | random-walk (made once: Casadio et al.'s released procedures,
    `training.static_augment`), `reference` the ONNX network static-fgsm attacks;
    co-training: `lam` (Tibo et al. eq. 10); `xi`: DL2's xi; `eval_points`, `eval_steps`: the
    per-epoch satisfaction metric (PGD on up to this many points); `extras`: what else
    identifies the run (reproductions)."""

    regime: str = "constraint"
    logic: str = "dl2"
    search: str = "pgd"
    steps: int = 10
    restarts: int = 1
    samples: int = 10
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"
    a: float = 1.0
    b: float = 0.2
    adv_steps: int = 1
    augment: str = "uniform"
    extra: int = 2
    lam: float = 1.0
    xi: float = 0.1
    eval_points: int = 512
    eval_steps: int = 20
    extras: dict = field(default_factory=dict)
    reference: str | None = None  # static-fgsm: the trained network its points fool (ONNX)

    def __post_init__(self) -> None:
        for name in ("steps", "eval_steps"):
            need(self, _whole(getattr(self, name), 0), name, "a whole number >= 0")
        for name in ("restarts", "samples", "epochs", "batch_size", "adv_steps", "extra",
                     "eval_points"):
            need(self, _whole(getattr(self, name), 1), name, "a whole number >= 1")
        need(self, _whole(self.seed, -2**63), "seed", "a whole number")
        need(self, _number(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        for name in ("a", "b", "lam", "xi"):
            need(self, _number(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "a finite number >= 0")
        for name in ("regime", "logic"):
            need(self, isinstance(getattr(self, name), str), name, "a name")
        need(self, isinstance(self.device, str) and device_ok(self.device), "device", DEVICES)
        need(self, self.search in SEARCHES, "search", " | ".join(SEARCHES))
        need(self, self.augment in AUGMENTS, "augment", " | ".join(AUGMENTS))
        need(self, self.reference is None or isinstance(self.reference, str), "reference",
             "a path to an ONNX file")
        need(self, self.reference is None
             or (self.regime == "augmentation" and self.augment == "static-fgsm"), "reference",
             "none: only --regime augmentation --augment static-fgsm uses a reference network")

    def options(self) -> dict:
        """The options as a plain dict (the run's identity hashes it), without `reference`:
        the run is bound to the reference network's contents (`Trainer.identity`), not to the
        path it was given by (runs made before the option existed keep their identity)."""
        out = asdict(self)
        del out["reference"]
        return out
