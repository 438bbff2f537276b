"""The Wasserstein autoencoder behind the on-manifold kernel: its MMD, its training (resumable,
bound to its settings and data) and the generator module it writes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from specrob.data import load_data
from specrob.network.generator import load_generator, manifold_samples
from specrob.training.autoencoder import (AutoencoderError, load_autoencoder, mmd_imq,
                                          train_autoencoder)
from specrob.training.config import AutoencoderConfig
from specrob.errors import OptionError

DIGITS = load_data("digits")


def test_mmd_matches_a_pairwise_loop():
    torch.manual_seed(0)
    z, p = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64) + 0.5

    def k(a, b):
        d2 = float(((a - b) ** 2).sum())
        return sum(2 * 3 * s / (2 * 3 * s + d2) for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))
    n = 6
    same = sum(k(z[i], z[j]) + k(p[i], p[j]) for i, j in itertools.permutations(range(n), 2))
    cross = sum(k(z[i], p[j]) for i in range(n) for j in range(n))
    expected = same / (n * (n - 1)) - 2 * cross / n ** 2
    assert mmd_imq(z, p).item() == pytest.approx(expected, rel=1e-12)


def test_mmd_tells_a_shifted_distribution_from_the_same_one():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    assert abs(mmd_imq(a, b).item()) < 0.05
    assert mmd_imq(a + 1.0, b).item() > 0.5


def test_training_lowers_the_reconstruction_error_and_resumes_exactly(tmp_path):
    config = AutoencoderConfig(epochs=3, latent=4, batch_size=64)
    module = train_autoencoder(DIGITS.x_train, tmp_path / "once", config, progress=False)
    history = __import__("json").loads((tmp_path / "once" / "autoencoder.json").read_text())
    recon = [h["reconstruction"] for h in history["history"]]
    assert recon[-1] < 0.8 * recon[0]
    train_autoencoder(DIGITS.x_train, tmp_path / "twice",
                      AutoencoderConfig(epochs=1, latent=4, batch_size=64), progress=False)
    train_autoencoder(DIGITS.x_train, tmp_path / "twice", config, progress=False)
    a, b = (load_autoencoder(tmp_path / f / "autoencoder.pt") for f in ("once", "twice"))
    for (name, u), (_, v) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(u, v), name
    # the module it writes is a generator: draws near the reconstructions, in [0, 1]
    gen = load_generator(module)
    x = torch.tensor(DIGITS.x_test[:20])
    pts = manifold_samples(gen, x, 0.06, 5, torch.Generator().manual_seed(0))
    assert pts.shape == (5, 20, 64) and pts.min() >= 0 and pts.max() <= 1
    with torch.no_grad():
        recon_x = gen.decode(gen.encode(x))
    assert (pts - recon_x).abs().mean() < (pts - x).abs().mean()


def test_a_folder_of_other_settings_or_data_is_refused(tmp_path):
    train_autoencoder(DIGITS.x_train[:200], tmp_path, AutoencoderConfig(epochs=1, latent=4),
                      progress=False)
    with pytest.raises(AutoencoderError, match="other settings or data"):
        train_autoencoder(DIGITS.x_train[:200], tmp_path,
                          AutoencoderConfig(epochs=1, latent=5), progress=False)
    with pytest.raises(AutoencoderError, match="other settings or data"):
        train_autoencoder(DIGITS.x_train[:100], tmp_path,
                          AutoencoderConfig(epochs=1, latent=4), progress=False)


def test_unreadable_files_and_bad_options_are_clear_errors(tmp_path):
    (tmp_path / "a.pt").write_text("no")
    with pytest.raises(AutoencoderError, match="not a readable autoencoder"):
        load_autoencoder(tmp_path / "a.pt")
    torch.save({"weights": np.zeros(2)}, tmp_path / "b.pt")
    with pytest.raises(AutoencoderError):
        load_autoencoder(tmp_path / "b.pt")
    with pytest.raises(OptionError, match="batch_size"):
        AutoencoderConfig(batch_size=1)


def test_the_cli_writes_a_generator_that_eval_reads(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from specrob.cli import app
    from tests.conftest import REPO
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["autoencoder", "--out", "ae", "--epochs", "1",
                                      "--latent", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "--set generator=ae/autoencoder.py" in " ".join(result.output.split())
    train = CliRunner().invoke(app, ["train", str(REPO / "examples" / "digits_mlp.py"),
                                     str(REPO / "specs" / "cr.rspec"), "--epochs", "1",
                                     "--quiet", "--out", "run"])
    assert train.exit_code == 0, train.output
    spec = tmp_path / "m.rspec"
    spec.write_text('import "manifold.rspec"\n'
                    'score s = on_manifold_average(generator = "ae/autoencoder.py")\n')
    ev = CliRunner().invoke(app, ["eval", "run/model.onnx", str(spec), "--out", "ev",
                                  "--points", "20", "--samples", "5", "--grid", "4"])
    assert ev.exit_code == 0, ev.output
    assert "score s:" in ev.output
    bad = CliRunner().invoke(app, ["autoencoder", "--out", "ae2", "--batch-size", "1"])
    assert bad.exit_code == 2
