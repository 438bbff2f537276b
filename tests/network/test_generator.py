"""Generator modules for the on-manifold kernel (seed 000, eq. 13): loading the user's module
and drawing dec(enc(x) + N(0, sigma^2))."""
from __future__ import annotations

import pytest
import torch

from specrob.network.generator import GeneratorError, load_generator, manifold_samples

IDENTITY = "def encode(x):\n    return x\n\ndef decode(z):\n    return z\n"


def test_with_an_identity_generator_the_draws_are_gaussian_around_the_point(tmp_path):
    (tmp_path / "g.py").write_text(IDENTITY)
    gen = load_generator(tmp_path / "g.py")
    x = torch.tensor([[0.2, 0.8, 0.5], [0.0, 1.0, 0.3]])
    pts = manifold_samples(gen, x, 0.06, 4000, torch.Generator().manual_seed(0))
    assert pts.shape == (4000, 2, 3)
    assert torch.allclose(pts.mean(0), x, atol=0.006)
    assert torch.allclose(pts.std(0), torch.full_like(x, 0.06), rtol=0.05)
    again = manifold_samples(gen, x, 0.06, 4000, torch.Generator().manual_seed(0))
    assert torch.equal(pts, again)  # seeded


def test_the_draws_decode_the_noisy_codes_of_the_encoder(tmp_path):
    """Code space of dimension 1: enc(x) = sum(x), dec(z) = z * (1, 2); the draws lie on that
    line, at codes with the noise's spread."""
    (tmp_path / "g.py").write_text(
        "import torch\ndef encode(x):\n    return x.sum(-1, keepdim=True)\n"
        "def decode(z):\n    return z * torch.tensor([1.0, 2.0])\n")
    x = torch.tensor([[0.25, 0.25]])
    pts = manifold_samples(load_generator(tmp_path / "g.py"), x, 0.1, 3000,
                           torch.Generator().manual_seed(1))
    assert torch.allclose(pts[..., 1], 2 * pts[..., 0])
    assert abs(pts[..., 0].mean().item() - 0.5) < 0.01
    assert abs(pts[..., 0].std().item() - 0.1) < 0.005


@pytest.mark.parametrize("text, message", [
    ("def encode(x):\n    return x\n", "defines encode"),
    ("raise ImportError('no torchvision here')\n", "loading the generator failed: ImportError"),
    ("def load():\n    return 1 / 0\n", "ZeroDivisionError"),
])
def test_unusable_modules_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "g.py").write_text(text)
    with pytest.raises(GeneratorError, match=message):
        load_generator(tmp_path / "g.py")


def test_a_missing_module_and_a_wrong_decode_shape_are_clear_errors(tmp_path):
    with pytest.raises(GeneratorError, match="not found"):
        load_generator(tmp_path / "missing.py")
    (tmp_path / "g.py").write_text(
        "def encode(x):\n    return x\ndef decode(z):\n    return z[:, :1]\n")
    with pytest.raises(GeneratorError, match="expected rows of 3 values"):
        manifold_samples(load_generator(tmp_path / "g.py"), torch.zeros(2, 3), 0.1, 5)
