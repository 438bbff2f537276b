"""The region a search runs in: the ball B_p(x0, eps) intersected with the input box.

Projection: onto the ball (exactly), then clamping to the box. Clamping moves a coordinate
towards the box, where x0's coordinate lies, so it never increases |x_i - x0_i|: the point
stays in the ball, and the result lies in ball ∩ box.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from specrob.numerics import draw_device, safe_l2
from specrob.errors import SpecrobError


@dataclass(frozen=True)
class Region:
    """B_p(x0, eps) ∩ [low, high]^n; eps is a number or one radius per centre, shape (B, 1)."""

    eps: float | torch.Tensor
    p: float
    low: float = 0.0
    high: float = 1.0

    def radius(self, x0: torch.Tensor) -> torch.Tensor:
        """The radius per centre, shape (B, 1)."""
        eps = torch.as_tensor(self.eps, dtype=x0.dtype, device=x0.device)
        return eps.reshape(-1, 1).expand(x0.shape[0], 1)

    def repeat(self, times: int) -> "Region":
        """The region for a batch repeated `times` (restarts stacked on the batch axis)."""
        if torch.is_tensor(self.eps) and self.eps.dim() > 0:
            return Region(self.eps.reshape(-1, 1).repeat(times, 1), self.p, self.low, self.high)
        return self

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        eps = self.radius(x0)
        delta = x - x0
        if self.p == math.inf:
            delta = torch.maximum(torch.minimum(delta, eps), -eps)
        elif self.p == 2:
            n = safe_l2(delta).unsqueeze(-1)
            delta = delta * torch.where(n > eps, eps / n.clamp_min(1e-12), torch.ones_like(n))
        else:
            delta = project_l1(delta, eps)
        return (x0 + delta).clamp(self.low, self.high)

    def projector(self, x0: torch.Tensor):
        """`project(., x0)` for repeated use around the same centres: for l_inf, ball ∩ box
        is one box and projecting is a single clamp."""
        if self.p == math.inf:
            eps = self.radius(x0)
            low = (x0 - eps).clamp_min(self.low)
            high = (x0 + eps).clamp_max(self.high)
            return lambda x: torch.clamp(x, low, high)
        return lambda x: self.project(x, x0)

    def contains(self, x: torch.Tensor, x0: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
        eps = self.radius(x0).squeeze(-1)
        d = x - x0
        dist = {1.0: d.abs().sum(-1), 2.0: d.norm(dim=-1)}.get(self.p, d.abs().amax(-1))
        inside = (x >= self.low - tol).all(-1) & (x <= self.high + tol).all(-1)
        return inside & (dist <= eps * (1 + tol) + tol)

    def random(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A point drawn uniformly from the ball, clamped into the box (a random start)."""
        n = x0.shape[-1]
        dev = draw_device(generator, x0)
        if self.p == math.inf:
            unit = torch.rand(x0.shape, generator=generator, dtype=x0.dtype, device=dev) * 2 - 1
        else:
            # radius^(1/n) times a uniform direction on the unit sphere of the norm
            if self.p == 2:
                d = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=dev)
                d = d / safe_l2(d).clamp_min(1e-12).unsqueeze(-1)
            else:  # uniform on the l_1 sphere: normalised exponentials with random signs
                e = -torch.log(torch.rand(x0.shape, generator=generator, dtype=x0.dtype, device=dev).clamp_min(1e-12))
                sign = torch.randint(0, 2, x0.shape, generator=generator,
                                     device=dev).to(x0.dtype) * 2 - 1
                d = sign * e / e.sum(-1, keepdim=True)
            r = torch.rand((x0.shape[0], 1), generator=generator, dtype=x0.dtype, device=dev) ** (1.0 / n)
            unit = d * r
        return (x0 + unit.to(x0.device) * self.radius(x0)).clamp(self.low, self.high)

    def uniform(self, x0: torch.Tensor, count: int, generator: torch.Generator | None = None,
                ) -> torch.Tensor:
        """`count` points per centre, uniform on ball ∩ box: shape (count, B, n).

        Exact for every norm (see `uniform_with_rate`); never clamps."""
        return self.uniform_with_rate(x0, count, generator)[0]

    def uniform_slices(self, x0: torch.Tensor, count: int,
                       generator: torch.Generator | None = None, *,
                       max_elements: int = 1 << 22
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The `count` points per centre of `uniform_with_rate`, in slices of about
        `max_elements` numbers (at least one point per centre): (c, B, n) tensors and each
        slice's acceptance rate (B,), so a caller holds one slice at a time (memory bounded
        by `max_elements`, not by count x B). l_inf draws exactly the numbers of one call
        (torch's CPU generator fills in order); l_1 / l_2 run one rejection sampler per slice
        (the same distribution; the same numbers when one slice holds all)."""
        B, n = x0.shape
        per = max(1, max_elements // max(1, B * n))
        done = 0
        while done < count:
            c = min(per, count - done)
            yield self.uniform_with_rate(x0, c, generator)
            done += c

    def uniform_with_rate(self, x0: torch.Tensor, count: int,
                          generator: torch.Generator | None = None, *,
                          min_acceptance: float = 1e-4, max_elements: int = 1 << 22
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` points per centre drawn exactly uniformly from ball ∩ box, shape
        (count, B, n), and the acceptance rate of the rejection sampler per centre, (B,).

        l_inf: ball ∩ box is a box, sampled directly (acceptance 1). l_1 and l_2: rejection
        sampling from the smaller (by volume) of two proposals that contain ball ∩ box:
        - the ball, drawn exactly (uniform direction of the norm times U^(1/n) radius), with
          every coordinate whose centre lies on (or beyond) a face of the box reflected into
          the box's side. The ball is symmetric under that reflection, so this is the ball
          restricted to the half-space, exactly: at a corner of [0,1]^n it gains 2^k for k
          coordinates on faces (saturated pixels);
        - the box [max(x0 - eps, low), min(x0 + eps, high)], uniform, keeping points in the ball.
        Proposals are drawn in rounds of at most `max_elements` numbers until every centre has
        its `count` points. A centre whose acceptance rate is below `min_acceptance` (so that
        it would take more than count / min_acceptance proposals) raises SamplingError rather
        than returning points that are not uniform."""
        B, n = x0.shape
        if self.p == math.inf:
            xs = x0.unsqueeze(0).expand(count, B, n).reshape(count * B, n)
            big = self.repeat(count)
            eps = big.radius(xs)
            lo = torch.maximum(xs - eps, torch.full_like(xs, self.low))
            hi = torch.minimum(xs + eps, torch.full_like(xs, self.high))
            u = torch.rand(xs.shape, generator=generator, dtype=xs.dtype,
                           device=draw_device(generator, xs)).to(xs.device)
            return ((lo + u * (hi - lo)).reshape(count, B, n),
                    torch.ones(B, dtype=torch.float64, device="cpu"))
        return _RejectionSampler(self, x0, generator, min_acceptance,
                                 max_elements).run(count)


class SamplingError(SpecrobError, ValueError):
    """Uniform points of ball ∩ box that cannot be drawn exactly within the budget."""


def _log_ball_volume(n: int, p: float, r: torch.Tensor) -> torch.Tensor:
    """log of the volume of the l_p ball of radius r in R^n (p = 1 or 2)."""
    if p == 2:
        return n * torch.log(r) + 0.5 * n * math.log(math.pi) - math.lgamma(n / 2 + 1)
    return n * torch.log(2 * r) - math.lgamma(n + 1)


def _unit_ball(shape, p: float, dtype, generator, device) -> torch.Tensor:
    """Points uniform in the unit l_p ball (p = 1, 2): a direction uniform for the cone
    measure of the unit sphere times a radius U^(1/n), drawn on `device`."""
    rows, n = shape
    if p == 2:
        d = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        d = d / safe_l2(d).clamp_min(1e-300).unsqueeze(-1)
    else:  # normalised exponentials (uniform on the simplex) with random signs
        e = -torch.log(torch.rand(shape, generator=generator, dtype=dtype, device=device).clamp_min(1e-300))
        sign = torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1
        d = sign * e / e.sum(-1, keepdim=True)
    r = torch.rand((rows, 1), generator=generator, dtype=dtype, device=device) ** (1.0 / n)
    return d * r


class _RejectionSampler:
    """Exact uniform sampling of ball ∩ box for l_1 / l_2 (Region.uniform_with_rate)."""

    def __init__(self, region: Region, x0: torch.Tensor, generator, min_acceptance: float,
                 max_elements: int):
        self.region, self.x0, self.gen = region, x0, generator
        self.min_acceptance, self.max_elements = min_acceptance, max_elements
        B, n = x0.shape
        self.eps = region.radius(x0).squeeze(-1)  # (B,)
        low, high = region.low, region.high
        self.box_lo = torch.maximum(x0 - self.eps[:, None], torch.full_like(x0, low))
        self.box_hi = torch.minimum(x0 + self.eps[:, None], torch.full_like(x0, high))
        # reflection of the ball's coordinates whose centre is on or beyond a face
        self.fold = torch.where(x0 <= low, 1.0, torch.where(x0 >= high, -1.0, 0.0)).to(x0.dtype)
        folded = (self.fold != 0).sum(-1).to(torch.float64)
        eps64 = self.eps.to(torch.float64).clamp_min(1e-300)
        log_ball = _log_ball_volume(n, region.p, eps64) - folded * math.log(2)
        width = (self.box_hi - self.box_lo).to(torch.float64)
        log_box = torch.log(width.clamp_min(0)).sum(-1)
        self.use_box = log_box < log_ball  # (B,): the smaller proposal

    def propose(self, rows: torch.Tensor) -> torch.Tensor:
        """One proposal per entry of `rows` (centre indices), in the chosen proposal."""
        x0 = self.x0[rows]
        out = torch.empty_like(x0)
        box = self.use_box[rows]
        if box.any():
            lo, hi = self.box_lo[rows[box]], self.box_hi[rows[box]]
            u = torch.rand(lo.shape, generator=self.gen, dtype=x0.dtype,
                           device=draw_device(self.gen, x0)).to(x0.device)
            out[box] = lo + u * (hi - lo)
        ball = ~box
        if ball.any():
            r = rows[ball]
            d = _unit_ball((len(r), x0.shape[-1]), self.region.p, x0.dtype, self.gen,
                           draw_device(self.gen, x0))
            d = d.to(x0.device) * self.eps[r, None]
            fold = self.fold[r]
            d = torch.where(fold != 0, fold * d.abs(), d)
            out[ball] = self.x0[r] + d
        return out

    def accept(self, pts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        reg, x0 = self.region, self.x0[rows]
        inside = ((pts >= reg.low) & (pts <= reg.high)).all(-1)
        d = pts - x0
        dist = d.abs().sum(-1) if reg.p == 1 else safe_l2(d)
        return inside & (dist <= self.eps[rows])

    def run(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self.x0
        B, n = x0.shape
        out = x0.unsqueeze(0).expand(count, B, n).clone()
        # the bookkeeping per centre stays on the CPU (small; read every round)
        have = torch.zeros(B, dtype=torch.long, device="cpu")
        proposed = torch.zeros(B, dtype=torch.float64, device="cpu")
        accepted = torch.zeros(B, dtype=torch.float64, device="cpu")
        todo = (self.eps > 0).cpu() & (count > 0)  # radius 0: the ball is x0 itself
        budget = math.ceil(count / self.min_acceptance)
        per_round = max(self.max_elements // max(n, 1), 1)
        while todo.any():
            idx = todo.nonzero().flatten()
            need = (count - have[idx]).to(torch.float64)
            rate = (accepted[idx] + 1) / (proposed[idx] + 2)  # Laplace's estimate
            want = torch.ceil(1.25 * need / rate + 8).clamp(max=budget - proposed[idx] + 1)
            if want.sum() > per_round:  # at most per_round proposals this round
                want = torch.ceil(want * per_round / want.sum()).clamp_min(1)
            want = want.to(torch.long)
            rows = torch.repeat_interleave(idx, want)
            rows_dev = rows.to(x0.device)
            pts = self.propose(rows_dev)
            ok_dev = self.accept(pts, rows_dev)
            ok = ok_dev.cpu()
            proposed += torch.bincount(rows, minlength=B).to(torch.float64)
            got = rows[ok]  # sorted: repeat_interleave groups the rows of a centre
            counts = torch.bincount(got, minlength=B)
            accepted += counts.to(torch.float64)
            # keep the first `count - have` accepted points of each centre
            rank = torch.arange(len(got), device="cpu") - (torch.cumsum(counts, 0) - counts)[got]
            slot = have[got] + rank
            keep = slot < count
            out[slot[keep].to(x0.device), got[keep].to(x0.device)] = pts[ok_dev][keep.to(x0.device)]
            have += torch.bincount(got[keep], minlength=B)
            todo = have < count
            # refuse a centre whose rate is certainly below the floor, or whose budget is spent
            upper = (accepted + 7.0) / proposed.clamp_min(1)
            hopeless = todo & ((proposed >= budget) | ((proposed > 0) & (upper < self.min_acceptance)))
            if hopeless.any():
                b = int(hopeless.nonzero()[0])
                raise SamplingError(
                    f"uniform points of ball ∩ box around centre {b}: the acceptance rate of "
                    f"exact rejection sampling is {accepted[b] / max(proposed[b], 1):.2e} "
                    f"({int(accepted[b])} of {int(proposed[b])} proposals), below "
                    f"{self.min_acceptance:g}, so {count} points would take more than "
                    f"{budget} proposals. Use a smaller eps, an l_inf ball, fewer samples, or "
                    f"centres farther from the faces of the domain")
        rate = torch.where(proposed > 0, accepted / proposed.clamp_min(1), torch.ones_like(proposed))
        return out, rate


def project_l1(delta: torch.Tensor, eps: torch.Tensor, max_rounds: int = 100) -> torch.Tensor:
    """Euclidean projection of each row onto the l_1 ball of radius eps: sign(d) (|d| - theta)+
    with the threshold theta of Duchi et al. 2008, found by Michelot's iteration (1986)
    instead of their sort: theta = (sum of the active |d_i| - eps) / (their count), the
    active set {|d_i| > theta} shrinking until it is stable (a few rounds of O(n) each; the
    sort of 784 pixels was half of an l_1 attack's time). The sort-based threshold is the
    fallback for rows still moving after `max_rounds`."""
    a = delta.abs()
    inside = a.sum(-1, keepdim=True) <= eps
    active = torch.ones_like(a, dtype=torch.bool)
    theta = (a.sum(-1, keepdim=True) - eps) / a.shape[-1]
    for _ in range(max_rounds):
        new = a > theta
        if torch.equal(new, active):
            break
        count = new.sum(-1, keepdim=True)
        # an empty active set (eps = 0, ties at the top) keeps theta: the largest |d_i|
        theta = torch.where(count > 0, ((a * new).sum(-1, keepdim=True) - eps)
                            / count.clamp_min(1), theta)
        active = new
    else:
        theta = torch.where((a > theta).eq(active).all(-1, keepdim=True), theta,
                            _sorted_threshold(a, eps))
    projected = delta.sign() * torch.relu(a - theta)
    return torch.where(inside, delta, projected)


def _sorted_threshold(a: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Duchi et al.'s threshold per row from the magnitudes sorted in decreasing order."""
    u, _ = a.sort(-1, descending=True)
    css = u.cumsum(-1)
    k = torch.arange(1, a.shape[-1] + 1, device=a.device, dtype=a.dtype)
    cond = u - (css - eps) / k > 0  # true for a prefix of the sorted magnitudes
    rho = cond.sum(-1, keepdim=True).clamp_min(1) - 1
    return (css.gather(-1, rho) - eps) / (rho + 1).to(a.dtype)


def ascent_step(grad: torch.Tensor, p: float, size: float | torch.Tensor,
                coordinates: int = 1, *, x: torch.Tensor | None = None,
                low: float | None = None, high: float | None = None) -> torch.Tensor:
    """The steepest-ascent step of the given size for a norm (Shaham et al., §4.1): the sign
    for l_inf, the normalised gradient for l_2, the largest-magnitude coordinates for l_1.

    With the current point `x` and the domain box [low, high], coordinates already on a face
    of the box that the gradient pushes outward are left out: the steepest ascent within ball
    ∩ box (the box would clamp them back). This matters for l_1, whose single coordinate would
    otherwise often be a saturated pixel and the step a no-op. For l_inf the mask is skipped:
    each coordinate moves on its own, so a blocked one is clamped back onto its face by the
    projection that follows (the same point, a third of PGD's time saved)."""
    if x is not None and low is not None and high is not None and p != math.inf:
        blocked = ((x >= high) & (grad > 0)) | ((x <= low) & (grad < 0))
        grad = grad.masked_fill(blocked, 0.0)
    if p == math.inf:
        return size * grad.sign()
    if p == 2:
        return size * grad / safe_l2(grad).clamp_min(1e-12).unsqueeze(-1)
    top = grad.abs().topk(min(coordinates, grad.shape[-1]), dim=-1).indices
    step = torch.zeros_like(grad)
    step.scatter_(-1, top, grad.gather(-1, top).sign())
    return size * step / coordinates
