"""The region a search runs in: the ball B_p(x0, eps) intersected with the input box.

Projection: onto the ball (exactly), then clamping to the box. Clamping moves a coordinate
towards the box, where x0's coordinate lies, so it never increases |x_i - x0_i|: the point
stays in the ball, and the result lies in ball ∩ box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from specrob.numerics import safe_l2


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
        if self.p == math.inf:
            unit = torch.rand(x0.shape, generator=generator, dtype=x0.dtype) * 2 - 1
        else:
            # radius^(1/n) times a uniform direction on the unit sphere of the norm
            if self.p == 2:
                d = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
                d = d / safe_l2(d).clamp_min(1e-12).unsqueeze(-1)
            else:  # uniform on the l_1 sphere: normalised exponentials with random signs
                e = -torch.log(torch.rand(x0.shape, generator=generator, dtype=x0.dtype)
                               .clamp_min(1e-12))
                sign = torch.randint(0, 2, x0.shape, generator=generator).to(x0.dtype) * 2 - 1
                d = sign * e / e.sum(-1, keepdim=True)
            r = torch.rand((x0.shape[0], 1), generator=generator, dtype=x0.dtype) ** (1.0 / n)
            unit = d * r
        return (x0 + unit.to(x0.device) * self.radius(x0)).clamp(self.low, self.high)

    def uniform(self, x0: torch.Tensor, count: int, generator: torch.Generator | None = None,
                tries: int = 20) -> torch.Tensor:
        """`count` points per centre, uniform on ball ∩ box: shape (count, B, n).

        For l_inf the intersection is a box and is sampled exactly; for l_1 and l_2, by
        rejection from the ball (`tries` rounds), then clamping whatever is left."""
        B, n = x0.shape
        xs = x0.unsqueeze(0).expand(count, B, n).reshape(count * B, n)
        big = self.repeat(count)
        if self.p == math.inf:
            eps = big.radius(xs)
            lo = torch.maximum(xs - eps, torch.full_like(xs, self.low))
            hi = torch.minimum(xs + eps, torch.full_like(xs, self.high))
            u = torch.rand(xs.shape, generator=generator, dtype=xs.dtype).to(xs.device)
            return (lo + u * (hi - lo)).reshape(count, B, n)
        out = torch.empty_like(xs)
        todo = torch.ones(xs.shape[0], dtype=torch.bool, device=xs.device)
        for _ in range(tries):
            cand = Region(big.eps, self.p, -math.inf, math.inf).random(xs, generator)
            ok = todo & ((cand >= self.low) & (cand <= self.high)).all(-1)
            out[ok] = cand[ok]
            todo &= ~ok
            if not todo.any():
                break
        if todo.any():
            out[todo] = big.random(xs, generator)[todo]
        return out.reshape(count, B, n)


def project_l1(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto the l_1 ball of radius eps (Duchi et al. 2008)."""
    a = delta.abs()
    inside = a.sum(-1, keepdim=True) <= eps
    u, _ = a.sort(-1, descending=True)
    css = u.cumsum(-1)
    k = torch.arange(1, delta.shape[-1] + 1, device=delta.device, dtype=delta.dtype)
    cond = u - (css - eps) / k > 0  # true for a prefix of the sorted magnitudes
    rho = cond.sum(-1, keepdim=True).clamp_min(1) - 1
    theta = (css.gather(-1, rho) - eps) / (rho + 1).to(delta.dtype)
    projected = delta.sign() * torch.relu(a - theta)
    return torch.where(inside, delta, projected)


def ascent_step(grad: torch.Tensor, p: float, size: float | torch.Tensor,
                coordinates: int = 1, *, x: torch.Tensor | None = None,
                low: float | None = None, high: float | None = None) -> torch.Tensor:
    """The steepest-ascent step of the given size for a norm (Shaham et al., §4.1): the sign
    for l_inf, the normalised gradient for l_2, the largest-magnitude coordinates for l_1.

    With the current point `x` and the domain box [low, high], coordinates already on a face
    of the box that the gradient pushes outward are left out: the steepest ascent within ball
    ∩ box (the box would clamp them back). This matters for l_1, whose single coordinate would
    otherwise often be a saturated pixel and the step a no-op."""
    if x is not None and low is not None and high is not None:
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
