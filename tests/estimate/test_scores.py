"""Monte Carlo Q,H,G scores against cases with known values."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import specrob
from tests.conftest import REPO
from specrob.estimate.scores import ScoreError, estimate_score


class Threshold(nn.Module):
    """Class 1 where x[0] > 0.5, else class 0."""

    def forward(self, x):
        s = x[:, :1] - 0.5
        return torch.cat([-s, s], dim=-1)


def score(text: str, **kw):
    return specrob.loads(text, **kw).scores[0]


def test_gaussian_consistency_with_zero_noise_is_one():
    s = score("score s = gaussian_consistency(sigma = 0)\n")
    x = torch.rand(50, 3)
    r = estimate_score(s, Threshold(), x, torch.zeros(50, dtype=torch.long), samples=20)
    assert r.value.value == 1.0 and not r.upper_bound


def test_uniform_ball_consistency_matches_the_exact_probability():
    """rho for the threshold classifier and the l_inf ball of radius 0.2 around x0 = 0.45:
    the ball's first coordinate is uniform on [0.25, 0.65]; P(x'[0] <= 0.5) = 0.25/0.4."""
    s = score("score s(eps = 0.2):\n    Q = uniform(ball(x0, eps, inf)); H = id; G = density\n")
    x = torch.full((40, 2), 0.45)
    r = estimate_score(s, Threshold(), x, torch.zeros(40, dtype=torch.long), samples=500)
    assert r.value.value == pytest.approx(0.625, abs=0.02)
    assert r.value.low <= 0.625 <= r.value.high


def test_indicator_scores_are_upper_bounds_from_attacks():
    s = score("score s(eps = 0.2):\n    Q = uniform(ball(x0, eps, inf)); H = indicator; G = density\n")
    x = torch.tensor([[0.45, 0.5], [0.1, 0.5], [0.9, 0.5], [0.62, 0.5]])
    r = estimate_score(s, Threshold(), x, torch.zeros(4, dtype=torch.long), samples=5)
    # balls at 0.45 and 0.62 reach the threshold 0.5: the attack finds the label change there
    assert r.value.value == 0.5 and r.upper_bound and "upper bound" in r.note


def test_family_integrates_over_the_radius():
    """Margin-area score with a uniform family eps ~ uniform(0, d): for the threshold
    classifier the indicator is 1 while eps < |x0[0] - 0.5|: the area is min(margin, d) / d."""
    s = score("score s(d = 0.4):\n    Q = uniform(ball(x0, eps, inf)); H = indicator; "
              "G = density\n    eps ~ uniform(0, d)\n")
    x = torch.tensor([[0.3, 0.5], [0.8, 0.5]])  # margins 0.2 and 0.3
    r = estimate_score(s, Threshold(), x, torch.zeros(2, dtype=torch.long), samples=5, grid=40)
    assert r.value.value == pytest.approx((0.2 / 0.4 + 0.3 / 0.4) / 2, abs=0.03)
    assert len(r.curve) == 40 and r.curve[0]["value"] == 1.0 and r.curve[-1]["value"] == 0.0


def test_label_conditioned_kernels_compare_with_the_label():
    s = score("score s(sigma = 0):\n    Q = gaussian(x0, sigma) given label; H = id; G = density\n")
    x = torch.full((10, 2), 0.2)  # predicted class 0
    r = estimate_score(s, Threshold(), x, torch.ones(10, dtype=torch.long), samples=5)
    assert r.value.value == 0.0 and "given label" in r.note


def test_on_manifold_kernel_uses_the_users_generator(tmp_path):
    gen = tmp_path / "identity_ae.py"
    gen.write_text("def encode(x):\n    return x\n\ndef decode(z):\n    return z\n")
    spec_file = tmp_path / "m.rspec"
    spec_file.write_text('score s = on_manifold_average(generator = "identity_ae.py", '
                         'sigma = 0.0, d = 0.2)\n')
    s = specrob.load(spec_file).scores[0]
    x = torch.rand(20, 2)
    r = estimate_score(s, Threshold(), x, torch.zeros(20, dtype=torch.long), samples=5,
                       spec_dir=tmp_path)
    # sigma = 0: every sample is x0 itself, the label is kept; G = density / eps weighs by 1/eps
    assert all(point["value"] == 1.0 for point in r.curve)
    with pytest.raises(ScoreError, match="not found"):
        estimate_score(s, Threshold(), x, torch.zeros(20, dtype=torch.long),
                       spec_dir=tmp_path / "elsewhere")


def test_proposition_6_bound_is_reported_where_eps_label_is_declared(tmp_path):
    from specrob.data import Dataset
    from specrob.estimate.evaluation import EvalConfig, Evaluation
    import numpy as np
    x = np.full((30, 2), 0.2, dtype=np.float32)
    x[:10, 0] = 0.9  # class 1 by the threshold
    y = (x[:, 0] > 0.5).astype(np.int64)
    y[:3] = 0  # three labels the classifier gets wrong
    data = Dataset("toy", x, y, x, y, (2,), 2)
    spec = specrob.loads("score s(sigma = 0, eps_label = 0.05):\n"
                         "    Q = gaussian(x0, sigma); H = id; G = density\n")
    results = Evaluation(spec, Threshold(), data, EvalConfig(samples=5)).run()
    entry = results["scores"]["s"]["accuracy_bound"]
    assert entry["accuracy"]["value"] == pytest.approx(0.9)
    # sigma = 0: rho = 1, delta = 0; the bound is accuracy - eps_label
    assert entry["bound"]["value"] == pytest.approx(0.85)


def test_gaussian_kernel_is_conditioned_on_the_domain_not_clamped():
    """N(x0, sigma^2 I) restricted to [0,1]^n: at a face a half-normal (mean sigma·sqrt(2/pi)),
    and no draw exactly on the face (clamping put half of them there)."""
    import math

    from specrob.estimate.scores import truncated_gaussian
    x0 = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    pts = truncated_gaussian(x0, 0.1, 0.0, 1.0, 20000, torch.Generator().manual_seed(0))[:, 0]
    assert ((pts > 0) & (pts < 1)).all()
    half = 0.1 * math.sqrt(2 / math.pi)
    assert float(pts[:, 0].mean()) == pytest.approx(half, abs=0.002)
    assert float(pts[:, 2].mean()) == pytest.approx(1 - half, abs=0.002)
    assert float(pts[:, 1].std()) == pytest.approx(0.1, abs=0.002)


def test_a_network_with_nan_outputs_is_refused_not_scored():
    class NaNNet(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 3), float("nan"))
    s = score("score s(eps = 0.2):\n    Q = uniform(ball(x0, eps, inf)); H = id; G = density\n")
    with pytest.raises(ScoreError, match="NaN or inf"):
        estimate_score(s, NaNNet(), torch.rand(4, 2), torch.zeros(4, dtype=torch.long),
                       samples=5)


def test_a_set_generator_path_is_relative_to_the_current_folder(tmp_path, monkeypatch):
    """A path written in the spec is the spec's (relative to its folder); one given with --set
    is the user's, relative to where they run (as `--set generator=runs/ae/autoencoder.py`
    with the standard library's specs/manifold.rspec)."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ae.py").write_text(
        "def encode(x):\n    return x\n\ndef decode(z):\n    return z\n")
    monkeypatch.chdir(tmp_path)
    spec = specrob.load(REPO / "specs" / "manifold.rspec", generator="runs/ae.py", sigma=0.0)
    s = spec["on_manifold_average"]
    assert s.value("generator") == str(tmp_path / "runs" / "ae.py")
    x = torch.rand(10, 2)
    r = estimate_score(s, Threshold(), x, torch.zeros(10, dtype=torch.long), samples=3,
                       grid=2, spec_dir=REPO / "specs")
    assert r.value.value > 0


def test_a_generator_that_is_not_a_python_file_is_a_clear_error(tmp_path):
    from specrob.estimate.scores import ScoreError, load_generator
    text = tmp_path / "generator.txt"
    text.write_text("def encode(x): return x\ndef decode(z): return z\n")
    with pytest.raises(ScoreError, match=r"not a Python file \(\.py\)"):
        load_generator(text)


@pytest.mark.parametrize("text", [
    "score s(eps = 0.2):\n    Q = uniform(ball(x0, eps, inf)); H = id; G = density\n",
    "score s(eps = 0.2):\n    Q = uniform(ball(x0, eps, inf)); H = indicator; G = density\n",
    "score s = gaussian_consistency(sigma = 0.2)\n",
])
def test_samples_in_slices_give_the_one_slice_estimate(monkeypatch, text):
    import specrob.estimate.scores as scores
    s = score(text)
    x = torch.rand(30, 2, generator=torch.Generator().manual_seed(3))
    y = torch.zeros(30, dtype=torch.long)
    whole = estimate_score(s, Threshold(), x, y, samples=40, seed=2)
    monkeypatch.setattr(scores, "SLICE", 30 * 2 * 3)  # 14 slices of 3 samples
    sliced = estimate_score(s, Threshold(), x, y, samples=40, seed=2)
    assert sliced.value == whole.value and sliced.curve == whole.curve
    assert 0.0 < whole.value.value < 1.0  # the radius cuts the threshold: the check can tell
