"""The Marabou back end on real Marabou (no mocks): small networks exported from torch to ONNX
and loaded into specrob's IR; every "unsat" agrees with a dense grid search of the 2-D input
region, every "sat" counterexample lies in the region and violates the body on torch and on
onnxruntime (up to a tie where the negation was relaxed), a body violated on the grid is "sat",
and the encoding of every supported node reproduces torch's outputs pointwise."""
from __future__ import annotations

import copy
import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from specrob.network import Network, load_onnx_checked
from specrob.network.ir import Affine, Relu, Sigmoid
from specrob.lang import query as q
from specrob.verification.marabou import STATUSES, MarabouResult, solve_query, supports

import maraboupy  # noqa: E402,F401 - a required dependency: its absence must fail, not skip

GRID = 400
TOL = 1e-4  # float32 (onnxruntime) against Marabou's float64 values


# --- networks -------------------------------------------------------------------------------

class Clamped(nn.Module):
    """A module followed by clamp(low, high) (exported as ONNX Clip)."""

    def __init__(self, body: nn.Module, low: float | None = -1.0, high: float | None = 1.0):
        super().__init__()
        self.body, self.low, self.high = body, low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.body(x), self.low, self.high)


class Residual(nn.Module):
    """Conv, ReLU, BatchNorm, MaxPool (padded), grouped strided Conv, AveragePool (padded,
    without the padding in the count), LeakyReLU(1.5), a variable-minus-variable Sub, a Div by
    a constant and a one-sided clamp: one of every node kind the back end encodes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2)
        self.avg = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
        self.leaky = nn.LeakyReLU(1.5)
        self.flat = nn.Flatten()
        self.a = nn.Linear(36, 3)
        self.b = nn.Linear(36, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.bn(torch.relu(self.conv1(x))))  # not folded into the Conv
        h = self.flat(self.leaky(self.avg(self.conv2(h))))
        return torch.clamp((self.a(h) - self.b(h)) / 2.0, min=-0.5)


@dataclass
class Case:
    """A network as specrob's IR, its ONNX file and torch modules (float32, and float64 for
    exact reference values)."""

    net: Network
    path: Path
    module: nn.Module
    module64: nn.Module

    def f(self, x: np.ndarray) -> np.ndarray:
        """Outputs in float64 (the float64 torch module), (B, n) -> (B, m)."""
        with torch.no_grad():
            return self.module64(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def onnxruntime(self, x: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        x = np.asarray(x, np.float32).reshape(-1, *self.net.input_shape)
        return session.run(None, {"x": x})[0].reshape(len(x), -1).astype(np.float64)

    def torch32(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def export(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> Case:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *input_shape),), str(path), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=17, dynamo=False)
    net, module = load_onnx_checked(path)
    return Case(net, path, module, copy.deepcopy(module).double())


def _mlp(act: type[nn.Module] | nn.Module, hidden: int = 16, layers: int = 2,
         n: int = 2, m: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n if i == 0 else hidden, hidden),
                 act() if isinstance(act, type) else act]
    return nn.Sequential(*mods, nn.Linear(hidden, m))


def _spread(model: nn.Module, seed: int, out_scale: float = 1.0) -> nn.Module:
    """Weights whose first-layer hyperplanes all cross the box [0, 1]^2, so that the classes
    and the ReLU phases change inside it (torch's default weights are nearly constant there)."""
    rng = np.random.default_rng(seed)
    linears = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
    with torch.no_grad():
        for k, lin in enumerate(linears):
            out, inp = lin.weight.shape
            w = rng.standard_normal((out, inp)) * (3.0 if k == 0 else 1.5 / np.sqrt(inp))
            b = (-(w @ rng.random((inp, out))).diagonal() if k == 0
                 else rng.standard_normal(out) * 0.1)
            if k == len(linears) - 1:
                w, b = w * out_scale, b * out_scale
            lin.weight.copy_(torch.as_tensor(w)), lin.bias.copy_(torch.as_tensor(b))
    return model


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    folder = tmp_path_factory.mktemp("marabou")
    relu = _spread(_mlp(nn.ReLU), 0)
    clamp = Clamped(_spread(_mlp(nn.ReLU, layers=1), 1, out_scale=0.6))
    leaky = _spread(_mlp(nn.LeakyReLU(0.1)), 2)
    return {"relu": export(relu, (2,), folder / "relu.onnx"),
            "clamp": export(clamp, (2,), folder / "clamp.onnx"),
            "leaky": export(leaky, (2,), folder / "leaky.onnx")}


# --- queries and the brute-force reference --------------------------------------------------

def atom(m: int, n: int, out: dict[int, float] | None = None, inp: dict[int, float] | None = None,
         const: float = 0.0, op: str = "<=", norms: tuple[q.NormTerm, ...] = ()) -> q.Atom:
    o, i = np.zeros((1, m)), np.zeros((1, n))
    for k, v in (out or {}).items():
        o[0, k] = v
    for k, v in (inp or {}).items():
        i[0, k] = v
    return q.Atom(q.Affine(o, i, np.array([const])), norms, op)


def cr_body(m: int, n: int, y: int) -> q.Formula:
    """argmax f(x) == y: z_y - z_j > 0 for every j != y."""
    return q.And(tuple(atom(m, n, {y: 1.0, j: -1.0}, op=">") for j in range(m) if j != y))


def linf_atoms(m: int, n: int, z0: np.ndarray, delta: float) -> q.Formula:
    """||z - z0||_inf <= delta as 2m linear atoms."""
    items = []
    for i in range(m):
        items.append(atom(m, n, {i: 1.0}, const=-z0[i] - delta))
        items.append(atom(m, n, {i: -1.0}, const=z0[i] - delta))
    return q.And(tuple(items))


def diff_norm(m: int, n: int, centre: np.ndarray, p: float, weight: float,
              outputs: bool) -> q.NormTerm:
    """weight * ||z - centre||_p (outputs) or weight * ||x - centre||_p (inputs)."""
    L = m if outputs else n
    eye = np.eye(L)
    vec = (q.Affine(eye, np.zeros((L, n)), -centre) if outputs
           else q.Affine(np.zeros((L, m)), eye, -centre))
    return q.NormTerm(weight, vec, p)


def values(a: q.Atom, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    v = z @ a.lin.out[0] + x @ a.lin.inp[0] + a.lin.const[0]
    for t in a.norms:
        w = z @ t.vec.out.T + x @ t.vec.inp.T + t.vec.const
        v = v + t.weight * (np.abs(w).max(1) if math.isinf(t.p) else np.abs(w).sum(1))
    return v


def holds(f: q.Formula, z: np.ndarray, x: np.ndarray, tol: float) -> np.ndarray:
    """Where f holds with slack tol: tol > 0 loosens every atom (ties count), tol < 0 demands
    a margin (a robust truth)."""
    if isinstance(f, q.Const):
        return np.full(len(z), f.value)
    if isinstance(f, q.Atom):
        v = values(f, z, x)
        return {"<=": v <= tol, "<": v <= tol, ">=": v >= -tol, ">": v >= -tol,
                "==": np.abs(v) <= tol, "!=": np.abs(v) >= -tol}[f.op]
    parts = np.stack([holds(i, z, x, tol) for i in f.items])
    return parts.all(0) if isinstance(f, q.And) else parts.any(0)


def grid(region: q.InputRegion) -> np.ndarray:
    """A GRID x GRID grid of the box (its vertices included), kept to the ball for p = 1, 2."""
    lo, hi = region.box_low, region.box_high
    a, b = np.meshgrid(np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID))
    x = np.stack([a.ravel(), b.ravel()], 1)
    if not math.isinf(region.p):
        x = x[np.linalg.norm(x - region.centre, ord=region.p, axis=1) <= region.eps + 1e-12]
    return x


def check(case: Case, query: q.Query, expect: str | None = None, **options) -> MarabouResult:
    """Solve and check the answer against the grid and the reference implementations."""
    options.setdefault("timeout", 20)
    r = solve_query(case.net, query, **options)
    assert r.status in ("sat", "unsat"), r
    neg = q.negate(query.body)
    x = grid(query.region)
    z = case.f(x)
    robust = holds(neg, z, x, -TOL)  # grid points that violate the body by a margin
    if r.status == "unsat":
        assert not robust.any(), f"unsat, but the grid violates the body at {x[robust][0]}"
    else:
        cx = r.counterexample
        region = query.region
        assert cx.shape == (case.net.input_size,) and r.outputs.shape == (case.net.output_size,)
        assert np.all(cx >= region.box_low) and np.all(cx <= region.box_high)
        if region.p == 1:
            assert np.abs(cx - region.centre).sum() <= region.eps + 1e-6
        np.testing.assert_allclose(r.outputs, case.f(cx[None])[0], atol=1e-6)
        for outputs in (case.torch32(cx[None]), case.onnxruntime(cx[None])):
            assert holds(neg, outputs, cx[None], TOL)[0], (cx, outputs)
    if robust.any():
        assert r.status == "sat"
    if expect is not None:
        assert r.status == expect, r
    return r


def region(centre, eps: float, p: float = math.inf) -> q.InputRegion:
    return q.InputRegion(np.asarray(centre, float), eps, p, 0.0, 1.0)


CENTRES = ((0.5, 0.5), (0.2, 0.7))


# --- the tests -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "clamp", "leaky"])
@pytest.mark.parametrize("p", [math.inf, 1])
def test_classification_robustness(cases, name, p):
    """CR (one query with one disjunction over the classes) on small and large balls: both
    answers occur and each agrees with the grid."""
    case = cases[name]
    seen = set()
    for centre in CENTRES:
        x0 = np.array(centre)
        y = int(case.f(x0[None])[0].argmax())
        for eps in (0.01, 0.05, 0.15, 0.4):
            eps *= 2 if p == 1 else 1  # the l_1 ball of radius 2 eps is about as large
            # in the worker process with its hard kill, as specrob runs Marabou: in-process,
            # a loaded machine once left Marabou's local search cycling past its own timeout
            # (the in-process path is compared with the worker on digits below)
            r = check(case, q.Query(cr_body(3, 2, y), region(x0, eps, p), 3))
            assert not r.relaxed_strict  # the negation of > is the non-strict <=
            seen.add(r.status)
    assert seen == {"sat", "unsat"}


@pytest.mark.parametrize("name", ["relu", "clamp", "leaky"])
def test_output_bound_as_atoms_and_as_norm(cases, name):
    """||f(x) - f(x0)||_inf <= delta, once as 2m atoms and once with an l_inf NormTerm: sat
    below the grid's largest deviation, unsat well above it, and the same answer both ways."""
    case = cases[name]
    x0 = np.array(CENTRES[0])
    z0 = case.f(x0[None])[0]
    reg = region(x0, 0.2)
    deviation = np.abs(case.f(grid(reg)) - z0).max()
    for factor, expect in ((0.5, "sat"), (0.95, "sat"), (1.3, "unsat")):
        delta = factor * deviation
        a = check(case, q.Query(linf_atoms(3, 2, z0, delta), reg, 3), expect)
        norm = atom(3, 2, const=-delta, norms=(diff_norm(3, 2, z0, math.inf, 1.0, True),))
        b = check(case, q.Query(norm, reg, 3), expect)
        assert a.status == b.status and a.relaxed_strict and b.relaxed_strict


@pytest.mark.parametrize("name", ["relu", "leaky"])
def test_lipschitz_style_atom(cases, name):
    """LR: ||f(x) - f(x0)||_1 - L ||x - x0||_inf <= 0, norms of outputs and of inputs. Its
    negation holds with equality at x = x0, so without a strict margin the answer is that tie;
    with a margin a small L gives a real violation, while a large L (true) makes Marabou run
    past its own timeout: the worker process is killed and the next query still runs."""
    case = cases[name]
    x0 = np.array(CENTRES[1])
    z0 = case.f(x0[None])[0]
    reg = region(x0, 0.1)
    x = grid(reg)
    far = np.abs(x - x0).max(1) > 0
    ratio = (np.abs(case.f(x[far]) - z0).sum(1) / np.abs(x[far] - x0).max(1)).max()

    def body(L: float) -> q.Atom:
        return atom(3, 2, norms=(diff_norm(3, 2, z0, 1, 1.0, True),
                                 diff_norm(3, 2, x0, math.inf, -L, False)))

    r = check(case, q.Query(body(2 * ratio), reg, 3), "sat")
    assert r.relaxed_strict and "tie" in r.message
    assert abs(values(body(2 * ratio), case.f(r.counterexample[None]),
                      r.counterexample[None])[0]) < TOL
    r = check(case, q.Query(body(0.5 * ratio), reg, 3), "sat", strict_margin=1e-4)
    assert values(body(0.5 * ratio), case.f(r.counterexample[None]),
                  r.counterexample[None])[0] >= 1e-4 - 1e-9
    r = solve_query(case.net, q.Query(body(2 * ratio), reg, 3), strict_margin=1e-4,
                    timeout=1, kill_after=2)
    assert r.status in ("timeout", "unsat"), r
    if "killed" in r.message:  # Marabou overran its own timeout: the worker was killed
        assert "killed after 2 s" in r.message
    check(case, q.Query(body(0.5 * ratio), reg, 3), "sat", strict_margin=1e-4)


def test_l1_region_exact_and_l2_relaxed(cases):
    """An l_1 ball is encoded exactly (counterexamples inside it); an l_2 ball is searched as
    its box and says so."""
    case = cases["relu"]
    x0 = np.array(CENTRES[0])
    y = int(case.f(x0[None])[0].argmax())
    for eps in (0.05, 0.3, 0.6):
        r = check(case, q.Query(cr_body(3, 2, y), region(x0, eps, 1), 3))
        assert not r.relaxed_region
    reg = region(x0, 0.6, 2)
    r = solve_query(case.net, q.Query(cr_body(3, 2, y), reg, 3))
    assert r.relaxed_region
    if r.status == "sat":
        assert "l_2 ball" in r.message
        assert np.all(r.counterexample >= reg.box_low) and np.all(r.counterexample <= reg.box_high)
    else:  # unsat on the box proves the ball
        assert r.status == "unsat"
        assert not holds(q.negate(cr_body(3, 2, y)), case.f(grid(reg)), grid(reg), -TOL).any()


def test_nested_and_or_with_input_atoms(cases):
    """A body with Or inside And inside Or (its negation needs a small DNF) and atoms over the
    inputs agrees with the grid."""
    case = cases["clamp"]
    m, n = 3, 2
    x0 = np.array(CENTRES[0])
    for eps in (0.05, 0.3):
        body = q.Or((q.And((atom(m, n, {0: 1, 1: -1}, op=">"), atom(m, n, {0: 1, 2: -1}, op=">"))),
                     q.And((atom(m, n, {1: 1, 0: -1}, op=">="),
                            q.Or((atom(m, n, {1: 1, 2: -1}, op=">"),
                                  atom(m, n, {2: 0.5}, {0: 1.0}, const=-0.6)))))))
        check(case, q.Query(body, region(x0, eps), m))
        # an atom mixing outputs and inputs, and an equality
        mixed = q.And((atom(m, n, {0: 1.0}, {0: 1.0, 1: -2.0}, const=-0.3, op="<"),
                       atom(m, n, {1: 1.0}, {1: 0.5}, const=0.2, op=">=")))
        check(case, q.Query(mixed, region(x0, eps), m))


def test_equalities(cases):
    """z_0 - z_1 != 0 negates to an equation: sat exactly where the grid changes sign (the
    counterexample is a tie); z_0 - z_1 == 0 negates to != 0, which is relaxed to true."""
    case = cases["relu"]
    m, n = 3, 2
    x0 = np.array(CENTRES[0])
    for eps in (0.02, 0.5):
        reg = region(x0, eps)
        d = case.f(grid(reg)) @ np.array([1.0, -1.0, 0.0])
        r = check(case, q.Query(atom(m, n, {0: 1, 1: -1}, op="!="), reg, m))
        if d.min() < -TOL and d.max() > TOL:
            assert r.status == "sat"
        if r.status == "sat":
            assert abs(case.f(r.counterexample[None])[0] @ [1.0, -1.0, 0.0]) < TOL
    r = check(case, q.Query(atom(m, n, {0: 1, 1: -1}, op="=="), region(x0, 0.02), m), "sat")
    assert r.relaxed_strict


def test_constant_bodies(cases):
    case = cases["leaky"]
    reg = region(CENTRES[0], 0.1)
    r = solve_query(case.net, q.Query(q.Const(True), reg, 3))
    assert r.status == "unsat" and r.counterexample is None
    r = check(case, q.Query(q.Const(False), reg, 3), "sat")
    # constant atoms (no variable terms) are decided exactly, strict or not
    zero = atom(3, 2, const=0.0, op="<")
    assert solve_query(case.net, q.Query(zero, reg, 3)).status == "sat"
    assert solve_query(case.net, q.Query(q.Or((zero, q.Const(True))), reg, 3)).status == "unsat"


def test_too_large_disjunction_is_an_error(cases):
    case = cases["relu"]
    m, n = 3, 2
    pairs = tuple(q.Or((atom(m, n, {0: 1.0}, const=-k, op=">"), atom(m, n, {1: 1.0}, const=k)))
                  for k in range(10))
    body = q.negate(q.Or((q.And(pairs), atom(m, n, {2: 1.0}))))  # 2^10 disjuncts after DNF
    r = solve_query(case.net, q.Query(body, region(CENTRES[0], 0.1), m))
    assert r.status == "error" and "disjunctive normal form" in r.message


def test_unsupported_sigmoid():
    rng = np.random.default_rng(0)
    net = Network("x", (2,), "y", (
        Affine(name="fc", op_type="Gemm", inputs=("x",), output="h", shape=(3,),
               weight=rng.standard_normal((3, 2)), bias=np.zeros(3)),
        Sigmoid(name="s1", op_type="Sigmoid", inputs=("h",), output="y", shape=(3,))))
    reason = supports(net)
    assert reason == "Sigmoid node 's1' is not piecewise linear"
    r = solve_query(net, q.Query(cr_body(3, 2, 0), region(CENTRES[0], 0.1), 3))
    assert r.status == "error" and r.message == reason and r.counterexample is None


def test_every_node_kind_matches_torch(tmp_path):
    """The encoding is exact node by node: with the input fixed (eps = 0), and at Marabou's own
    points of a box, Marabou's outputs are torch's (Conv with groups, stride and padding,
    BatchNorm, MaxPool and AveragePool with padding, LeakyReLU with alpha > 1, Sub of two
    variables, Div, one-sided Clip)."""
    torch.manual_seed(3)
    model = Residual()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    case = export(model, (1, 6, 6), tmp_path / "residual.onnx")
    assert supports(case.net) is None
    kinds = {type(node).__name__ for node in case.net.nodes}
    assert {"Conv", "BatchNorm", "Relu", "MaxPool", "AveragePool", "LeakyRelu", "Add", "Clip",
            "Affine", "Elementwise", "Reshape"} <= kinds
    rng = np.random.default_rng(0)
    for eps in (0.0, 0.0, 0.05):
        x0 = rng.random(36)
        r = solve_query(case.net, q.Query(q.Const(False), region(x0, eps), 3))
        assert r.status == "sat"
        assert np.abs(r.counterexample - x0).max() <= eps + 1e-12
        np.testing.assert_allclose(r.outputs, case.f(r.counterexample[None])[0], atol=1e-6)


def test_timeout():
    """A hard query (an upper bound slightly above the sampled maximum of a 20-100-100-100-2
    ReLU network on a wide box) with a 1 s timeout (Marabou counts whole seconds) times out:
    it was measured unsolved after 6 s."""
    rng = np.random.default_rng(5)
    sizes, nodes, prev = [20, 100, 100, 100, 2], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        nodes.append(Affine(name=f"fc{i}", op_type="Gemm", inputs=(prev,), output=f"h{i}",
                            shape=(b,), weight=rng.standard_normal((b, a)) / np.sqrt(a),
                            bias=rng.standard_normal(b) * 0.1))
        prev = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(Relu(name=f"r{i}", op_type="Relu", inputs=(prev,), output=f"a{i}",
                              shape=(b,)))
            prev = f"a{i}"
    net = Network("x", (20,), prev, tuple(nodes))
    x0 = rng.random(20)
    with torch.no_grad():
        from specrob.network import to_torch
        xs = np.clip(x0 + rng.uniform(-0.3, 0.3, (200_000, 20)), 0, 1)
        top = to_torch(net)(torch.as_tensor(xs, dtype=torch.float32))[:, 0].max().item()
    body = atom(2, 20, {0: 1.0}, const=-(top + 0.05))
    r = solve_query(net, q.Query(body, region(x0, 0.3), 2), timeout=1)
    assert r.status == "timeout", r
    assert r.counterexample is None


def test_the_worker_process_and_this_one_give_the_same_verdicts(tmp_path):
    """The worker process (`python -m specrob.verification.marabou.worker`) and an in-process
    solve run the same code: the same status for every CR query at small eps on a 64-32-10
    clamp MLP, each one of STATUSES."""
    torch.manual_seed(4)
    case = export(Clamped(_mlp(nn.ReLU, hidden=32, layers=1, n=64, m=10)), (64,),
                  tmp_path / "mlp.onnx")
    rng = np.random.default_rng(0)
    centres = rng.random((12, 64))
    labels = case.f(centres).argmax(1)
    verdicts = {}
    for isolate in (True, False):
        verdicts[isolate] = [solve_query(case.net, q.Query(cr_body(10, 64, int(y)),
                                                           region(x0, 0.005), 10),
                                         isolate=isolate).status
                             for x0, y in zip(centres, labels)]
    assert verdicts[True] == verdicts[False]
    assert set(verdicts[True]) <= set(STATUSES) and "unsat" in verdicts[True]


def test_rejects_malformed_calls(cases):
    case = cases["relu"]
    with pytest.raises(ValueError, match="network has"):
        solve_query(case.net, q.Query(q.Const(False), q.InputRegion(np.zeros(3), 0.1, math.inf,
                                                                    0.0, 1.0), 3))
    with pytest.raises(ValueError, match="timeout"):
        solve_query(case.net, q.Query(q.Const(False), region(CENTRES[0], 0.1), 3), timeout=0)


# --- numerically unsafe UNSATs (shared case bughunt/22, Marabou issue #485) ------------------

def test_an_unsat_at_large_magnitudes_needs_a_second_configuration_to_count():
    """On 1e3-scaled ReLU MLPs (outputs ~1e7) Marabou's bound tightening answered UNSAT for
    "f(x)[i] <= T on the ball" although a point of the ball exceeds T. None of these queries may
    come back "unsat" (the witnesses are part of the case)."""
    from tests.conftest import SHARED
    from specrob.network import load_onnx
    case = SHARED / "cases" / "bughunt" / "22-marabou-large-magnitude"
    found = np.load(case / "hunt_found.npy", allow_pickle=True)
    assert len(found) == 10
    for seed, _, i, T, _, x0, witness in found:
        net = load_onnx(case / f"hunt{seed}.onnx")
        region = q.InputRegion(np.array(x0), 0.05, math.inf, 0.0, 1.0)
        out = np.zeros((1, 3))
        out[0, i] = 1.0
        query = q.Query(q.Atom(q.Affine(out, np.zeros((1, 5)), np.array([-T])), (), "<="),
                        region, 3)
        assert np.abs(np.array(witness) - x0).max() <= 0.05 + 1e-6  # float32 witnesses
        result = solve_query(net, query, timeout=30)
        assert result.status != "unsat", (seed, i, result.message)


def test_an_unsat_at_small_magnitudes_is_accepted_and_says_why(tmp_path):
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight[:] = torch.tensor([[1.0, -1.0]])  # f(x) = x_0 - x_1
        lin.bias.zero_()
    net = export(lin, (2,), tmp_path / "diff.onnx").net
    region = q.InputRegion(np.array([0.5, 0.5]), 0.1, math.inf, 0.0, 1.0)
    query = q.Query(q.Atom(q.Affine(np.array([[1.0]]), np.zeros((1, 2)), np.array([-0.3])),
                           (), "<="), region, 1)  # f(x) <= 0.3 holds: max is 0.2
    result = solve_query(net, query, timeout=10)
    assert result.status == "unsat" and "numerically safe" in result.message
