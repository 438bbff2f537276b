"""Monte Carlo estimates of Q,H,G robustness scores (Tibo et al., Definitions 1-4).

rho_Q(x0) = Q({x' : f(x') = f(x0)} | x0) is estimated from `samples` draws of the kernel.
H = id: the score is the mean of rho over centres (G = density: centres from the data; G = 1:
centres uniform in the domain box). H = indicator: 1[rho = 1] is bounded from above — for a
uniform ball kernel by an attack on the label inside the ball (the "for all" reading of
eq. 6) together with the samples, otherwise by the samples: a label change found makes it 0,
none found leaves 1, so the estimate is an upper bound and is reported as one.
`Q ... given label` compares f(x') with the centre's label y: the label-aware reading of
Example 4 / seed 000 Example 5, where perturbed points are taken to keep the label y.
A family `eps ~ uniform(a, b)` is integrated by the midpoint rule on a grid of eps values;
G = density / eps weighs each grid point by 1 / eps.
"""
from __future__ import annotations

from specrob.errors import SpecrobError

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from specrob.stats import Estimate, mean, proportion
from specrob.network.generator import GeneratorError, manifold_samples
from specrob.network.generator import load_generator as _load_generator
from specrob.numerics import draw_device, generator
from specrob.lang import ir
from specrob.lang.params import constant, resolve_params
from specrob.search.region import Region
from specrob.search.searches import PGD


class ScoreError(SpecrobError):
    """A score that cannot be estimated as written (e.g. a missing generator module)."""


@dataclass
class ScoreResult:
    name: str
    value: Estimate
    upper_bound: bool
    curve: list[dict] = field(default_factory=list)  # per family grid point: eps, value, ...
    note: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value.as_dict(), "upper_bound": self.upper_bound,
                "curve": self.curve, "note": self.note}


def load_generator(path: str | Path):
    """The generator module at `path` (`specrob.network.generator.load_generator`); raises
    ScoreError."""
    try:
        return _load_generator(path)
    except GeneratorError as exc:
        raise ScoreError(str(exc)) from None


class _Kernel:
    """Draws from Q(.|x0) for one grid value of the family variables."""

    def __init__(self, score: ir.Score, params: dict[str, float], spec_dir: Path | None):
        self.score, self.params = score, params
        k = score.kernel
        self.low = constant(score.domain.low, params)
        self.high = constant(score.domain.high, params)
        self.generator = None
        if isinstance(k, ir.Manifold):
            term = k.generator  # a Text, or a path-typed Param (whose value is a str)
            path = term.value if isinstance(term, ir.Text) else \
                cast(str, score.value(cast(ir.Param, term).name))
            path = Path(path)
            if not path.is_absolute() and spec_dir is not None:
                path = spec_dir / path
            self.generator = load_generator(path)

    def region(self) -> Region | None:
        ball = getattr(self.score.kernel, "ball", None)
        if ball is None:
            return None
        return Region(constant(ball.radius, self.params), ball.p, self.low, self.high)

    def sample(self, x0: torch.Tensor, count: int, gen: torch.Generator) -> tuple[torch.Tensor,
                                                                                     torch.Tensor]:
        """(count, B, n) draws and a mask of the valid ones (inside the kernel's ball)."""
        k = self.score.kernel
        if isinstance(k, ir.UniformBall):
            region = self.region()
            assert region is not None  # a uniform ball kernel has a ball
            pts = region.uniform(x0, count, gen)
            return pts, torch.ones(pts.shape[:2], dtype=torch.bool, device=x0.device)
        sigma = constant(k.sigma, self.params)
        if isinstance(k, ir.Gaussian):
            pts = truncated_gaussian(x0, sigma, self.low, self.high, count, gen)
            return pts, torch.ones((count, x0.shape[0]), dtype=torch.bool, device=x0.device)
        assert self.generator is not None  # a Manifold kernel: loaded in __init__
        try:  # seed 000 eq. 13: dec(enc(x0) + N(0, sigma^2))
            pts = manifold_samples(self.generator, x0, sigma, count, gen)
        except GeneratorError as exc:
            raise ScoreError(str(exc)) from None
        pts = pts.reshape(count, *x0.shape).clamp(self.low, self.high)
        region = self.region()
        valid = torch.ones(pts.shape[:2], dtype=torch.bool, device=x0.device)
        if region is not None:
            valid = region.contains(pts.reshape(-1, x0.shape[-1]),
                                    x0.repeat(count, 1)).reshape(count, -1)
        return pts, valid


def truncated_gaussian(x0: torch.Tensor, sigma: float, low: float, high: float, count: int,
                       gen: torch.Generator | None = None) -> torch.Tensor:
    """`count` draws of N(x0, sigma^2 I) conditioned on the domain box [low, high]^n, shape
    (count, B, n): exact (the box and the isotropic Gaussian are both products, so each
    coordinate is a 1-D truncated normal, drawn by the inverse CDF). Unlike clamping, no
    draw lands on a face of the box."""
    if sigma <= 0:
        return x0.unsqueeze(0).expand(count, *x0.shape).clone()
    c = x0.double()
    a, b = (low - c) / sigma, (high - c) / sigma
    flip = a > 0  # both ends in the upper tail: sample the mirror image (precision)
    a, b = torch.where(flip, -b, a), torch.where(flip, -a, b)
    fa, fb = torch.special.ndtr(a), torch.special.ndtr(b)
    u = torch.rand((count, *x0.shape), generator=gen, dtype=torch.float64,
                   device=draw_device(gen, x0)).to(x0.device)
    z = torch.special.ndtri((fa + u * (fb - fa)).clamp(1e-300, 1 - 1e-16))
    z = torch.minimum(torch.maximum(z, a), b)  # rounding at the ends of the interval
    z = torch.where(flip, -z, z)
    return (c + sigma * z).to(x0.dtype)


def _label_kept(model, pts, target):
    kept = []
    with torch.no_grad():
        for p in pts:
            logits = model(p)
            if not torch.isfinite(logits).all():
                bad = int((~torch.isfinite(logits)).any(-1).sum())
                raise ScoreError(f"the network's output is NaN or inf at {bad} of {len(p)} "
                                 f"kernel samples (argmax of NaN is arbitrary); check the "
                                 f"network, or the kernel's samples (non-finite inputs?)")
            kept.append(logits.argmax(-1) == target)
    return torch.stack(kept)


# numbers per slice of a kernel's samples (count x centres x inputs): a slice of Fashion-MNIST
# at 10 000 centres is one sample per centre, 31 MB
SLICE = 1 << 22


def estimate_score(score: ir.Score, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, *,
                   samples: int = 100, grid: int = 10, attack_steps: int = 20, seed: int = 0,
                   spec_dir: Path | None = None, domain_points: torch.Tensor | None = None
                   ) -> ScoreResult:
    """The score's Monte Carlo estimate. `x0`, `y`: data centres (G = density); with G = 1
    the centres are `domain_points` (uniform in the domain box; drawn here if not given)."""
    params = resolve_params(score, x0.shape[-1])
    gen = generator(seed, x0.device)
    torch.manual_seed(seed)
    if not score.G.density:
        if domain_points is None:
            lo, hi = constant(score.domain.low, params), constant(score.domain.high, params)
            domain_points = lo + (hi - lo) * torch.rand(x0.shape, generator=gen, dtype=x0.dtype,
                                                        device=x0.device)
        x0 = domain_points
    with torch.no_grad():
        predicted = model(x0).argmax(-1)
    target = y if score.label_conditioned else predicted
    grid_values = _family_grid(score, params, grid)
    curve, per_grid = [], []
    for values in grid_values:
        p = {**params, **values}
        kernel = _Kernel(score, p, spec_dir)
        # the samples in slices of about SLICE numbers: memory bounded by the slice, the
        # same draws as one call whenever they fit in one
        counts = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        kept_valid = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        all_kept = torch.ones(len(x0), dtype=torch.bool, device=x0.device)
        per = max(1, SLICE // max(1, x0.numel()))
        for start in range(0, samples, per):
            pts, valid = kernel.sample(x0, min(per, samples - start), gen)
            kept = _label_kept(model, pts, target) | ~valid
            counts += valid.sum(0)
            kept_valid += (kept & valid).sum(0)
            all_kept &= kept.all(0)
        rho = torch.where(counts > 0, kept_valid / counts.clamp_min(1), torch.nan)
        if score.H == "id":
            h = rho
        else:
            h = all_kept.float()
            region = kernel.region()
            if isinstance(score.kernel, ir.UniformBall) and region is not None:
                h = h * (~_attack_changes_label(model, x0, target, region, attack_steps)).float()
        weight = 1.0
        if score.G.divide_by is not None:
            weight = 1.0 / max(p[score.G.divide_by], 1e-12)
        usable = ~torch.isnan(h)
        est = mean(h[usable]) if score.H == "id" else proportion(float(h[usable].sum()),
                                                                 int(usable.sum()))
        curve.append({**values, "value": est.value, "low": est.low, "high": est.high,
                      "count": est.count, "weight": weight})
        per_grid.append((h, weight))
    value = _integrate(per_grid, score.H)
    if value.count > 0 and not math.isfinite(value.value):
        raise ScoreError(f"score {score.name}: the estimate is not finite ({value.value}) "
                         f"from {value.count} values; check the kernel and the family")
    note = "upper bound: H = indicator is estimated with an attack and samples" \
        if score.H == "indicator" else ""
    if score.label_conditioned:
        note = (note + "; " if note else "") + "given label: f(x') is compared with y"
    return ScoreResult(score.name, value, score.H == "indicator", curve, note)


def _attack_changes_label(model, x0, target, region: Region, steps: int) -> torch.Tensor:
    """Does PGD find a point of the ball whose predicted label differs from `target`? The
    search runs on the logits when the model ends in a Softmax / LogSoftmax (a label depends on
    the argmax only, which they keep; saturated probabilities have no gradient); the label is
    re-checked on the model."""
    from specrob.network.final_layer import logits_module
    search = logits_module(model)[0] or model

    def objective(x):
        logits = search(x)
        t = target.repeat(x.shape[0] // target.shape[0])
        true = logits.gather(-1, t[:, None]).squeeze(-1)
        other = logits.scatter(-1, t[:, None], -math.inf).amax(-1)
        return other - true
    was, was_search = model.training, search.training
    model.eval()
    search.eval()
    x, _ = PGD(steps=steps, restarts=1).maximise(objective, x0, region)
    model.train(was)
    search.train(was_search)
    with torch.no_grad():
        return (model(x).argmax(-1) != target) & region.contains(x, x0)


def _family_grid(score: ir.Score, params: dict[str, float], grid: int) -> list[dict]:
    """Midpoints of `grid` equal cells per family variable (their product for several)."""
    points: list[dict] = [{}]
    for fam in score.families:
        lo, hi = constant(fam.low, params), constant(fam.high, params)
        mids = [lo + (hi - lo) * (i + 0.5) / grid for i in range(grid)]
        points = [{**p, fam.var: m} for p in points for m in mids]
    return points


def _integrate(per_grid: list[tuple[torch.Tensor, float]], H: str) -> Estimate:
    """The family integral (uniform density: the mean over grid cells) of the weighted
    per-centre values, with an interval from the per-centre averages over the grid."""
    if len(per_grid) == 1 and per_grid[0][1] == 1.0:
        values = per_grid[0][0]
        values = values[~torch.isnan(values)]
        if H == "indicator":
            return proportion(float(values.sum()), values.numel())
        return mean(values, bounds=(0.0, 1.0))
    stacked = torch.stack([v * w for v, w in per_grid])  # (grid, centres), NaN: no sample
    per_centre = stacked.nanmean(0)
    return mean(per_centre[~torch.isnan(per_centre)])
