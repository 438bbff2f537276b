"""Classifier margins by an ensemble of attacks, margin curves and their area (Tibo et al.,
seed 001, §3.2 and Examples 2-3), and the accuracy bound of Proposition 6.

The margin at x is the distance from x to the closest point with another predicted label
(Example 2: the inner integral of eq. 7). It is approximated from above, as in §3.2: each
attack (FGSM, PGD, DeepFool; the paper's third attack is Hein and Andriushchenko's BG, which
DeepFool stands in for) proposes a candidate x' with f(x') != f(x); a binary search on the
segment x + t (x' - x), t in [0, 1], moves it to the decision boundary (assuming a single
boundary on the segment), giving x_hat; the margin is the smallest ||x_hat - x||_p over the
attacks. Every x_hat is a checked adversarial example, so each reported margin is >= the true
margin, and the margin curve R(eps) = P(margin > eps) is an upper bound of the true fraction
of points without an adversarial example within eps.

Margins use the predicted label f(x), not the true label: robustness is orthogonal to
accuracy (postulate P1). `margin_curve(..., correct=...)` gives the label-aware variant.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from specrob.numerics import generator, norm, norm_name
from specrob.stats import Estimate, mean, proportion
from specrob.search.region import Region
from specrob.search.searches import PGD, fgsm

ATTACKS = ("fgsm", "pgd", "deepfool")
FRACTIONS = (1 / 64, 1 / 16, 1 / 4, 1.0)  # radii of the attacks, as fractions of the diameter


def diameter(n: int, p: float, low: float = 0.0, high: float = 1.0) -> float:
    """The l_p diameter of the box [low, high]^n: (high - low) n^(1/p)."""
    return (high - low) * (1.0 if p == math.inf else n ** (1.0 / p))


def misclassification(model: nn.Module, label: torch.Tensor):
    """The objective max_{j != c} f_j(x) - f_c(x) (> 0 iff the label c = f(x0) changed), for
    rows stacking R restarts of the B centres."""
    def objective(x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        c = label.repeat(x.shape[0] // label.shape[0])[:, None]
        own = logits.gather(-1, c).squeeze(-1)
        return logits.scatter(-1, c, -math.inf).amax(-1) - own
    return objective


def _jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, m) and their Jacobian (B, m, n) in one pass over m stacked copies of x."""
    with torch.no_grad():
        m = model(x[:1]).shape[-1]
    b, n = x.shape
    xs = x.detach().unsqueeze(0).expand(m, b, n).reshape(m * b, n).requires_grad_(True)
    with torch.enable_grad():
        out = model(xs).reshape(m, b, m)
        # out[k, i, k] is logit k of copy k of point i: one backward gives every gradient
        (grad,) = torch.autograd.grad(out.diagonal(dim1=0, dim2=2).sum(), xs)
    return out[0].detach(), grad.reshape(m, b, n).transpose(0, 1)


def deepfool(model: nn.Module, x: torch.Tensor, *, p: float = 2.0, steps: int = 50,
             overshoot: float = 0.02, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Batched multi-class DeepFool (Moosavi-Dezfooli et al. 2016): a minimum-distance attack.

    Each step linearises the logits and moves to the closest linearised boundary:
    l = argmin_{k != c} |f'_k| / ||w'_k||_q with f'_k = f_k - f_c, w'_k = grad f'_k and q the
    dual norm of p; the step is |f'_l| / ||w'_l||_q^q * |w'_l|^(q-1) sign(w'_l) (l_2: q = 2,
    l_inf: q = 1, the sign step). The point is x + (1 + overshoot) * (sum of steps), clamped
    into the box; a point stops once its label changes. Gradient coordinates that would push a
    coordinate already at a bound of the box outwards are zeroed (else the clamp undoes the
    step and the attack stalls in a corner). p = 1 uses the l_2 steps."""
    q = 1.0 if p == math.inf else 2.0
    x = x.detach()
    with torch.no_grad():
        c = model(x).argmax(-1)
    total = torch.zeros_like(x)
    adv = x.clone()
    active = torch.arange(x.shape[0], device=x.device)
    for _ in range(steps):
        logits, jac = _jacobian(model, adv[active])
        ca = c[active]
        still = logits.argmax(-1) == ca
        active, logits, jac, ca = active[still], logits[still], jac[still], ca[still]
        if active.numel() == 0:
            break
        rows = torch.arange(active.numel(), device=x.device)
        f = logits - logits[rows, ca][:, None]           # f'_k = f_k - f_c      (b, m)
        w = jac - jac[rows, ca][:, None]                 # w'_k = grad f'_k      (b, m, n)
        # in the box: coordinates at a bound that a step along w'_k would push out are frozen
        a = adv[active][:, None]
        w = w.masked_fill(((a <= low) & (w < 0)) | ((a >= high) & (w > 0)), 0.0)
        wn = norm(w, q, safe=False).clamp_min(1e-12)                 # ||w'_k||_q            (b, m)
        dist = (f.abs() / wn).scatter(-1, ca[:, None], math.inf)
        l = dist.argmin(-1)
        fl, wl, wnl = f[rows, l].abs(), w[rows, l], wn[rows, l]
        if q == 2:
            step = (fl / wnl ** 2)[:, None] * wl
        else:
            step = (fl / wnl)[:, None] * wl.sign()
        total[active] += step
        adv[active] = (x[active] + (1 + overshoot) * total[active]).clamp(low, high)
    return adv


def boundary_search(model: nn.Module, x: torch.Tensor, candidates: torch.Tensor,
                    label: torch.Tensor, *, steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """§3.2: x_hat = x + t (x' - x) with t the smallest t in [0, 1] where f changes label,
    by bisection (one boundary on the segment assumed; ~2^-steps precision in t).

    Returns x_hat (the adversarial side of the last bracket, so f(x_hat) != label is checked)
    and whether x' itself was adversarial (where not, x_hat = x')."""
    with torch.no_grad():
        ok = model(candidates).argmax(-1) != label
        lo = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        hi = torch.ones_like(lo)
        delta = candidates - x
        for _ in range(steps):
            mid = (lo + hi) / 2
            adv = (model(x + mid * delta).argmax(-1) != label)[:, None]
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
    return x + hi * delta, ok


@dataclass(frozen=True)
class Margins:
    """Per point: the ensemble margin (an upper bound of the true margin) and its witness."""

    margin: torch.Tensor     # (B,) min over attacks of ||x_hat - x||_p; inf: no attack succeeded
    winner: torch.Tensor     # (B,) index into `attacks` of the closest x_hat (ties: earlier); -1
    boundary: torch.Tensor   # (B, n) the closest x_hat, on the boundary; NaN rows where none
    distances: torch.Tensor  # (A, B) each attack's ||x_hat - x||_p (inf: failed)
    label: torch.Tensor      # (B,) the predicted label f(x) the margins refer to
    attacks: tuple[str, ...]
    p: float

    def shares(self) -> dict[str, Estimate]:
        """Seed 001 Table 3: the share of closest adversarial examples found by each attack,
        among points where some attack succeeded."""
        found = int((self.winner >= 0).sum())
        return {a: proportion(int((self.winner == i).sum()), found)
                for i, a in enumerate(self.attacks)}

    def winners(self) -> list[str]:
        """Per point, the name of the winning attack ('' where none succeeded)."""
        return [self.attacks[i] if i >= 0 else "" for i in self.winner.tolist()]

    def as_dict(self) -> dict:
        return {"p": norm_name(self.p), "attacks": list(self.attacks), "count": len(self.margin),
                "found": int(torch.isfinite(self.margin).sum()),
                "shares": {a: e.as_dict() for a, e in self.shares().items()}}


def ensemble_margins(model: nn.Module, x: torch.Tensor, *, p: float = 2.0,
                     attacks: Sequence[str] = ATTACKS, fractions: Sequence[float] = FRACTIONS,
                     steps: int = 20, restarts: int = 1, deepfool_steps: int = 50,
                     overshoot: float = 0.02, bisection_steps: int = 20, low: float = 0.0,
                     high: float = 1.0, batch_size: int = 256,
                     generator: torch.Generator | None = None) -> Margins:
    """§3.2's ensemble: FGSM and PGD (maximising `misclassification` in B_p(x, rho) ∩ box for
    each rho in `fractions` times the box's l_p diameter: a sweep, since a smaller ball gives a
    closer candidate) and DeepFool, each candidate moved to the boundary by `boundary_search`;
    the margin is the smallest ||x_hat - x||_p. An upper bound of the true margin."""
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ValueError(f"unknown attack(s) {sorted(unknown)}: choose from {', '.join(ATTACKS)}")
    if x.shape[0] == 0:
        e = torch.empty(0, dtype=x.dtype, device=x.device)
        i = torch.empty(0, dtype=torch.long, device=x.device)
        return Margins(e, i, x.detach().clone(), e.new_empty(len(attacks), 0), i,
                       tuple(attacks), p)
    was = model.training
    model.eval()
    try:
        parts = [_margins_batch(model, x[i:i + batch_size], p=p, attacks=tuple(attacks),
                                fractions=fractions, steps=steps, restarts=restarts,
                                deepfool_steps=deepfool_steps, overshoot=overshoot,
                                bisection_steps=bisection_steps, low=low, high=high,
                                generator=generator)
                 for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was)

    def cat(name: str, dim: int = 0) -> torch.Tensor:
        return torch.cat([getattr(m, name) for m in parts], dim)

    return Margins(cat("margin"), cat("winner"), cat("boundary"), cat("distances", 1),
                   cat("label"), tuple(attacks), p)


def _margins_batch(model, x, *, p, attacks, fractions, steps, restarts, deepfool_steps,
                   overshoot, bisection_steps, low, high, generator) -> Margins:
    x = x.detach()
    with torch.no_grad():
        label = model(x).argmax(-1)
    objective = misclassification(model, label)
    size = diameter(x.shape[-1], p, low, high)
    owner, cands = [], []  # the attack index of each candidate batch
    for a, name in enumerate(attacks):
        if name == "deepfool":
            cands.append(deepfool(model, x, p=p, steps=deepfool_steps, overshoot=overshoot,
                                  low=low, high=high))
            owner.append(a)
            continue
        search = fgsm() if name == "fgsm" else PGD(steps=steps, restarts=restarts)
        for f in fractions:
            point, _ = search.maximise(objective, x, Region(f * size, p, low, high), generator)
            cands.append(point)
            owner.append(a)
    k, b = len(cands), x.shape[0]
    # one bisection for all candidates of all attacks, stacked on the batch axis
    hat, ok = boundary_search(model, x.repeat(k, 1), torch.cat(cands), label.repeat(k),
                              steps=bisection_steps)
    dist = torch.where(ok, norm(hat - x.repeat(k, 1), p, safe=False), torch.full_like(ok, math.inf,
                                                                          dtype=x.dtype))
    dist, hat = dist.reshape(k, b), hat.reshape(k, b, -1)
    owner_t = torch.tensor(owner, device=x.device)
    distances = torch.full((len(attacks), b), math.inf, dtype=x.dtype, device=x.device)
    for a in range(len(attacks)):
        distances[a] = dist[owner_t == a].amin(0)
    best = dist.argmin(0)  # candidate order follows the attack order: ties go to the earlier
    every = torch.arange(b, device=x.device)
    margin = dist[best, every]
    found = torch.isfinite(margin)
    winner = torch.where(found, owner_t[best], torch.full_like(best, -1))
    boundary = torch.where(found[:, None], hat[best, every],
                           torch.full_like(x, math.nan))
    return Margins(margin, winner, boundary, distances, label, attacks, p)


@dataclass(frozen=True)
class MarginCurve:
    """R(eps) = fraction of points whose margin exceeds eps, on a grid, and its area.

    Computed from ensemble margins (upper bounds), R(eps) is an upper bound of the fraction
    of points with no adversarial example within eps (Example 3's R_{Q_eps,1,p} with
    G = density, the margin curve of Göpfert et al.). `area` is ∫_0^d R(eps) d eps, exactly
    mean(min(margin, d)); `score` = area / d is Definition 4 with q uniform on [0, d]."""

    eps: tuple[float, ...]
    robust: tuple[Estimate, ...]   # R(eps) per grid point, Wilson intervals
    d: float
    area: Estimate                 # mean(min(margin, d)), normal interval in [0, d]
    area_trapezoid: float          # trapezoid rule on the grid (within d / (2 * cells) of area)
    score: Estimate                # area / d, in [0, 1]

    def as_dict(self) -> dict:
        return {"d": self.d, "area": self.area.as_dict(), "area_trapezoid": self.area_trapezoid,
                "score": self.score.as_dict(),
                "curve": [{"eps": e, **r.as_dict()} for e, r in zip(self.eps, self.robust)]}


def margin_curve(margin: Margins | torch.Tensor, *, d: float, eps: Sequence[float] | None = None,
                 grid: int = 20, correct: torch.Tensor | None = None) -> MarginCurve:
    """The margin curve on `eps` (default: `grid` equal cells of [0, d]) and its area.

    With `correct` (per point, f(x) = y), misclassified points get margin 0: the label-aware
    curve, R(0) = accuracy (without it, R(0) = the fraction of points off the boundary: 1)."""
    m = (margin.margin if isinstance(margin, Margins) else margin).detach().double().flatten()
    if correct is not None:
        m = torch.where(correct.flatten().to(m.device), m, torch.zeros_like(m))
    grid_eps = [d * i / grid for i in range(grid + 1)] if eps is None else sorted(eps)
    n = m.numel()
    robust = tuple(proportion(int((m > e).sum()), n) for e in grid_eps)
    capped = m.clamp(max=d)  # ∫_0^d 1[m > e] de = min(m, d): the area is exactly their mean
    area = mean(capped, bounds=(0.0, d))
    # the trapezoid rule on the grid, completed with 0 and d and cut to [0, d]
    knots = sorted({0.0, d, *[e for e in grid_eps if 0.0 <= e <= d]})
    values = [float((m > e).double().mean()) if n else math.nan for e in knots]
    trap = sum((b - a) * (u + v) / 2 for a, b, u, v in zip(knots, knots[1:], values, values[1:]))
    if d > 0:
        score = Estimate(area.value / d, area.low / d, area.high / d, area.count)
    else:
        score = Estimate(math.nan, math.nan, math.nan, area.count)
    return MarginCurve(tuple(grid_eps), robust, float(d), area, trap, score)


def accuracy_lower_bound(alpha: float | Estimate, *, delta: float | Estimate,
                         eps_label: float | Estimate = 0.0) -> float | Estimate:
    """Proposition 6 (seed 001): if f has accuracy alpha on P, Q is (P, eps_label)-label
    preserving (Definition 5) and R^f_{Q,id,p} = 1 - delta, then f has accuracy at least
    alpha - eps_label - delta on Q∘P (clipped at 0).

    With Estimates, the interval combines the endpoints (low: alpha.low - eps_label.high -
    delta.high); by a union bound it holds with probability >= 1 - the sum of the inputs'
    miss rates (about 85-90% for 95% inputs), not 95%."""
    ests = [v if isinstance(v, Estimate) else Estimate(float(v), float(v), float(v), 0)
            for v in (alpha, eps_label, delta)]
    a, e, d = ests
    value = max(0.0, a.value - e.value - d.value)
    if not any(isinstance(v, Estimate) for v in (alpha, eps_label, delta)):
        return value
    counts = [v.count for v in ests if v.count]
    return Estimate(value, max(0.0, a.low - e.high - d.high), max(0.0, a.high - e.low - d.low),
                    min(counts) if counts else 0)


def margin_score_summary(score, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, *,
                         grid: int = 20, seed: int = 0, **options) -> dict:
    """A margin score (uniform ball kernel with eps ~ uniform(a, d), H = indicator) as plain
    data: the curve, the area, the score and the attacks' shares. G = density: the centres are
    the data points x0; G = 1: as many points uniform in the domain box (Example 2).

    The score is (1/(d - a)) ∫_a^d R(eps) d eps, the area is ∫_0^d R(eps) d eps; both are upper
    bounds. `options` go to `ensemble_margins`."""
    from specrob.lang.params import constant, resolve_params
    params = resolve_params(score, x0.shape[-1])
    ball = score.kernel.ball
    p = float(ball.p)
    fam = next(f for f in score.families if f.var == ball.radius.name)
    a, d = constant(fam.low, params), constant(fam.high, params)
    lo, hi = constant(score.domain.low, params), constant(score.domain.high, params)
    gen = generator(seed, x0.device)
    torch.manual_seed(seed)
    if not score.G.density:
        x0 = lo + (hi - lo) * torch.rand(x0.shape, generator=gen, dtype=x0.dtype,
                                         device=x0.device)
    found = ensemble_margins(model, x0, p=p, low=lo, high=hi, generator=gen, **options)
    eps = [a + (d - a) * i / grid for i in range(grid + 1)]
    curve = margin_curve(found, d=d, eps=eps)
    m = found.margin.double()
    part = (m.clamp(max=d) - m.clamp(max=a)) / (d - a) if d > a else m * math.nan
    value = mean(part, bounds=(0.0, 1.0))  # (1/(d-a)) ∫_a^d 1[m > e] de, per point
    out = {"name": score.name, "value": value.as_dict(), "upper_bound": True,
           "curve": [{"eps": e, **r.as_dict()} for e, r in zip(curve.eps, curve.robust)],
           "note": "upper bound: margins are distances to adversarial examples found by "
                   "FGSM, PGD and DeepFool with a binary search to the boundary (seed 001 §3.2)",
           "norm": norm_name(p), "d": d, "area": curve.area.as_dict(),
           "area_trapezoid": curve.area_trapezoid, "margins": found.as_dict()}
    if score.G.density and y is not None and len(y) == len(found.label):
        out["accuracy"] = proportion(int((found.label == y.to(found.label.device)).sum()),
                                     len(y)).as_dict()
    return out


__all__ = [
    "ATTACKS",
    "FRACTIONS",
    "MarginCurve",
    "Margins",
    "accuracy_lower_bound",
    "boundary_search",
    "deepfool",
    "diameter",
    "ensemble_margins",
    "margin_curve",
    "margin_score_summary",
    "misclassification",
    "norm",
]
