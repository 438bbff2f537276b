"""A model file written the usual way for images ((B, C, H, W) input) trains, exports,
evaluates and verifies on specrob's flat data (shared case newcomer/cnn_*)."""
from __future__ import annotations

import json

import torch
from torch import nn
from typer.testing import CliRunner

from specrob.cli import app
from specrob.network.model_file import adapt_to_data
from tests.conftest import REPO

CR = str(REPO / "specs" / "cr.rspec")
IMAGE_CNN = '''
import torch.nn as nn
def build(classes=10, **_):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, classes))
'''
VIEW_CNN = '''
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, classes)
    def forward(self, x):
        x = torch.relu(self.conv(x.view(x.size(0), 1, 8, 8)))
        return self.fc(x.view(x.size(0), -1))
def build(classes=10, **_):
    return Net(classes)
'''


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_an_image_model_is_fed_reshaped_points_and_keeps_its_state_dict():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 10))
    keys = set(net.state_dict())
    adapted = adapt_to_data(net, (8, 8), 10)
    assert adapted(torch.rand(5, 64)).shape == (5, 10)
    assert set(adapted.state_dict()) == keys
    flat = nn.Sequential(nn.Linear(64, 10))
    assert adapt_to_data(flat, (8, 8), 10) is flat


def test_image_and_view_cnns_run_through_every_command(tmp_path):
    for name, text in (("image", IMAGE_CNN), ("view", VIEW_CNN)):
        model = tmp_path / f"{name}.py"
        model.write_text(text)
        out = tmp_path / name
        run("train", model, CR, "--epochs", "1", "--steps", "2", "--quiet", "--out", out)
        run("eval", model, CR, "--checkpoint", out, "--points", "4", "--samples", "4",
            "--steps", "2", "--quiet", "--out", out / "eval")
        run("verify", out / "model.onnx", CR, "--set", "eps=0.01", "--points", "4", "--quiet",
            "--out", out / "verify")
        summary = json.loads((out / "verify" / "summary.json").read_text())
        assert summary["points"] == 4
        run("export", out / "model.onnx", CR, "--points", "2", "--out", out / "vnnlib")
