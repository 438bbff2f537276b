"""Local Lipschitz robustness (Lassance et al., seed 004): the alpha_lim(F, r) curve (Fig. 5),
the dataset-incompatibility curve (Figs. 1 and 3) and accuracy under Gaussian noise against
the SNR (Fig. 4).

Definition 1: F in Robust_alpha(R, r) iff ||F(x + e) - F(x)|| <= alpha ||e|| for every x in R
and ||e|| < r; alpha_lim(F, r) = inf{alpha : F in Robust_alpha(R, r)} is the supremum of the
ratio ||F(x + e) - F(x)|| / ||e|| over those x and e. Every ratio we evaluate is one of these,
so the estimates are lower bounds of alpha_lim. By default x + e is clamped into the domain
box [0, 1]^n (the ball ∩ domain of specrob's properties; pass low=-inf, high=inf for the
paper's unconstrained ball), and e is the actual, clamped perturbation.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from specrob.stats import Estimate, bool_proportion, proportion
from specrob.numerics import correct, draw_device, generator, norm, norm_name
from specrob.search.attacks import CHUNK
from specrob.search.region import Region
from specrob.search.searches import PGD

FLOOR = 1e-3  # ||e|| is floored at FLOOR * r in the ratio: a smaller ratio, so still a lower bound
BUDGET = 1 << 22  # floats per forward pass of the Gaussian samples


def _network(model: nn.Module, softmax: bool):
    """F: the softmax outputs (the paper's soft decision) or the logits."""
    return (lambda x: torch.softmax(model(x), -1)) if softmax else model


def _ratio(fx: torch.Tensor, f0: torch.Tensor, e: torch.Tensor, p: float, q: float,
           floor: float) -> torch.Tensor:
    """||F(x0 + e) - F(x0)||_q / max(||e||_p, floor): Definition 1's slope, guarded at e -> 0."""
    return norm(fx - f0, q) / norm(e, p).clamp_min(floor)


@dataclass(frozen=True)
class AlphaCurve:
    """Lower bounds of alpha_lim(F, r) per radius (Fig. 5), as running maxima over the radii.

    alpha_lim is non-decreasing in r (balls grow), so a ratio found at a smaller radius bounds
    it at every larger one: the running maximum is still a lower bound and is non-decreasing
    by construction."""

    radii: tuple[float, ...]
    gaussian: tuple[float, ...]    # Gaussian-noise estimate (max over centres and samples)
    pgd: tuple[float, ...] | None  # PGD on the ratio, max over centres (None: not run)
    alpha: tuple[float, ...]       # the larger of the two: the estimate of alpha_lim(F, r)
    per_centre: torch.Tensor       # (len(radii), B): per-centre running maxima of both
    p: float
    q: float
    softmax: bool
    samples: int
    noise: str = "gaussian"        # how the samples were drawn (alpha_curve's `noise`)

    def as_dict(self) -> dict:
        return {"p": norm_name(self.p), "q": norm_name(self.q),
                "output": "softmax" if self.softmax else "logits", "samples": self.samples,
                "noise": self.noise,
                "radii": list(self.radii), "gaussian": list(self.gaussian),
                "pgd": None if self.pgd is None else list(self.pgd), "alpha_lim": list(self.alpha),
                "lower_bound": True}


def alpha_curve(model: nn.Module, centres: torch.Tensor, radii: Sequence[float], *,
                p: float = 2.0, q: float | None = None, softmax: bool = True,
                samples: int = 1000, pgd: bool = True, steps: int = 20, restarts: int = 1,
                low: float = 0.0, high: float = 1.0, noise: str = "gaussian",
                generator: torch.Generator | None = None) -> AlphaCurve:
    """alpha_hat(r) = max over centres x and perturbations e of ||F(x+e) - F(x)||_q / ||e||_p.

    Gaussian noise (the paper: 1000 realisations around 100 training points): e = sigma z with
    z ~ N(0, I) and sigma = r / mean ||z||_p, so the noise has norm about r; draws with
    ||e||_p > r are scaled radially onto the sphere of radius r (no draw is wasted; the sup over
    the open ball equals the one over the closed ball, the ratio being continuous for e != 0).
    PGD (`pgd=True`) maximises the same ratio inside B_p(x, r) ∩ box from a random start;
    both are lower bounds. `q` (the output norm) defaults to p: the paper's one fixed metric.
    noise="sphere" draws as the authors' released script does (github.com/cadurosar/
    laplacian_networks, cifar_10/r_alpha.py): z ~ U(-1, 1)^n put on the sphere ||e||_p = r,
    x + e clipped to the box, the ratio over the clipped perturbation. Raises ValueError for
    decreasing radii or another `noise`."""
    if noise not in ("gaussian", "sphere"):
        raise ValueError(f"noise: 'gaussian' or 'sphere', not {noise!r}")
    radii = [float(r) for r in radii]
    if any(b < a for a, b in itertools.pairwise(radii)):
        raise ValueError("radii must be non-decreasing")
    q = p if q is None else q
    x0 = centres.detach()
    F = _network(model, softmax)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            f0 = F(x0)
        gauss, found = [], []
        for r in radii:
            if r <= 0:  # no e with ||e|| < 0: the condition is empty
                gauss.append(torch.zeros(len(x0), dtype=x0.dtype, device=x0.device))
                found.append(gauss[-1])
                continue
            gauss.append(_gaussian(F, x0, f0, r, p=p, q=q, samples=samples, low=low, high=high,
                                   generator=generator, sphere=noise == "sphere"))
            if pgd:
                found.append(_pgd(F, x0, f0, r, p=p, q=q, steps=steps, restarts=restarts,
                                  low=low, high=high, generator=generator))
    finally:
        model.train(was)
    g = torch.stack(gauss).cummax(0).values  # (K, B): running maxima over the radii
    pg = torch.stack(found).cummax(0).values.to(g.dtype) if pgd else None
    both = g if pg is None else torch.maximum(g, pg)

    def top(t: torch.Tensor) -> tuple[float, ...]:  # the max over centres, per radius
        return tuple(t.amax(1).tolist()) if t.shape[1] else (0.0,) * t.shape[0]

    return AlphaCurve(tuple(radii), top(g), None if pg is None else top(pg), top(both), both,
                      p, q, softmax, samples, noise)


def _gaussian(F, x0, f0, r, *, p, q, samples, low, high, generator, sphere=False
              ) -> torch.Tensor:
    """Per centre, the largest ratio over `samples` Gaussian perturbations of norm about r
    (`sphere`: uniform ones in [-1, 1]^n scaled to norm exactly r)."""
    b, n = x0.shape
    chunk = max(1, min(samples, BUDGET // max(b * n, 1)))
    best = torch.zeros(b, dtype=x0.dtype, device=x0.device)
    for start in range(0, samples, chunk):
        s = min(chunk, samples - start)
        if sphere:
            z = torch.rand((s, b, n), generator=generator, dtype=x0.dtype,
                           device=draw_device(generator, x0)).to(x0.device) * 2 - 1
            e = z * (r / norm(z, p).clamp_min(1e-12)).unsqueeze(-1)
        else:
            z = torch.randn((s, b, n), generator=generator, dtype=x0.dtype,
                            device=draw_device(generator, x0)).to(x0.device)
            zn = norm(z, p)
            e = z * (r / zn.mean().clamp_min(1e-12))
            e = e * (r / norm(e, p).clamp_min(1e-12)).clamp(max=1.0).unsqueeze(-1)  # into the ball
        x = (x0 + e).clamp(low, high)
        with torch.no_grad():
            fx = F(x.reshape(s * b, n)).reshape(s, b, -1)
        ratio = _ratio(fx, f0, x - x0, p, q, FLOOR * r)
        best = torch.maximum(best, ratio.amax(0))
    return best


def _pgd(F, x0, f0, r, *, p, q, steps, restarts, low, high, generator) -> torch.Tensor:
    """Per centre, the ratio at the point PGD finds by ascending it inside B_p(x0, r) ∩ box,
    in chunks of CHUNK centres (memory bounded by the chunk; one chunk up to CHUNK centres)."""
    values = []
    for start in range(0, x0.shape[0], CHUNK):
        xs, fs = x0[start:start + CHUNK], f0[start:start + CHUNK]

        def objective(x: torch.Tensor, xs=xs, fs=fs) -> torch.Tensor:
            k = x.shape[0] // xs.shape[0]
            return _ratio(F(x), fs.repeat(k, 1), x - xs.repeat(k, 1), p, q, FLOOR * r)

        _, value = PGD(steps=steps, restarts=restarts).maximise(
            objective, xs, Region(r, p, low, high), generator)
        values.append(value)
    if not values:
        return torch.zeros(0, dtype=x0.dtype, device=x0.device)
    return torch.cat(values).clamp_min(0.0)


def alpha_curve_summary(model: nn.Module, centres: torch.Tensor, radii: Sequence[float], *,
                        p: float = 2.0, q: float | None = None, softmax: bool = True,
                        seed: int = 0, alpha: float | None = None, samples: int = 1000,
                        steps: int = 20) -> dict:
    """`alpha_curve` as plain data; with `alpha`, per radius whether the estimate refutes
    F in Robust_alpha(R, r) (alpha_hat > alpha: certain, alpha_hat being a lower bound) and the
    fraction of centres whose own estimate stays <= alpha (an upper bound)."""
    gen = generator(seed, centres.device)
    curve = alpha_curve(model, centres, radii, p=p, q=q, softmax=softmax, samples=samples,
                        steps=steps, generator=gen)
    out = curve.as_dict()
    if alpha is not None:
        out["alpha"] = alpha
        out["refuted"] = [a > alpha for a in curve.alpha]
        out["centres_within"] = [bool_proportion(row <= alpha).as_dict()
                                 for row in curve.per_centre]
    return out


def onehot_distance(q: float) -> float:
    """||onehot(i) - onehot(j)||_q for i != j: 2 (l_1), sqrt(2) (l_2), 1 (l_inf)."""
    return 1.0 if q == math.inf else 2.0 ** (1.0 / q)


@dataclass(frozen=True)
class Incompatibility:
    """Figs. 1/3: per (alpha, d), the distinct-class training pairs that no function in
    Robust_alpha(T, d/2) with one-hot outputs can fit."""

    alphas: tuple[float, ...]
    distances: tuple[float, ...]
    incompatible: tuple[tuple[int, ...], ...]   # [alpha][d]: pair counts
    fraction: tuple[tuple[Estimate, ...], ...]  # [alpha][d]: counts / pairs (Wilson)
    pairs: int       # pairs of training points with distinct labels (the denominator)
    all_pairs: int   # all pairs N (N - 1) / 2 (the paper's Fig. 3 denominator, if preferred)
    p: float
    q: float

    def as_dict(self) -> dict:
        return {"p": norm_name(self.p), "q": norm_name(self.q), "pairs": self.pairs,
                "all_pairs": self.all_pairs,
                "curves": [{"alpha": a, "points": [{"d": d, "incompatible": c, **f.as_dict()}
                                                   for d, c, f in zip(self.distances, cs, fs)]}
                           for a, cs, fs in zip(self.alphas, self.incompatible, self.fraction)]}


def incompatibility_curve(x: torch.Tensor, y: torch.Tensor, distances: Sequence[float], *,
                          alpha: float | Sequence[float] = 1.0, p: float = 2.0,
                          q: float | None = None, chunk: int = 1024) -> Incompatibility:
    """The fraction of distinct-class pairs (x, x') with ||x - x'||_p < d and
    alpha ||x - x'||_p < ||onehot(y) - onehot(y')||_q, per d (and alpha).

    Why this criterion (the paper reads d as about 2r): if ||x - x'|| < 2r, the midpoint m is
    within r of both, so Definition 1 forces ||F(x) - F(x')|| <= ||F(x) - F(m)|| +
    ||F(m) - F(x')|| <= alpha ||x - x'||, impossible for one-hot outputs of distinct classes
    when alpha ||x - x'|| < ||onehot(y) - onehot(y')||; at distance >= 2r the open balls are
    disjoint and nothing links the two. d = inf gives Fig. 1 (a global Lipschitz constraint).
    The curve is non-decreasing in d, 0 at d = 0 (strict <), non-increasing in alpha.
    Distances by torch.cdist on `chunk` rows at a time; q defaults to p."""
    q = p if q is None else q
    alphas = tuple(float(a) for a in alpha) if isinstance(alpha, Iterable) else (float(alpha),)
    dists = tuple(float(d) for d in distances)
    gap = onehot_distance(q)
    # a pair is incompatible iff its distance is below min(d, gap / alpha)
    limit = torch.tensor([[min(d, gap / a if a > 0 else math.inf) for d in dists] for a in alphas],
                         dtype=torch.float64, device="cpu").reshape(len(alphas), len(dists))
    counts = torch.zeros(limit.shape, dtype=torch.long, device="cpu")  # the sorting is on the CPU
    pairs = 0
    y = y.reshape(-1)
    N = x.shape[0]
    flat = x.reshape(N, -1)
    for s in range(0, N, chunk):
        rows = flat[s:s + chunk]
        dist = torch.cdist(rows, flat, p=p)
        i = torch.arange(s, s + rows.shape[0], device=x.device)[:, None]
        j = torch.arange(N, device=x.device)[None, :]
        keep = (j > i) & (y[s:s + chunk, None] != y[None, :])
        d = dist[keep].double().sort().values.cpu()
        pairs += d.numel()
        counts += torch.searchsorted(d, limit.flatten()).reshape(limit.shape)  # #(dist < limit)
    inc = tuple(tuple(int(c) for c in row) for row in counts)
    frac = tuple(tuple(proportion(c, pairs) for c in row) for row in inc)
    return Incompatibility(alphas, dists, inc, frac, pairs, N * (N - 1) // 2, p, q)


@dataclass(frozen=True)
class NoiseAccuracy:
    """Fig. 4: accuracy under additive Gaussian noise per SNR (dB), with Wilson intervals."""

    snr_db: tuple[float, ...]
    accuracy: tuple[Estimate, ...]
    clean: Estimate
    samples: int

    def as_dict(self) -> dict:
        return {"clean": self.clean.as_dict(), "samples": self.samples,
                "curve": [{"snr_db": s, **a.as_dict()} for s, a in zip(self.snr_db, self.accuracy)]}


def noise_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, snr_db: Sequence[float], *,
                   samples: int = 1, low: float | None = None, high: float | None = None,
                   batch_size: int = 1024, generator: torch.Generator | None = None
                   ) -> NoiseAccuracy:
    """Accuracy on x + N(0, sigma^2 I) with SNR = 10 log10(P_x / sigma^2) per input, P_x =
    mean(x^2) the input's signal power: sigma = sqrt(P_x / 10^(SNR/10)).

    `samples` noise draws per input; the interval treats the B * samples draws as independent
    (exact for samples = 1). No clamping by default (it would change the noise power); give
    `low`/`high` to clamp the noisy inputs into the domain."""
    x, y = x.detach(), y.reshape(-1)
    power = (x * x).mean(-1, keepdim=True)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = correct(model, x, y, batch_size)
            accs = []
            for snr in snr_db:
                sigma = (power / 10.0 ** (float(snr) / 10.0)).sqrt()
                right = 0
                for _ in range(samples):
                    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                                        device=draw_device(generator, x)).to(x.device)
                    noisy = x + sigma * noise
                    if low is not None or high is not None:
                        noisy = noisy.clamp(low, high)
                    right += correct(model, noisy, y, batch_size)
                accs.append(proportion(right, len(y) * samples))
    finally:
        model.train(was)
    return NoiseAccuracy(tuple(float(s) for s in snr_db), tuple(accs), proportion(clean, len(y)),
                         samples)


__all__ = [
    "AlphaCurve",
    "Incompatibility",
    "NoiseAccuracy",
    "alpha_curve",
    "alpha_curve_summary",
    "incompatibility_curve",
    "noise_accuracy",
    "norm",
    "onehot_distance",
]
