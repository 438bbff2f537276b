"""Training regimes: what a training step minimises. One class each; `REGIMES` lists them.

- baseline: cross-entropy.
- constraint: a·CE + b·L_C(x*), x* the worst point of the property's ball (DL2; Casadio et
  al. use a = 1, b = 0.2).
- adversarial: CE at the worst point of the ball for CE itself; single-step steepest ascent
  for l_1 / l_2 / l_inf (Shaham et al., Algorithm 1) or multi-step PGD.
- augmentation: CE on the batch plus 2 points per sample, uniform in the ball or FGSM points
  (Casadio et al.'s data augmentation as the text reads), or CE on the training set extended
  once by static FGSM or random-walk points (as the authors' released code does).
- cotrain: the classifier with an adversarial generator g (Tibo et al., Algorithm 1, eqs. 9-10).
- cross-lipschitz: CE + lam·Omega, Hein & Andriushchenko's per-class input-gradient penalty (the
  HEIN column of Tibo et al.'s Table 1).
- parseval: CE, and a Parseval retraction of every weight after each step (Cisse et al.; "P" of
  Lassance et al.).
- laplacian: CE + gamma^m · the change of the class signal's smoothness between consecutive ReLU
  layers (Lassance et al.'s Laplacian networks, "L").
- adapt: CE for the classifier, and a pair of autoencoders trained on clean and unlabeled
  shifted inputs (Tibo et al., seed 001, section 4): the run also exports f(T(x)).
- on-manifold: CE + lam · the robust loss of R4 (Tibo et al., seed 000, sections 3.2 and 7):
  the cross-entropy between f's outputs at x and at generator samples dec(enc(x) + N(0,
  sigma^2)) within distance eps of x, weighted 1/eps, for eps drawn uniformly in [0, d].
- latent-adversarial: on-manifold adversarial training (Stutz et al. 2019, the comparison of
  seed 000's Table 4): half CE on the batch, half CE at dec(z*), z* the worst code of an l_inf
  ball around enc(x) (PGD in the generator's code space).
- certified: kappa·CE + (1 - kappa)·the property's certified loss, its body linearised over
  the ball by IBP or CROWN-IBP (`training.certified`; Gowal et al. 2018, Zhang et al. 2020),
  with eps, kappa and beta ramped; optionally mixed with the PGD constraint loss (MTL-IBP).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from specrob.logic.compiled import CompiledProperty
from specrob.search.region import ascent_step
from specrob.search.searches import PGD, Sampling, Search, fgsm
from specrob.training.config import TrainConfig
from specrob.training.regularisers import (cross_lipschitz, parseval_retraction,
                                           smoothness_change)
from specrob.training.static_augment import STATIC


@dataclass
class Context:
    """What a regime may use: the compiled property (its ball and loss), the run's typed
    options (one default per option, in `TrainConfig`) and the epochs done before the current
    step (`progress`: the epoch index plus the share of its batches done; schedules such as
    certified training's ramp read it; set by the trainer from the epoch and batch, so a
    resumed run sees the same values)."""

    prop: CompiledProperty
    config: TrainConfig
    progress: float = 0.0


class Regime:
    name = "regime"

    def setup(self, model: nn.Module, ctx: Context, input_dim: int, model_file=None) -> None:
        """Create extra trained state (the co-training generator)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: Context
             ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: Context,
                   x_other: torch.Tensor) -> None:
        """Runs after the classifier's update (the co-training generator's own update)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def exports(self, model: nn.Module) -> dict[str, nn.Module]:
        """Networks exported beside model.onnx, by file stem (adapt: "adapted", f(T(x)))."""
        return {}

    def identity(self) -> dict:
        """What else the run depends on (a generator's code and weights): joins the run's
        identity, so a checkpoint is resumed only with the same."""
        return {}


class Baseline(Regime):
    name = "baseline"

    def loss(self, model, x, y, ctx):
        ce = F.cross_entropy(model(x), y)
        return ce, {"ce": ce.item()}


class Constraint(Regime):
    """L* = a·CE + b·L_C(x*) (Casadio et al. eq. 2; Fischer et al.'s DL2 training)."""

    name = "constraint"

    def loss(self, model, x, y, ctx):
        a, b = ctx.config.a, ctx.config.b
        search = search_of(ctx.config)
        fx0 = ctx.prop.centre_output(model, x)
        x_star = ctx.prop.worst_point(model, x, y, search,
                                      fx0=None if fx0 is None else fx0.detach())
        lc = ctx.prop.loss(model, x_star, x, y, fx0).mean()
        ce = F.cross_entropy(model(x), y)
        return a * ce + b * lc, {"ce": ce.item(), "batch_constraint_loss": lc.item()}


def search_of(config: TrainConfig) -> Search:
    """The constraint's worst-point search, built from exactly its own typed options."""
    if config.search == "pgd":
        return PGD(steps=config.steps, restarts=config.restarts)
    if config.search == "sample":
        return Sampling(samples=config.samples)
    return fgsm()  # TrainConfig accepts only SEARCHES: pgd | sample | fgsm


def ce_objective(model: nn.Module, y: torch.Tensor):
    """Per-sample cross-entropy as a search objective (rows stack restarts of the batch)."""
    def J(x):
        return F.cross_entropy(model(x), y.repeat(x.shape[0] // y.shape[0]), reduction="none")
    return J


class Adversarial(Regime):
    """Robust optimisation: the weights are updated at the worst point of the uncertainty set
    only (Shaham et al.). adv_steps = 1: one steepest-ascent step of size eps."""

    name = "adversarial"

    def loss(self, model, x, y, ctx):
        steps = ctx.config.adv_steps
        search = (PGD(steps=1, restarts=1, step_size=1.0, random_start=False)
                  if steps == 1 else PGD(steps=steps, restarts=ctx.config.restarts))
        was = model.training
        model.eval()
        x_adv, _ = search.maximise(ce_objective(model, y), x, ctx.prop.region)
        model.train(was)
        ce = F.cross_entropy(model(x_adv.detach()), y)
        return ce, {"ce": ce.item()}


class Augmentation(Regime):
    """CE on the batch and on `extra` (2) points per sample: uniform in ball ∩ box, or FGSM
    steps of size eps from uniform random starts (online: new points every step). The static
    kinds (static-fgsm, random-walk: `training.static_augment`) extend the training set once
    instead, and the loss is CE on the batch."""

    name = "augmentation"

    def loss(self, model, x, y, ctx):
        extra, kind = ctx.config.extra, ctx.config.augment
        region = ctx.prop.region
        if kind in STATIC:  # the points are in the training set already (Trainer.fit)
            ce = F.cross_entropy(model(x), y)
            return ce, {"ce": ce.item()}
        if kind == "uniform":
            points = region.uniform(x, extra).reshape(-1, x.shape[-1])
        else:
            starts = region.repeat(extra).random(x.repeat(extra, 1))
            with torch.enable_grad():
                starts.requires_grad_(True)
                loss = F.cross_entropy(model(starts), y.repeat(extra), reduction="sum")
                (grad,) = torch.autograd.grad(loss, starts)
            big = region.repeat(extra)
            step = ascent_step(grad, region.p, big.radius(starts), x=starts.detach(),
                               low=region.low, high=region.high)
            points = big.project(starts.detach() + step, x.repeat(extra, 1))
        inputs = torch.cat([x, points.detach()])
        ce = F.cross_entropy(model(inputs), y.repeat(extra + 1))
        return ce, {"ce": ce.item()}


class DefaultGenerator(nn.Module):
    """g(x) = clamp(x + MLP(x)) into the domain: a perturbation network."""

    def __init__(self, input_dim: int, low: float, high: float, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, input_dim), nn.Tanh())
        self.low, self.high = low, high

    def forward(self, x):
        return (x + 0.5 * (self.high - self.low) * self.net(x)).clamp(self.low, self.high)


class CoTrain(Regime):
    """Tibo et al. Algorithm 1: alternate an update of f on {x, g(x)} with loss (10) and an
    update of g with loss (9) on another shuffled batch."""

    name = "cotrain"

    def setup(self, model, ctx, input_dim, model_file=None):
        from specrob.network.model_file import build_generator
        g = build_generator(model_file, input_dim) if model_file else None
        r = ctx.prop.region
        self.g = g if g is not None else DefaultGenerator(input_dim, r.low, r.high)
        self.g.to(next(model.parameters()).device)
        # the generator learns at the classifier's rate (TrainConfig.lr)
        self.opt = torch.optim.Adam(self.g.parameters(), lr=ctx.config.lr)

    def loss(self, model, x, y, ctx):
        lam = ctx.config.lam
        with torch.no_grad():
            gx = self.g(x)
        logits, logits_g = model(x), model(gx)
        ce = F.cross_entropy(logits, y)
        # CE(f̂(x), f̂(g(x))) / (1 + ||x - g(x)||²), eq. (10)
        cross = -(torch.softmax(logits, -1) * torch.log_softmax(logits_g, -1)).sum(-1)
        reg = (cross / (1.0 + ((x - gx) ** 2).sum(-1))).mean()
        return ce + lam * reg, {"ce": ce.item(), "regulariser": reg.item()}

    def after_step(self, model, x, y, ctx, x_other):
        # eq. (9): 1/2 ||g(x) - x||² + max(f̂(g(x))[i] - f̂(g(x))[j], 0), i = f(x), j the
        # second-highest class at g(x). Only g's weights move.
        with torch.no_grad():
            i = model(x_other).argmax(-1)
        gx = self.g(x_other)
        probs = torch.softmax(model(gx), -1)
        j = probs.topk(2, dim=-1).indices[:, 1]
        gap = probs.gather(-1, i[:, None]).squeeze(-1) - probs.gather(-1, j[:, None]).squeeze(-1)
        loss_g = (0.5 * ((gx - x_other) ** 2).sum(-1) + torch.relu(gap)).mean()
        self.opt.zero_grad()
        loss_g.backward()
        self.opt.step()
        model.zero_grad(set_to_none=True)

    def state_dict(self):
        return {"g": self.g.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.g.load_state_dict(state["g"])
        self.opt.load_state_dict(state["opt"])


class CrossLipschitz(Regime):
    """CE + lam·Omega, Omega the Cross-Lipschitz regulariser (`regularisers.cross_lipschitz`;
    Hein & Andriushchenko 2017): the HEIN method of Tibo et al.'s Table 1. Each step costs about
    K + 1 backward passes (K classes)."""

    name = "cross-lipschitz"

    def setup(self, model, ctx, input_dim, model_file=None):
        # one vmapped backward pass beats K passes on MLPs, not on convnets (measured:
        # benchmarks/bench_cross_lipschitz.py)
        self.batched = not any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())

    def loss(self, model, x, y, ctx):
        x = x.detach().requires_grad_(True)
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        omega = cross_lipschitz(logits, x, batched=self.batched)
        return ce + ctx.config.lam * omega, {"ce": ce.item(), "regulariser": omega.item()}


class Parseval(Regime):
    """CE, then a Parseval retraction W <- (1 + beta) W - beta W W^T W of every weight after each
    optimiser step (`regularisers.parseval_retraction`; Cisse et al. 2017, as Lassance et al.'s
    code runs it with beta = 0.01)."""

    name = "parseval"

    def loss(self, model, x, y, ctx):
        ce = F.cross_entropy(model(x), y)
        return ce, {"ce": ce.item()}

    def after_step(self, model, x, y, ctx, x_other):
        parseval_retraction(model, ctx.config.beta)


class ReluRecorder(TorchFunctionMode):
    """Records the output of every ReLU the network applies, however it is written (nn.ReLU,
    F.relu, torch.relu, Tensor.relu), in the order they run: a torch function mode sees each
    call once (inside the handler the mode is off, so F.relu's own torch.relu is not seen)."""

    RELUS = (F.relu, torch.relu, torch.Tensor.relu)

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in self.RELUS:
            self.seen.append(out)
        return out


class Laplacian(Regime):
    """CE + gamma^m · the mean absolute change, between consecutive layers, of the smoothness
    tr(Y^T L^m Y) of the labels on the batch's cosine-similarity graph
    (`regularisers.smoothness_change`; Lassance et al.'s Laplacian networks, their code's
    gamma = 0.01, m = 2). The layers are the network's ReLU outputs, in the order they run
    (`ReluRecorder`)."""

    name = "laplacian"

    def setup(self, model, ctx, input_dim, model_file=None):
        was = model.training
        model.eval()  # a dry run that leaves batch-norm statistics alone
        recorder = ReluRecorder()
        with torch.no_grad(), recorder:
            model(torch.zeros(2, input_dim, device=next(model.parameters()).device))
        model.train(was)
        if len(recorder.seen) < 2:
            raise ValueError(f"--regime laplacian compares the outputs of consecutive ReLU "
                             f"layers; this network applies {len(recorder.seen)} ReLU(s) "
                             f"(it needs at least 2)")

    def loss(self, model, x, y, ctx):
        recorder = ReluRecorder()
        with recorder:
            logits = model(x)
        ce = F.cross_entropy(logits, y)
        change = smoothness_change(recorder.seen, y, logits.shape[-1], ctx.config.power)
        weight = ctx.config.gamma ** ctx.config.power
        return ce + weight * change, {"ce": ce.item(), "regulariser": change.item()}


class Adapt(Regime):
    """Transfer by paired autoencoders (Tibo et al., seed 001, section 4): the classifier f
    learns from the labeled clean batch with CE; after each of its steps, the pair (E, D_1,
    D_2) takes `transfer_steps` Adam steps at the same rate on the reconstruction loss of a
    clean batch and a batch of the unlabeled shifted inputs (`--shifted`). f and the pair do not
    interact (the paper trains them separately): one run trains both. Exports f(D_1(E(x))) as
    adapted.onnx beside model.onnx."""

    name = "adapt"

    def setup(self, model, ctx, input_dim, model_file=None):
        from specrob.training.transfer import build_pair, load_shifted
        device = next(model.parameters()).device
        if ctx.config.shifted is None:
            raise ValueError("--regime adapt learns the transfer from unlabeled shifted "
                             "inputs: give them with --shifted PATH.npz (an array x)")
        self.pair = build_pair(model_file, input_dim).to(device)
        self.shifted = torch.tensor(load_shifted(ctx.config.shifted, input_dim), device=device)
        self.opt = torch.optim.Adam(self.pair.parameters(), lr=ctx.config.lr)

    def loss(self, model, x, y, ctx):
        ce = F.cross_entropy(model(x), y)
        return ce, {"ce": ce.item()}

    def after_step(self, model, x, y, ctx, x_other):
        self.pair.train()
        for k in range(ctx.config.transfer_steps):
            # batches of shifted inputs drawn by the trainer's seeded generator; the clean
            # side takes the step's batch, then other shuffled training points
            pick = torch.randint(len(self.shifted), (len(x),), device="cpu")
            clean = x if k == 0 else x_other
            loss = self.pair.reconstruction_loss(clean, self.shifted[pick.to(clean.device)])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def state_dict(self):
        return {"pair": self.pair.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.pair.load_state_dict(state["pair"])
        self.opt.load_state_dict(state["opt"])

    def exports(self, model):
        from specrob.training.transfer import Adapted
        return {"adapted": Adapted(model, self.pair.eval())}


class _WithGenerator(Regime):
    """A regime that draws from the user's generator (`--generator PATH.py`)."""

    def setup(self, model, ctx, input_dim, model_file=None):
        from specrob.network.generator import GeneratorError, load_generator
        if ctx.config.generator is None:
            raise ValueError(f"--regime {self.name} draws on-manifold points from a generator: "
                             f"give it with --generator PATH.py (a module with encode/decode, "
                             f"e.g. the autoencoder.py that `specrob autoencoder` writes)")
        self.path = str(ctx.config.generator)
        try:
            self.generator = load_generator(self.path)
        except GeneratorError as exc:
            raise ValueError(str(exc)) from None
        if isinstance(self.generator, nn.Module):
            self.generator.to(next(model.parameters()).device)
            for p in self.generator.parameters():  # fixed while f trains (seed 000, section 7)
                p.requires_grad_(False)
        self._bind()
        region = ctx.prop.region
        self.low, self.high = region.low, region.high
        self.diameter = (self.high - self.low) * input_dim ** 0.5  # d of eps ~ uniform(0, d)

    def identity(self):
        return self._identity

    def _bind(self) -> None:
        """The generator's code and weights as loaded, hashed once (they stay fixed while f
        trains; every checkpoint carries them)."""
        from specrob.runfolder import array_identity, file_identity
        self._identity = {"generator_sha256": file_identity(Path(self.path))["sha256"]}
        if isinstance(self.generator, nn.Module):  # weights it loads from elsewhere
            self._identity["generator_weights_sha256"] = array_identity(
                *self.generator.state_dict().values())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.decode(z).reshape(z.shape[0], -1).clamp(self.low, self.high)


class OnManifold(_WithGenerator):
    """R4 training (Tibo et al., seed 000, Definition 4 with Example 4, sections 3.2 and 7):
    CE(f(x), y) + lam · R, where for each batch point x the generator gives `draws` samples
    S(x) = {dec(enc(x) + N(0, sigma^2))} (eq. 13), `radii` values eps are drawn uniformly in
    [0, d] (Σ, d the domain's l_2 diameter), and R is the mean over x and eps of
    (1/eps) · the mean of CE(f^(x), f^(x')) over the samples x' of S(x) within l_2 distance
    eps of x (S_eps(x); pairs with none left out): the indicator of eq. 8 replaced by the
    cross-entropy between the output distributions, G = p(x)/eps of Example 4.
    The paper: |Σ| = 10, sigma = 0.06 while training."""

    name = "on-manifold"

    def loss(self, model, x, y, ctx):
        from specrob.network.generator import manifold_samples
        c = ctx.config
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        pts = manifold_samples(self.generator, x, c.sigma, c.draws).clamp(self.low, self.high)
        dist = (pts - x).norm(dim=-1)  # (draws, B)
        out = model(pts.reshape(-1, x.shape[-1])).reshape(c.draws, len(x), -1)
        pair = -(logits.softmax(-1) * out.log_softmax(-1)).sum(-1)  # CE(f^(x), f^(x'))
        eps = torch.rand(c.radii, device=x.device) * self.diameter  # Σ
        inside = (dist.unsqueeze(0) <= eps[:, None, None]).to(pair.dtype)  # (radii, draws, B)
        count = inside.sum(1)
        mean_pair = (inside * pair).sum(1) / count.clamp_min(1)  # (radii, B)
        used = count > 0
        weighted = torch.where(used, mean_pair / eps.clamp_min(1e-12)[:, None], 0.0)
        reg = weighted.sum() / used.sum().clamp_min(1)
        return ce + c.lam * reg, {"ce": ce.item(), "regulariser": reg.item()}


class LatentAdversarial(_WithGenerator):
    """On-manifold adversarial training (Stutz, Hein and Schiele 2019, the comparison of
    Tibo et al.'s Table 4): loss 0.5 CE(f(x), y) + 0.5 CE(f(dec(z*)), y), z* maximising
    CE(f(dec(z)), y) over ||z - enc(x)||_inf <= latent_eps by `adv_steps` signed-gradient
    steps of 2.5 latent_eps / adv_steps from a uniform start, each point's best iterate kept
    (PGD in code space)."""

    name = "latent-adversarial"

    def worst_code(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   ctx: Context) -> torch.Tensor:
        """The on-manifold adversarial inputs dec(z*) (B, n), without gradients."""
        c = ctx.config
        eta, steps = c.latent_eps, c.adv_steps
        with torch.no_grad():
            z0 = self.generator.encode(x)
        delta = (torch.rand_like(z0) * 2 - 1) * eta
        best, best_loss = delta, torch.full((len(x),), -math.inf, device=x.device)
        for step in range(steps + 1):  # the last pass only scores the final iterate
            delta.requires_grad_(True)
            losses = F.cross_entropy(model(self.decode(z0 + delta)), y, reduction="none")
            better = losses.detach() > best_loss  # keep each point's best iterate
            best = torch.where(better[:, None], delta.detach(), best)
            best_loss = torch.maximum(best_loss, losses.detach())
            if step == steps:
                break
            grad, = torch.autograd.grad(losses.sum(), delta)
            delta = (delta.detach() + 2.5 * eta / steps * grad.sign()).clamp(-eta, eta)
        with torch.no_grad():
            return self.decode(z0 + best)

    def loss(self, model, x, y, ctx):
        adv = self.worst_code(model, x, y, ctx)
        clean = F.cross_entropy(model(x), y)
        worst = F.cross_entropy(model(adv), y)
        return 0.5 * clean + 0.5 * worst, {"ce": clean.item(), "adversarial_ce": worst.item()}


class Certified(Regime):
    """kappa·CE(x) + (1 - kappa)·L_rob, L_rob the property's certified loss over the ball (its
    rows' lower bounds by `bound` ibp | crown-ibp in the body's logic, `training.certified`),
    or with `pgd_mix` alpha > 0, (1 - alpha)·certified + alpha·the PGD constraint loss (the
    mix of MTL-IBP, De Palma et al. 2024). eps, kappa and CROWN-IBP's beta follow
    `certified.Schedule` (`warmup`, `ramp`, `kappa`, `crown_end`)."""

    name = "certified"

    def setup(self, model, ctx, input_dim, model_file=None):
        from specrob.training.certified import CertifiedLoss, Schedule
        cfg = ctx.config
        # the classes are the traced network's outputs (the trainer has checked them
        # against the data)
        self.cert = CertifiedLoss(ctx.prop.prop, model, input_dim, None, bound=cfg.bound,
                                  logic=ctx.prop.logic, cert_loss=cfg.cert_loss,
                                  source=str(model_file or "model"))
        self.schedule = Schedule(cfg.warmup, cfg.ramp, cfg.kappa, cfg.crown_end)

    def loss(self, model, x, y, ctx):
        share, kappa, beta = self.schedule.at(ctx.progress)
        ce = F.cross_entropy(model(x), y)
        logs = {"ce": ce.item(), "eps_share": share}
        if share == 0:  # warmup: the robust part has weight 0
            return ce, logs
        fx0 = model(x) if self.cert.needs_fx0 else None
        lower, rows = self.cert.lower(x, y, None if fx0 is None else fx0.detach(),
                                      eps_share=share, beta=beta)
        robust = self.cert.loss(lower, rows).mean()
        logs["certified_loss"] = robust.item()
        logs["batch_certified"] = self.cert.proved(lower, rows).float().mean().item()
        alpha = ctx.config.pgd_mix
        if alpha > 0:
            fx0c = ctx.prop.centre_output(model, x)
            x_star = ctx.prop.worst_point(model, x, y, search_of(ctx.config),
                                          fx0=None if fx0c is None else fx0c.detach())
            lc = ctx.prop.loss(model, x_star, x, y, fx0c).mean()
            logs["batch_constraint_loss"] = lc.item()
            robust = (1 - alpha) * robust + alpha * lc
        return kappa * ce + (1 - kappa) * robust, logs


REGIMES: dict[str, type[Regime]] = {r.name: r for r in (Baseline, Constraint, Adversarial,
                                                        Augmentation, CoTrain, CrossLipschitz,
                                                        Parseval, Laplacian, Adapt,
                                                        OnManifold, LatentAdversarial,
                                                        Certified)}
