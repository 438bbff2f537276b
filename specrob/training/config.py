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
OPTIMIZERS = ("adam", "sgd")
# Options added after runs existed: left out of a run's identity while at their default, so
# the folders of earlier runs still resume (`TrainConfig.options`).
LATER = {"optimizer": "adam", "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
         "lr_decay": 0.0, "lr_steps": (), "lr_gamma": 0.1, "beta": 0.01, "gamma": 0.01,
         "power": 2, "transfer_steps": 1, "sigma": 0.06, "radii": 10, "draws": 10,
         "latent_eps": 0.3, "bound": "ibp", "cert_loss": "logic", "warmup": 1.0, "ramp": 4.0,
         "kappa": 0.5, "crown_end": 0.0, "pgd_mix": 0.0}
# Options only one regime reads: left out of the identity of a run of another regime.
REGIME_OF = {"beta": "parseval", "gamma": "laplacian", "power": "laplacian",
             "transfer_steps": "adapt", "sigma": "on-manifold", "radii": "on-manifold",
             "draws": "on-manifold", "latent_eps": "latent-adversarial", "bound": "certified",
             "cert_loss": "certified", "warmup": "certified", "ramp": "certified",
             "kappa": "certified", "crown_end": "certified", "pgd_mix": "certified"}
BOUNDS = ("ibp", "crown-ibp")  # certified training's bound propagation
CERT_LOSSES = ("logic", "ce")
GENERATOR_REGIMES = ("on-manifold", "latent-adversarial")


@dataclass(frozen=True)
class TrainConfig:
    """Options of `specrob train` / `specrob.train`.

    regime: baseline | constraint | adversarial | augmentation | cotrain | cross-lipschitz |
    parseval | laplacian | adapt | on-manifold | latent-adversarial (`regimes.REGIMES`);
    logic: dl2 | goedel | lukasiewicz | product | yager[:P]; search: how the constraint's worst
    point is found (pgd | sample | fgsm) with `steps`, `restarts`, `samples`; `epochs`,
    `batch_size`, `lr` (the co-training generator uses the same rate); `optimizer` adam | sgd
    (torch.optim; sgd with `momentum` and `dampening` as torch.optim.SGD names them: Torch7's
    optim.sgd, which Shaham et al.'s released code uses, is momentum 0.9 with dampening equal
    to the momentum), `weight_decay` (an L2 penalty wd/2·||w||² added to the loss, i.e. wd·w
    to the gradient, for either optimiser), `lr_steps` and `lr_gamma` (a step schedule: the
    rate is multiplied by lr_gamma from each epoch index in lr_steps on, as torch's
    MultiStepLR), `lr_decay` (Torch7's learningRateDecay: the rate after t steps is
    lr / (1 + t·lr_decay)); `trainer.learning_rate` combines them; constraint regime:
    loss a·CE + b·L_C (Casadio et al. eq. 2); adversarial: `adv_steps` (1 = one steepest-ascent
    step, Shaham et al.); augmentation: `extra` points per sample, `augment` uniform | fgsm
    (online), or static-fgsm | random-walk (made once: Casadio et al.'s released procedures,
    `training.static_augment`), `reference` the ONNX network static-fgsm attacks;
    co-training: `lam` (Tibo et al. eq. 10); cross-lipschitz: `lam` weighs Hein and
    Andriushchenko's Omega; parseval: `beta`, the retraction's step (Cisse et al.; 0.01 in
    Lassance et al.'s code); laplacian: `gamma` and `power` m, the penalty's weight gamma^m and
    the Laplacian's power (0.01 and 2 in Lassance et al.'s code); adapt: `shifted`, the .npz
    of unlabeled shifted inputs the paired autoencoders learn from (Tibo et al., seed 001,
    section 4), and `transfer_steps`, the pair's Adam steps per classifier step (the paper
    trains the pair 100 epochs, the classifier 50: 2); on-manifold (R4, Tibo et al., seed 000,
    section 7): `generator`, the module with encode/decode whose samples
    dec(enc(x) + N(0, sigma^2)) are drawn (`draws` per point, the paper's sigma 0.06), `radii`
    the eps values drawn per step (the paper's |Σ| = 10), `lam` the weight;
    latent-adversarial (Stutz et al. 2019): `generator`, `latent_eps` the l_inf radius in code
    space, `adv_steps` its PGD steps; certified (IBP / CROWN-IBP training of the property's
    body, `training.certified`): `bound` ibp | crown-ibp, `cert_loss` logic (the body in
    `logic` with each row's worst case) | ce (the cross-entropy of the worst-case margins), the
    ramp in epochs (fractions allowed): `warmup` (CE only), then over `ramp` eps 0 -> the
    property's, the natural weight 1 -> `kappa` and CROWN-IBP's beta 1 -> `crown_end`
    (warmup + ramp <= epochs);
    `pgd_mix` alpha mixes in the PGD constraint loss (MTL-IBP), with `steps`; `xi`: DL2's xi; `eval_points`, `eval_steps`: the
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
    optimizer: str = "adam"
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 0.0
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    beta: float = 0.01
    gamma: float = 0.01
    power: int = 2
    shifted: str | None = None  # adapt: the unlabeled shifted inputs (.npz with an array x)
    transfer_steps: int = 1  # adapt: the autoencoder pair's steps per classifier step
    generator: str | None = None  # on-manifold, latent-adversarial: the generator module
    sigma: float = 0.06  # on-manifold: the code-space noise of eq. 13
    radii: int = 10  # on-manifold: |Σ|, eps values per step
    draws: int = 10  # on-manifold: generator samples per point
    latent_eps: float = 0.3  # latent-adversarial: the l_inf radius around enc(x)
    bound: str = "ibp"  # certified: ibp | crown-ibp
    cert_loss: str = "logic"  # certified: logic | ce
    warmup: float = 1.0  # certified: epochs of CE only
    ramp: float = 4.0  # certified: epochs over which eps, kappa, beta ramp
    kappa: float = 0.5  # certified: the natural loss's final weight
    crown_end: float = 0.0  # certified: CROWN-IBP's final weight beta
    pgd_mix: float = 0.0  # certified: the PGD constraint loss's share of the robust loss

    def __post_init__(self) -> None:
        for name in ("steps", "eval_steps"):
            need(self, _whole(getattr(self, name), 0), name, "a whole number >= 0")
        for name in ("restarts", "samples", "epochs", "batch_size", "adv_steps", "extra",
                     "eval_points", "power", "transfer_steps", "radii", "draws"):
            need(self, _whole(getattr(self, name), 1), name, "a whole number >= 1")
        need(self, _whole(self.seed, -2**63), "seed", "a whole number")
        need(self, _number(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        for name in ("a", "b", "lam", "xi", "beta", "gamma", "sigma", "latent_eps"):
            need(self, _number(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "a finite number >= 0")
        for name in ("regime", "logic"):
            need(self, isinstance(getattr(self, name), str), name, "a name")
        need(self, isinstance(self.device, str) and device_ok(self.device), "device", DEVICES)
        need(self, self.search in SEARCHES, "search", " | ".join(SEARCHES))
        need(self, self.augment in AUGMENTS, "augment", " | ".join(AUGMENTS))
        need(self, self.optimizer in OPTIMIZERS, "optimizer", " | ".join(OPTIMIZERS))
        for name in ("momentum", "dampening"):
            need(self, _number(getattr(self, name)) and 0 <= getattr(self, name) < 1, name,
                 "a number in [0, 1)")
            need(self, getattr(self, name) == 0 or self.optimizer == "sgd", name,
                 "0 with --optimizer adam (momentum and dampening are SGD's; Adam's betas are "
                 "its own)")
        need(self, isinstance(self.lr_steps, tuple)
             and all(_whole(m, 1) for m in self.lr_steps)
             and list(self.lr_steps) == sorted(set(self.lr_steps)), "lr_steps",
             "increasing epoch numbers >= 1, e.g. (5,) or (50, 75)")
        need(self, _number(self.lr_gamma) and 0 < self.lr_gamma <= 1, "lr_gamma",
             "a number in (0, 1]")
        for name in ("weight_decay", "lr_decay"):
            need(self, _number(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "a finite number >= 0")
        need(self, self.reference is None or isinstance(self.reference, str), "reference",
             "a path to an ONNX file")
        need(self, self.reference is None
             or (self.regime == "augmentation" and self.augment == "static-fgsm"), "reference",
             "none: only --regime augmentation --augment static-fgsm uses a reference network")
        need(self, self.shifted is None or isinstance(self.shifted, str), "shifted",
             "a path to an .npz file")
        need(self, self.shifted is None or self.regime == "adapt", "shifted",
             "none: only --regime adapt learns from shifted inputs")

        need(self, self.bound in BOUNDS, "bound", " | ".join(BOUNDS))
        need(self, self.cert_loss in CERT_LOSSES, "cert_loss", " | ".join(CERT_LOSSES))
        for name in ("kappa", "crown_end", "pgd_mix"):
            need(self, _number(getattr(self, name)) and 0 <= getattr(self, name) <= 1, name,
                 "a number in [0, 1]")
        for name in ("warmup", "ramp"):
            need(self, _number(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "a number of epochs >= 0")
        for name in ("bound", "cert_loss", "warmup", "ramp", "kappa", "crown_end", "pgd_mix"):
            need(self, self.regime == "certified" or getattr(self, name) == LATER[name], name,
                 f"its default {LATER[name]!r}: only --regime certified reads it")
        need(self, self.regime != "certified" or self.warmup <= self.epochs, "warmup",
             f"at most --epochs = {self.epochs} (the warmup must end before training does)")
        need(self, self.regime != "certified" or self.warmup + self.ramp <= self.epochs,
             "ramp", f"at most --epochs - --warmup = {self.epochs - self.warmup:g} epochs (the "
                     f"eps ramp must end before training does, or the network is trained for a "
                     f"smaller radius than the property's); lower --warmup / --ramp or raise "
                     f"--epochs")
        need(self, self.generator is None or isinstance(self.generator, str), "generator",
             "a path to a Python module")
        need(self, self.generator is None or self.regime in GENERATOR_REGIMES, "generator",
             "none: only --regime on-manifold or latent-adversarial draws from a generator")

    def options(self) -> dict:
        """The options as a plain dict (the run's identity hashes it), without `reference` and
        `shifted`: the run is bound to those files' contents (`Trainer.identity`), not to the
        paths they were given by (runs made before the options existed keep their identity);
        likewise `generator` (the regime adds its code and weights)."""
        out = asdict(self)
        del out["reference"], out["shifted"], out["generator"]
        for name, default in LATER.items():
            if (out[name] == default or (name == "lr_gamma" and not self.lr_steps)
                    or REGIME_OF.get(name, self.regime) != self.regime):
                del out[name]
        return out


@dataclass(frozen=True)
class AutoencoderConfig:
    """Options of `specrob autoencoder` / `specrob.train_autoencoder`: the code size `latent`
    (Tolstikhin et al. use 8 on MNIST), `epochs`, `batch_size`, Adam's `lr`, the MMD weight
    `mmd` (their lambda, 10 on MNIST), `seed`, `device`."""

    latent: int = 8
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    mmd: float = 10.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("latent", "epochs"):
            need(self, _whole(getattr(self, name), 1), name, "a whole number >= 1")
        need(self, _whole(self.batch_size, 2), "batch_size",
             "a whole number >= 2 (the MMD compares codes within a batch)")
        need(self, _whole(self.seed, -2**63), "seed", "a whole number")
        need(self, _number(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        need(self, _number(self.mmd) and self.mmd >= 0, "mmd", "a finite number >= 0")
        need(self, isinstance(self.device, str) and device_ok(self.device), "device", DEVICES)
