"""Tibo et al. (seed 001), section 4, the experiment: robustness to a distribution shift by
transfer with paired autoencoders, on a cut-down grid. A classifier trained on clean data
(PLAIN), one trained on clean plus Gaussian-noised copies (GAUSS), and adapted classifiers
f(T(x)) whose transfer map T comes from a pair of autoencoders trained on clean and unlabeled
corrupted inputs (`adapt` regime): one pair per corruption (TRANSFER-SEPARATE) or one for all
corruptions pooled (TRANSFER-JOINT), for each number N_c of corrupted training inputs per
corruption. Measured: accuracy on each corrupted test set and on the clean one.

The corruptions are `specrob.corruptions` families applied to Fashion-MNIST (the paper uses
C-MNIST's 15 corruptions of MNIST); the corrupted training inputs of each corruption come from
training points not used as clean ones, as in the paper.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from specrob.corruptions import corrupt
from specrob.data import Dataset
from specrob.network.model_file import build_model
from specrob.reproduce.common import Run, accuracy, describe_data
from specrob.resources import examples_dir

# the trainer needs a property for its per-epoch check; nothing here depends on it
PROPERTY = "property P = CR(eps = 0.1, p = inf)"
GAUSS_KIND, GAUSS_SEVERITY = "gaussian-noise", 5  # N(0, 0.1^2) per pixel: the paper's GAUSS


@dataclass(frozen=True)
class Budget:
    """The knobs of one run."""

    clean: int                   # clean training points N_o
    test: int | None             # test points of every test set (None: all)
    shifted: tuple[int, ...]     # N_c: corrupted training inputs per corruption
    corruptions: tuple[str, ...]  # specrob.corruptions families
    severity: int
    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    transfer_steps: int = 2      # the pair's steps per classifier step (paper: 100 vs 50 epochs)
    hidden: int = 256
    eval_points: int = 256
    eval_steps: int = 5


# 3 corruptions x 2 sample sizes x 2 setups (and PLAIN, GAUSS), one seed: about 1.7 h of one
# core here (an adapted classifier's epoch: 75 s, measured alone; PLAIN's: 2 s)
FULL = Budget(clean=20000, test=None, shifted=(128, 1024),
              corruptions=("impulse-noise", "rotate", "scale"), severity=5, epochs=10)
PAPER = None  # the paper's grid (15 corruptions x 4 sizes, 60000 points, 100 epochs): days here
SMOKE = Budget(clean=1000, test=300, shifted=(32, 64),
               corruptions=("impulse-noise", "rotate", "scale"), severity=5, epochs=1,
               batch_size=64, transfer_steps=1, hidden=64, eval_points=64, eval_steps=2)
PAGE_ONLY = ("dataset",)


def build_net(input_dim: int, classes: int, *, hidden: int, seed: int) -> torch.nn.Module:
    """f: examples/mlp_two_hidden.py, the same initial weights for every classifier of a run
    (the paper's f is a small convnet with dropout: see the page)."""
    torch.manual_seed(seed)
    return build_model(examples_dir() / "mlp_two_hidden.py", input_dim, classes, hidden=hidden)


def shifted_rows(data: Dataset, budget: Budget, k: int, count: int) -> np.ndarray:
    """The corrupted training inputs of corruption k: `count` training points after the clean
    ones and after the other corruptions' (never a corrupted copy of a clean training point;
    a smaller N_c is a prefix of a larger), corrupted with seed 100 + k."""
    start = budget.clean + k * max(budget.shifted)
    rows = data.x_train[start:start + count]
    return corrupt(rows, budget.corruptions[k], severity=budget.severity, seed=100 + k)


def test_sets(data: Dataset, budget: Budget) -> dict[str, np.ndarray]:
    """The clean test inputs and one corrupted copy per corruption (seed 200 + k)."""
    x = np.asarray(data.x_test[:budget.test], dtype=np.float32)
    out = {"clean": x}
    for k, kind in enumerate(budget.corruptions):
        out[kind] = corrupt(x, kind, severity=budget.severity, seed=200 + k)
    return out


def onnx_accuracy(path, x: np.ndarray, y: np.ndarray, batch: int = 2048) -> float:
    """The accuracy of an exported network (onnxruntime) on rows x with labels y."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    right = 0
    for i in range(0, len(y), batch):
        logits = np.asarray(session.run(None, {"x": x[i:i + batch]})[0])
        right += int((logits.argmax(1) == y[i:i + batch]).sum())
    return right / max(len(y), 1)


def measure(run: Run, budget: Budget) -> dict:
    """Train PLAIN, GAUSS and the adapted classifiers (or reload them), then their accuracy
    on every test set; every network and accuracy is cached in <work>."""
    import specrob
    from specrob.training.trainer import TrainConfig

    need = budget.clean + len(budget.corruptions) * max(budget.shifted)
    data = run.dataset("fashion-mnist", train=need, test=budget.test)
    if len(data.y_train) < need:
        budget = replace(budget, clean=len(data.y_train) - len(budget.corruptions)
                         * max(budget.shifted))
        run.note(f"{data.name} has {len(data.y_train)} training points: {budget.clean} clean")
    run.settings(budget=asdict(budget))
    prop = specrob.loads(PROPERTY)["P"]
    seed = run.options.seed
    clean = Dataset(data.name, data.x_train[:budget.clean], data.y_train[:budget.clean],
                    data.x_test, data.y_test, data.shape, data.classes)

    def config(regime: str, **more) -> TrainConfig:
        return TrainConfig(regime=regime, epochs=budget.epochs, batch_size=budget.batch_size,
                           lr=budget.lr, seed=seed, eval_points=budget.eval_points,
                           eval_steps=budget.eval_steps, **more)

    def net():
        return build_net(data.input_dim, data.classes, hidden=budget.hidden, seed=seed)

    tests = test_sets(data, budget)
    y_test = np.asarray(data.y_test[:budget.test])
    results: dict = {"accuracy": {}, "sizes": list(budget.shifted),
                     "corruptions": list(budget.corruptions)}

    # PLAIN and GAUSS: the classifier alone, on every test set
    noisy = corrupt(clean.x_train, GAUSS_KIND, severity=GAUSS_SEVERITY, seed=7)
    gauss_data = replace(clean, x_train=np.concatenate([clean.x_train, noisy]),
                         y_train=np.concatenate([clean.y_train, clean.y_train]))
    for name, train_data in (("plain", clean), ("gauss", gauss_data)):
        model = run.train(name, net(), prop, train_data, config("baseline"))
        results["accuracy"][name] = run.stage(f"accuracy-{name}", lambda m=model: {
            k: accuracy(m, *run_tensors(run, x, y_test)) for k, x in tests.items()})

    # TRANSFER: a pair per corruption and size (separate), a pooled one per size (joint)
    folder = run.work / "shifted"
    folder.mkdir(parents=True, exist_ok=True)
    for n in budget.shifted:
        pooled = []
        for k, kind in enumerate(budget.corruptions):
            rows = shifted_rows(data, budget, k, n)
            pooled.append(rows)
            name = f"separate-{kind}-{n}"
            results["accuracy"][name] = adapted_accuracy(
                run, name, folder, rows, net, prop, clean, config, budget, tests, y_test,
                sets=("clean", kind))
        name = f"joint-{n}"
        results["accuracy"][name] = adapted_accuracy(
            run, name, folder, np.concatenate(pooled), net, prop, clean, config, budget, tests,
            y_test, sets=tuple(tests))
    results["dataset"] = describe_data(clean)
    return results


def run_tensors(run: Run, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(x, dtype=torch.float32, device=run.device),
            torch.tensor(y, dtype=torch.long, device=run.device))


def adapted_accuracy(run: Run, name: str, folder, rows: np.ndarray, net, prop, clean: Dataset,
                     config, budget: Budget, tests: dict, y_test: np.ndarray,
                     sets: tuple[str, ...]) -> dict:
    """Train f with a paired autoencoder on `rows` (the `adapt` regime; the shifted inputs are
    written once to <work>/shifted/<name>.npz: the run is bound to their contents), then the
    accuracy of the exported f(T(x)) (onnxruntime) on the test sets `sets`."""
    path = folder / f"{name}.npz"
    if not path.exists():
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=rows)
        tmp.replace(path)
    run.train(name, net(), prop, clean, config("adapt", shifted=str(path),
                                               transfer_steps=budget.transfer_steps),
              export=True)
    adapted = run.exports[name]["adapted"]
    return run.stage(f"accuracy-{name}", lambda: {
        k: onnx_accuracy(adapted, tests[k], y_test) for k in sets})


# --- reading the results --------------------------------------------------------------------
def corrupted_mean(acc: dict, corruptions) -> float:
    """The mean accuracy over the corrupted test sets a result has."""
    values = [acc[k] for k in corruptions if k in acc]
    return sum(values) / len(values)


def setup_rows(results: dict) -> dict[str, dict[str, float]]:
    """Per setup (PLAIN, GAUSS, TRANSFER-SEPARATE N_c, TRANSFER-JOINT N_c), the accuracy on
    each test set (separate: each corruption's own pair)."""
    acc, corruptions = results["accuracy"], results["corruptions"]
    rows = {"PLAIN": acc["plain"], "GAUSS": acc["gauss"]}
    for n in results["sizes"]:
        rows[f"TRANSFER-SEPARATE {n}"] = {k: acc[f"separate-{k}-{n}"][k] for k in corruptions}
        rows[f"TRANSFER-SEPARATE {n}"]["clean"] = sum(
            acc[f"separate-{k}-{n}"]["clean"] for k in corruptions) / len(corruptions)
        rows[f"TRANSFER-JOINT {n}"] = acc[f"joint-{n}"]
    return rows
