"""`specrob reproduce shaham`: the steepest-ascent steps, the convnet, and the smoke run end to
end (page, figures, JSON, cached rerun)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from specrob.reproduce.common import Options
from specrob.reproduce.shaham import run
from specrob.reproduce.shaham.claims import PAPER_TABLE1, clearly_above
from specrob.reproduce.shaham.experiment import (
    MNIST_SIGMA_32,
    NETS,
    SETS,
    adversarial_set,
    ce_gradient,
    fgsm_accuracy,
    steepest_step,
)
from tests.conftest import explicit_devices


# --- pure helpers ---------------------------------------------------------------------------
def test_steepest_step_linf_is_the_sign_step_clamped():
    x = torch.tensor([[0.0, 0.5, 1.0, 0.95]])
    g = torch.tensor([[-1.0, 2.0, 3.0, 0.5]])
    out = steepest_step(x, g, math.inf, 0.1)
    assert torch.allclose(out, torch.tensor([[0.0, 0.6, 1.0, 1.0]]))


def test_steepest_step_l2_has_the_radius_as_length():
    x = torch.full((2, 4), 0.5)
    g = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    out = steepest_step(x, g, 2.0, 0.25)
    assert torch.allclose(out[0] - x[0], torch.tensor([0.15, 0.2, 0.0, 0.0]))
    assert torch.equal(out[1], x[1])  # a zero gradient gives no step, not NaN


def test_steepest_step_l1_moves_one_pixel_that_can_move():
    # the largest |g| (index 0) points out of the box: the next one (index 2) moves instead
    x = torch.tensor([[1.0, 0.5, 0.2, 0.5]])
    g = torch.tensor([[5.0, 0.1, -2.0, 1.0]])
    out = steepest_step(x, g, 1.0, 1.0)
    assert torch.allclose(out, torch.tensor([[1.0, 0.5, 0.0, 0.5]]))
    assert int((out != x).sum()) == 1


def test_steepest_step_first_order_gain_is_largest_in_its_ball():
    """The step maximises <g, Δ> over the ball: no random point of the ball does better."""
    torch.manual_seed(0)
    x, g = torch.full((1, 16), 0.5), torch.randn(1, 16)
    for p, r in ((math.inf, 0.1), (2.0, 0.3), (1.0, 0.4)):
        best = ((steepest_step(x, g, p, r) - x) * g).sum()
        d = torch.randn(500, 16)
        norm = d.abs().amax(-1) if p == math.inf else d.norm(p=p, dim=-1)
        gains = (r * d / norm[:, None] * g).sum(-1)
        assert best >= gains.max() - 1e-6


def test_ce_gradient_matches_autograd_per_point_and_keeps_weights_clean():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3))
    x, y = torch.rand(7, 5), torch.randint(0, 3, (7,))
    g = ce_gradient(model, x, y, batch=3)
    assert all(p.grad is None for p in model.parameters())
    x1 = x[4:5].clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x1), y[4:5]).backward()
    assert torch.allclose(g[4], x1.grad[0], atol=1e-6)


def test_shaham_net_builds_for_digits_and_mnist_sizes():
    from specrob.network.model_file import ModelFileError, build_model
    from specrob.resources import examples_dir
    path = examples_dir() / "shaham_convnet.py"
    for n in (64, 784):
        net = build_model(path, n, 10, channels=(4, 8), hidden=16)
        assert net(torch.rand(3, n)).shape == (3, 10)
    with pytest.raises(ModelFileError, match="square images"):
        build_model(path, 10, 10)
    with pytest.raises(ModelFileError, match="takes no width"):
        build_model(path, 64, 10, width=3)


def test_the_authors_radii_in_pixel_units():
    """The released scripts' `intensity` values, in standardised units, times the pixel sd:
    0.055 / 0.55 / 0.55 for the authors' 32x32 MNIST (sd 0.2752), as the issue measured."""
    assert {s.name: s.standardised for s in SETS} == {"l_1": 2.0, "l_2": 2.0, "l_inf": 0.2}
    pixels = {s.name: s.in_pixels(MNIST_SIGMA_32).radius for s in SETS}
    assert pixels == pytest.approx({"l_1": 0.5504, "l_2": 0.5504, "l_inf": 0.05504})
    inf = SETS[-1].in_pixels(0.25)
    assert inf.radius == 0.05 and "= 0.05, p: norm = inf" in specrob_text(inf)


def specrob_text(s) -> str:
    from specrob.lang import printer
    return printer.declaration(s.prop())


def test_the_standardised_net_sees_what_the_authors_net_sees():
    """standardize=(m, sd) inside the net equals feeding (x - m) / sd to the same weights, so
    a step of r·sd in pixels is a step of r in the authors' units."""
    from specrob.network.model_file import build_model
    from specrob.resources import examples_dir
    path = examples_dir() / "shaham_convnet.py"
    torch.manual_seed(0)
    inside = build_model(path, 784, 10, channels=(2, 3), hidden=8, standardize=(0.3, 0.25))
    torch.manual_seed(0)
    plain = build_model(path, 784, 10, channels=(2, 3), hidden=8)
    x = torch.rand(4, 784)
    with torch.no_grad():
        assert torch.allclose(inside(x), plain((x - 0.3) / 0.25), atol=1e-5)
    with pytest.raises(Exception, match="standard deviation must be > 0"):
        build_model(path, 784, 10, standardize=(0.3, 0.0))


def test_the_robust_convnet_exports_and_verifies_with_its_input_batch_norm(tmp_path):
    """Standardisation and the input batch norm (after training: running statistics) go
    through the ONNX export (onnxruntime agrees) and through CROWN: verdicts are sound
    (an independent oracle: no PGD point in a verified ball breaks the property)."""
    import specrob
    from specrob.data import load_data
    from specrob.network.model_file import build_model
    from specrob.resources import examples_dir
    from specrob.training.export import export_onnx
    data = load_data("digits")
    torch.manual_seed(0)
    net = build_model(examples_dir() / "shaham_convnet.py", data.input_dim, data.classes,
                      channels=(3, 4), hidden=16, standardize=(0.3, 0.3), input_bn=True)
    net.train()
    with torch.no_grad():  # move the running statistics away from (0, 1)
        for _ in range(20):
            net(torch.tensor(data.x_train[:256]))
    net.eval()
    x0 = torch.tensor(data.x_test[:6])
    assert export_onnx(net, torch.zeros(1, data.input_dim), tmp_path / "m.onnx") < 1e-4
    (tmp_path / "p.rspec").write_text("property P = CR(eps = 0.002, p = inf)\n")
    result = specrob.verify(tmp_path / "m.onnx", tmp_path / "p.rspec", data="digits",
        out=tmp_path / "v", progress=False, config=specrob.VerifyConfig(points=6, timeout=20),
        centres=(x0, net(x0).argmax(-1).detach()))  # labels: its own predictions
    methods = {r["verdict"] for r in result.rows}
    assert methods <= {"verified", "falsified", "unknown"} and "verified" in methods


def test_adversarial_set_fools_the_model_from_correct_points_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3))
    x, y = torch.rand(200, 6), torch.randint(0, 3, (200,))
    A = adversarial_set(model, x, y, tuple(s.in_pixels(0.5) for s in SETS))
    assert set(A) == {s.name for s in SETS}
    for part in A.values():
        with torch.no_grad():
            assert (model(x[part["index"]]).argmax(-1) == part["y"]).all()  # correct before
            assert (model(part["x"]).argmax(-1) != part["y"]).all()          # wrong after
        assert ((part["x"] >= 0) & (part["x"] <= 1)).all()


def test_fgsm_accuracy_starts_at_clean_accuracy_and_falls():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3))
    x, y = torch.rand(300, 6), torch.randint(0, 3, (300,))
    acc = fgsm_accuracy(model, x, y, (0.0, 0.1, 0.5))
    with torch.no_grad():
        assert acc[0] == pytest.approx((model(x).argmax(-1) == y).float().mean().item())
    assert acc[0] >= acc[1] >= acc[2]  # a linear model: the sign step only lowers the margin


def test_clearly_above():
    assert clearly_above(0.5, 0.3, 1000)
    assert not clearly_above(0.31, 0.30, 1000)
    assert not clearly_above(0.3, 0.5, 1000)


# --- the smoke run --------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_run_writes_the_page_and_reuses_its_networks(tmp_path):
    opts = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    with explicit_devices():  # every tensor on the run's device: the --device oracle
        page = run(opts, "specrob reproduce shaham --smoke")
    text = page.read_text()
    for heading in ("## Table 1", "## Figure 3", "## Setup", "## Training", "## Seeds",
                    "## How this differs from the authors' experiments",
                    "## The paper's claims, checked"):
        assert heading in text
    for number in ("99.09", "99.16", "99.28", "99.33", "33.83", "76.55", "79.96", "1203"):
        assert number in text
    for png in ("fig3-fgsm.png", "fig2-A-samples.png"):
        path = tmp_path / "out" / "shaham" / png
        assert path.exists() and path.stat().st_size > 1000
        assert f"shaham/{png}" in text

    record = json.loads((tmp_path / "out" / "shaham.json").read_text())
    assert {"setup", "table1", "fgsm", "training", "claims", "seeds", "strength"} <= set(record)
    sd = record["setup"]["net"]["standardisation"]["sigma"]
    for name, radii in record["setup"]["uncertainty_sets"].items():
        assert radii["pixels"] == pytest.approx(radii["standardised"] * sd, rel=1e-3)
    assert set(record["seeds"]) == {"0", "1"}  # the smoke budget: two seeds
    assert record["seeds"]["0"]["clean"] == {n: v["clean"] for n, v in
                                             record["table1"]["nets"].items()}
    assert record["setup"]["optimizer"]["name"] == "sgd"
    t1 = record["table1"]
    assert set(t1["nets"]) == set(NETS) == set(PAPER_TABLE1)
    assert t1["A_size"] == sum(t1["A_counts"].values())
    for name, v in t1["nets"].items():
        assert 0.0 <= v["clean"] <= 1.0
        assert v["A"] is None or 0.0 <= v["A"] <= 1.0
    if t1["A_size"]:
        assert t1["nets"]["baseline"]["A"] == 0.0  # A is made of the baseline's mistakes
    fgsm = record["fgsm"]
    assert fgsm["eps"][0] == 0.0 and fgsm["eps"] == sorted(fgsm["eps"])
    for name in NETS:
        acc = fgsm["accuracy"][name]
        assert len(acc) == len(fgsm["eps"]) and all(0.0 <= a <= 1.0 for a in acc)
        assert acc[0] == pytest.approx(t1["nets"][name]["clean"])  # eps 0 = clean accuracy
    assert len(record["claims"]) == 5
    assert all(isinstance(c["holds"], bool) for c in record["claims"])

    page2 = run(opts, "specrob reproduce shaham --smoke")
    again = json.loads((tmp_path / "out" / "shaham.json").read_text())
    assert again["table1"] == t1 and again["fgsm"] == fgsm
    assert not any(k.startswith("train ") for k in again["seconds"])  # nothing retrained
    assert page2 == page
