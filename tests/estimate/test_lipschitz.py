"""Local Lipschitz robustness (seed 004): alpha_lim(F, r) lower bounds, the dataset
incompatibility curve, and accuracy under Gaussian noise against the SNR."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from specrob.estimate.lipschitz import (
    alpha_curve,
    alpha_curve_summary,
    incompatibility_curve,
    noise_accuracy,
    onehot_distance,
)

RADII = [0.05, 0.1, 0.2, 0.4]


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def spectral_bound(model: nn.Sequential) -> float:
    """A true l_2 Lipschitz constant of the logits: the product of the layers' spectral norms
    (ReLU is 1-Lipschitz). Softmax is 1-Lipschitz in l_2, so it bounds the softmax outputs too."""
    out = 1.0
    for layer in model:
        if isinstance(layer, nn.Linear):
            out *= torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
    return out


def centres(count: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.rand(count, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("softmax", [False, True])
def test_estimates_never_exceed_a_true_lipschitz_bound(softmax):
    model = mlp()
    curve = alpha_curve(model, centres(), RADII, softmax=softmax, samples=200,
                        generator=torch.Generator().manual_seed(0))
    bound = spectral_bound(model)
    assert max(curve.gaussian) <= bound + 1e-5
    assert max(curve.pgd) <= bound + 1e-5
    assert (curve.per_centre <= bound + 1e-5).all()
    assert min(curve.gaussian) > 0


def test_the_authors_sphere_draws_are_a_lower_bound_at_radius_r():
    """noise="sphere" (the authors' r_alpha.py): uniform draws scaled onto ||e||_2 = r. On a
    linear map f(x) = a·x from centres far from the box's faces, the ratio |a·e| / ||e|| is
    |cos| of e and a: never above ||a||, and with e uniform on a sphere in 2 dimensions it comes
    close to ||a|| with 500 draws; the curve says how it was drawn."""
    a = torch.tensor([[3.0, 4.0]])
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(a)
    x0 = torch.full((3, 2), 0.5)
    curve = alpha_curve(model, x0, (0.1, 0.2), softmax=False, samples=500, pgd=False,
                        noise="sphere", generator=torch.Generator().manual_seed(0))
    assert max(curve.alpha) <= 5.0 + 1e-5 and min(curve.alpha) > 4.9
    assert curve.as_dict()["noise"] == "sphere" and curve.pgd is None
    with pytest.raises(ValueError, match="noise"):
        alpha_curve(model, x0, (0.1,), noise="laplace")


def test_curve_is_non_decreasing_in_r_and_pgd_beats_gaussian_noise():
    model = mlp(2)
    curve = alpha_curve(model, centres(), RADII, softmax=False, samples=200,
                        generator=torch.Generator().manual_seed(0))
    for values in (curve.gaussian, curve.pgd, curve.alpha):
        assert all(b >= a for a, b in itertools.pairwise(values))
    assert all(p >= g for p, g in zip(curve.pgd, curve.gaussian))  # on this seed
    assert curve.alpha == tuple(max(p, g) for p, g in zip(curve.pgd, curve.gaussian))
    assert curve.per_centre.shape == (len(RADII), 10)
    assert curve.alpha == tuple(curve.per_centre.amax(1).tolist())


def test_pgd_in_chunks_of_centres_is_pgd_on_all_at_once(monkeypatch):
    """Memory bounded by the chunk: l_inf starts drawn in one call fill the rows in order, so
    PGD over chunks of 4 centres finds per centre what one batch of 10 finds."""
    from specrob.estimate import lipschitz
    model = mlp(3)
    kwargs = dict(p=math.inf, softmax=False, samples=1, steps=5)
    one = alpha_curve(model, centres(), RADII, generator=torch.Generator().manual_seed(0),
                      **kwargs)
    monkeypatch.setattr(lipschitz, "CHUNK", 4)
    chunked = alpha_curve(model, centres(), RADII, generator=torch.Generator().manual_seed(0),
                          **kwargs)
    assert one.pgd == chunked.pgd
    assert one.pgd is not None and max(one.pgd) > 0


def test_pgd_reaches_the_spectral_norm_of_a_linear_map():
    torch.manual_seed(3)
    model = nn.Linear(5, 4)
    curve = alpha_curve(model, centres(4, 2)[:, :5], [0.1], softmax=False, samples=50,
                        steps=50, low=-math.inf, high=math.inf,
                        generator=torch.Generator().manual_seed(0))
    top = torch.linalg.matrix_norm(model.weight.detach(), ord=2).item()
    assert top * 0.99 <= curve.pgd[0] <= top + 1e-5
    assert curve.gaussian[0] <= top + 1e-5


def test_zero_radius_and_unsorted_radii():
    model = mlp()
    curve = alpha_curve(model, centres(3), [0.0, 0.1], samples=20, pgd=False)
    assert curve.gaussian[0] == 0.0 and curve.pgd is None
    with pytest.raises(ValueError):
        alpha_curve(model, centres(3), [0.2, 0.1])


def test_summary_with_alpha_reports_refutations():
    model = mlp()
    out = alpha_curve_summary(model, centres(5), [0.1, 0.2], softmax=True, alpha=0.0,
                              samples=50, steps=5)
    assert out["lower_bound"] and out["output"] == "softmax" and out["p"] == "2"
    assert out["refuted"] == [True, True]  # a non-constant network is not 0-robust
    assert [c["value"] for c in out["centres_within"]] == [0.0, 0.0]


def brute_force(x, y, d, alpha, p, q):
    """Distinct-class pairs at distance < d with alpha * distance < ||onehot - onehot'||_q."""
    count = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if y[i] == y[j]:
                continue
            pairs += 1
            dist = torch.linalg.vector_norm((x[i] - x[j]).double(), ord=p).item()
            count += dist < d and alpha * dist < onehot_distance(q)
    return count, pairs


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_incompatibility_matches_a_brute_force_count(p):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(13, 3, generator=gen), torch.randint(0, 3, (13,), generator=gen)
    distances = [0.0, 0.2, 0.4, 0.6, 1.0, math.inf]
    alphas = [0.5, 1.5, 3.0, 6.0]
    out = incompatibility_curve(x, y, distances, alpha=alphas, p=p, chunk=5)
    for a, counts in zip(alphas, out.incompatible):
        for d, c in zip(distances, counts):
            expected, pairs = brute_force(x, y, d, a, p, p)
            assert c == expected
            assert out.pairs == pairs
    assert out.all_pairs == 13 * 12 // 2


def test_incompatibility_is_monotone_and_zero_at_zero_distance():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 8, generator=gen), torch.randint(0, 4, (60,), generator=gen)
    distances = [i / 10 for i in range(31)]
    alphas = [0.5, 1.0, 2.0, 4.0]
    out = incompatibility_curve(x, y, distances, alpha=alphas)
    for row in out.fraction:
        values = [f.value for f in row]
        assert values[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(values))  # non-decreasing in d
    for lo, hi in zip(out.incompatible, out.incompatible[1:]):
        assert all(b <= a for a, b in zip(lo, hi))  # non-increasing in alpha
    # with a tiny alpha and d beyond the diameter, every distinct-class pair is incompatible
    everything = incompatibility_curve(x, y, [math.inf], alpha=1e-6)
    assert everything.fraction[0][0].value == 1.0


class Recorder(nn.Module):
    """A linear classifier that remembers its last input."""

    def __init__(self, n: int, classes: int):
        super().__init__()
        torch.manual_seed(4)
        self.linear = nn.Linear(n, classes)
        self.seen: torch.Tensor | None = None

    def forward(self, x):
        self.seen = x
        return self.linear(x)


def test_accuracy_at_very_high_snr_is_the_clean_accuracy():
    model = Recorder(20, 3)
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(200, 20, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(-1)
    y[:50] = (y[:50] + 1) % 3  # 75% accurate
    out = noise_accuracy(model, x, y, [300.0, 0.0, -30.0], generator=gen)
    assert out.clean.value == pytest.approx(0.75)
    assert out.accuracy[0].value == out.clean.value
    assert out.accuracy[0].count == 200
    assert out.accuracy[2].value != out.clean.value  # noise 30 dB above the signal matters


def test_noise_has_the_requested_snr():
    model = Recorder(400, 2)
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(50, 400, generator=gen)
    y = torch.zeros(50, dtype=torch.long)
    noise_accuracy(model, x, y, [10.0], generator=gen)
    noise = model.seen - x
    snr = 10 * torch.log10((x * x).mean(-1) / (noise * noise).mean(-1))
    assert snr.mean().item() == pytest.approx(10.0, abs=0.2)
