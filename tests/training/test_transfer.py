"""Transfer by paired autoencoders (Tibo et al., seed 001, section 4): the `adapt` regime
learns T from unlabeled shifted inputs, and f(T(x)) beats f on the shifted test set where f
alone fails (contrast at severity 5 on digits; onnxruntime runs both exported graphs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import specrob
from specrob.corruptions import corrupt
from specrob.data import load_data
from specrob.training.config import TrainConfig
from specrob.training.transfer import (PairedAutoencoder, TransferError, build_pair,
                                       default_pair, load_shifted)
from tests.conftest import REPO, train_cli_output

DIGITS = load_data("digits")


@pytest.mark.parametrize("n", [784, 64, 10])
def test_the_default_pair_maps_rows_to_rows_in_the_unit_box(n):
    pair = default_pair(n)
    x = torch.rand(3, n)
    for out in (pair.transfer(x), pair.shifted_decoder(pair.encoder(x))):
        assert out.shape == (3, n) and 0 <= out.min() and out.max() <= 1
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in pair.modules())
    assert convolutional == (n in (784, 64))  # square images of side >= 8: the paper's E


def test_a_model_file_may_bring_its_own_pair(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import torch.nn as nn\n"
                    "def build(input_dim, classes): return nn.Linear(input_dim, classes)\n"
                    "def autoencoder_pair(input_dim):\n"
                    "    return nn.Linear(input_dim, 4), nn.Linear(4, input_dim), "
                    "nn.Linear(4, input_dim)\n")
    pair = build_pair(path, 64)
    assert isinstance(pair, PairedAutoencoder) and pair.encoder.out_features == 4
    path.write_text("def autoencoder_pair(input_dim): return 3\n")
    with pytest.raises(TransferError, match="must return a PairedAutoencoder"):
        build_pair(path, 64)


@pytest.mark.parametrize("arrays, message", [
    (dict(images=np.zeros((3, 64))), "no array 'x' \\(found images\\)"),
    (dict(x=np.zeros((3, 60))), "rows of 60 values; the data has 64"),
    (dict(x=np.full((3, 64), 255.0)), "in \\[0, 1\\] \\(scale pixels by 1/255\\)"),
    (dict(x=np.zeros(64)), "has shape \\(64,\\)"),
])
def test_unusable_shifted_files_are_refused_by_name(tmp_path, arrays, message):
    path = tmp_path / "s.npz"
    np.savez(path, **arrays)
    with pytest.raises(TransferError, match=message):
        load_shifted(path, 64)
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(TransferError, match="not a readable .npz"):
        load_shifted(tmp_path / "t.npz", 64)




@pytest.mark.slow
def test_the_adapted_classifier_beats_the_plain_one_on_the_shifted_test_set(tmp_path):
    import onnxruntime as ort
    half = len(DIGITS.x_train) // 2  # shifted inputs: corrupted copies of other points
    np.savez(tmp_path / "shifted.npz",
             x=corrupt(DIGITS.x_train[half:], "contrast", severity=5, seed=1).reshape(-1, 8, 8))
    config = TrainConfig(regime="adapt", shifted=str(tmp_path / "shifted.npz"), epochs=10,
                         transfer_steps=3, eval_points=64, eval_steps=2)
    result = specrob.train(REPO / "examples" / "digits_mlp.py", REPO / "specs" / "cr.rspec",
                           config=config, out=tmp_path / "run", progress=False)
    assert set(result.exports) == {"adapted"}
    x_shifted = corrupt(DIGITS.x_test, "contrast", severity=5, seed=2)

    def accuracy(path, x):
        session = ort.InferenceSession(str(path))
        return (session.run(None, {"x": x})[0].argmax(1) == DIGITS.y_test).mean()
    plain = accuracy(result.model, x_shifted)
    adapted = accuracy(result.exports["adapted"], x_shifted)
    assert plain < 0.5 and adapted > plain + 0.04  # measured: 0.231 and 0.306
    assert accuracy(result.exports["adapted"], DIGITS.x_test.astype(np.float32)) > 0.85

    again = specrob.train(REPO / "examples" / "digits_mlp.py", REPO / "specs" / "cr.rspec",
                          config=config, out=tmp_path / "run", progress=False)
    assert again.resumed_after == 10 and set(again.exports) == {"adapted"}
    # the run is bound to the shifted inputs' contents, not their path
    np.savez(tmp_path / "shifted.npz", x=DIGITS.x_train[:10])
    with pytest.raises(specrob.SpecrobError, match="differing: config.shifted_sha256"):
        specrob.train(REPO / "examples" / "digits_mlp.py", REPO / "specs" / "cr.rspec",
                      config=config, out=tmp_path / "run", progress=False)


@pytest.mark.parametrize("args, message", [
    (["--regime", "adapt"], "give them with --shifted PATH.npz"),
    (["--regime", "baseline", "--shifted", "x.npz"], "only --regime adapt"),
    (["--regime", "adapt", "--shifted", "missing.npz"], "--shifted missing.npz: no such file"),
])
def test_the_cli_says_what_adapt_needs(tmp_path, monkeypatch, args, message):
    assert message in train_cli_output(tmp_path, monkeypatch, *args)
