"""specrob's public API: the functions the command line and the reproductions call, and that a
notebook user calls directly. Each takes a spec (a path or a loaded `Spec`), a model and data,
and returns a typed result with `.to_json()`; each writes its run folder (`runfolder`) so
that a rerun resumes and a different run is refused.

    import specrob
    spec = specrob.load("specs/cr.rspec", eps=0.1)
    trained = specrob.train("examples/digits_mlp.py", spec, out="runs/cr")
    report = specrob.evaluate(trained.model, spec, out="runs/cr-eval")
    proof = specrob.verify(trained.model, spec, points=50, out="runs/cr-verify")

Errors: every user error is a `SpecrobError` (`SpecError` with the file, line and column for
a spec; `UsageError` for inputs that do not fit together, e.g. a model and data of different
sizes); anything else is a bug. KeyboardInterrupt is passed on: what finished is already in
the run folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from specrob.devices import resolve_device
from specrob.errors import SpecrobError
from specrob.lang.ir import Property, Score, Spec

if TYPE_CHECKING:
    import torch

    from specrob.data import Dataset

__all__ = ["UsageError", "load", "describe", "backends", "constraint_loss", "train", "evaluate", "verify",
           "verify_instances", "export", "reproduce", "TrainResult", "EvalResult",
           "VerifyResult", "InstancesResult", "ExportResult"]

Log = Callable[[str], None]


class UsageError(SpecrobError):
    """Inputs that do not fit together, or an option value out of its range."""


# --- results --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Result:
    def to_json(self) -> dict:
        """The result as JSON-ready values (paths as strings)."""
        from specrob.runfolder import jsonable
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class TrainResult(_Result):
    """`train`'s outcome: the exported ONNX model (None with `export=False`), the per-epoch
    metrics (CE, constraint loss, accuracies, satisfied fractions), onnxruntime's largest
    difference from torch on the exported graph, the training curve's PNG (None without
    matplotlib output)."""

    model: Path | None
    metrics: list = field(default_factory=list)
    onnx_difference: float | None = None
    curve: Path | None = None
    property: str = ""
    resumed_after: int = 0
    # networks exported beside model.onnx by the regime, by stem (adapt: "adapted", f(T(x)))
    exports: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult(_Result):
    """`evaluate`'s outcome: results.json's content (per property and eps: constraint security
    and accuracy with 95% intervals; per score: Q, H, G estimates) and the PNG plots."""

    results: dict
    plots: list = field(default_factory=list)
    out: Path = Path()


@dataclass(frozen=True)
class VerifyResult(_Result):
    """`verify`'s outcome: summary.json's content (verified / falsified / unknown counts,
    constraint satisfaction CS with its interval, the semantics, seconds per stage), the
    per-centre rows, and notes on what was checked (e.g. a final Softmax left out)."""

    summary: dict
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    out: Path = Path()


@dataclass(frozen=True)
class InstancesResult(_Result):
    """`verify_instances`'s outcome: one row per VNN-COMP instance (status sat / unsat /
    timeout / unknown, method, seconds, reason) and the summary counts."""

    rows: list
    summary: dict
    out: Path = Path()


@dataclass(frozen=True)
class ExportResult(_Result):
    """`export`'s outcome: how many VNN-LIB queries were written, and where."""

    queries: int
    out: Path = Path()


@dataclass(frozen=True)
class MergeResult(_Result):
    """`merge`'s outcome: the kind of run ("verify" or "eval"), its summary (verify's
    summary.json, or eval's results.json), verify's rows, and the merged folder."""

    kind: str
    summary: dict
    rows: list = field(default_factory=list)
    out: Path = Path()


# --- specs ----------------------------------------------------------------------------------

def load(path: str | Path, **overrides) -> Spec:
    """Read and check a spec file; keyword arguments override parameters (like --set).

    >>> spec = specrob.load("specs/cr.rspec", eps=0.05)
    >>> spec["CR"].value("eps")
    0.05

    Raises SpecError (file, line, column) for a malformed spec or an unknown parameter."""
    from specrob.lang.loader import load as _load, overrides_from_api
    return _load(path, overrides_from_api(overrides))


def _spec(spec: str | Path | Spec | Property, set_: Sequence[str]) -> Spec:
    if isinstance(spec, Property):  # one property of a loaded spec: spec["CR"]
        if set_:
            raise UsageError("give --set overrides when loading the spec (specrob.load(path, "
                             "name=value)), not with a loaded property")
        return Spec(str(getattr(spec.source, "path", spec.name)), (spec,), ())
    if isinstance(spec, Spec):
        if set_:
            raise UsageError("give --set overrides when loading the spec (specrob.load(path, "
                             "name=value)), not with a loaded Spec")
        return spec
    from specrob.lang.loader import load as _load, overrides_from_cli
    return _load(spec, overrides_from_cli(list(set_)))


def pick_property(spec: Spec, name: str | None) -> Property:
    """The property called `name` (default: the first). Raises UsageError naming the
    closest."""
    if not spec.properties:
        raise UsageError(f"{spec.path} declares no property to train under (only scores)")
    if name is None:
        return spec.properties[0]
    for p in spec.properties:
        if p.name == name:
            return p
    from specrob.lang.errors import did_you_mean
    guess = did_you_mean(name, [p.name for p in spec.properties])
    raise UsageError(f"{spec.path} has no property '{name}'"
                     + (f"; did you mean '{guess}'?" if guess else "")
                     + f" (properties: {', '.join(p.name for p in spec.properties)})")


def pick_declaration(spec: Spec, name: str) -> Property | Score:
    """The property or score called `name`. Raises UsageError naming the closest."""
    try:
        return spec[name]
    except KeyError as error:
        raise UsageError(str(error)) from None


def constraint_loss(spec: Spec, model, *, property: str | None = None, logic: str = "dl2",
                    search: str = "pgd", **options):
    """A callable `(x, y) -> mean constraint loss` of one property (default: the first) at
    the worst point of each ball, for a training loop of your own:

        constraint = specrob.constraint_loss(spec, model, logic="dl2", search="pgd", steps=10)
        loss = F.cross_entropy(model(x), y) + 0.2 * constraint(x, y)

    `options` go to the search (steps, restarts, step_size, random_start, l1_coordinates
    for pgd; samples for sample) or set `reduction` ("mean", default; "sum"; "none": the
    per-sample loss, shape (B,)) and `xi`. x may be flat (B, n) or of any per-sample shape,
    e.g. images (B, C, H, W); the spec's domain applies per element. The loss is the
    property's in the chosen logic (Fischer et al. 2019, DL2; Casadio et al. 2022 for the
    others). Raises ValueError naming the closest valid option or name.
    """
    from torch import nn

    from specrob.errors import OptionError
    from specrob.logic.compiled import ConstraintLoss  # torch only when asked for
    if not isinstance(model, nn.Module):
        raise UsageError(f"constraint_loss() needs a torch.nn.Module, got "
                         f"{type(model).__name__}")
    if not spec.properties:
        raise UsageError(f"{spec.path} declares no property")
    prop = spec.properties[0] if property is None else spec[property]
    if not isinstance(prop, Property):
        raise UsageError(f"'{property}' is a score, not a property")
    try:
        return ConstraintLoss(prop, model, logic, search, strict=True, **options)
    except OptionError:
        raise
    except (ValueError, TypeError) as error:  # an unknown logic, search or option
        raise OptionError(str(error)) from None


# --- what each back end supports -----------------------------------------------------------

def _support_registry():
    """The back ends' `supports(declaration)`, in the order `specrob check` prints them: one
    registry, each back end the only source of its own answer."""
    from specrob.estimate.support import supports as evaluation
    from specrob.training.support import supports as training
    from specrob.verification.support import supports as verification
    return {"training": training, "evaluation": evaluation, "verification": verification}


def backends(decl: Property | Score) -> dict:
    """Per back end (loss, attack, bounds, marabou, vnnlib; estimate for a score): a
    `Support` (exact / sound / bound / no, with the reason)."""
    registry = _support_registry()
    if isinstance(decl, Score):
        return registry["evaluation"](decl)
    out: dict = {}
    for supports in registry.values():
        out.update(supports(decl))
    return out


def describe(spec: Spec) -> dict:
    """The checked spec as plain data (what `specrob check --json` prints): per declaration
    its parameters, centres, normal form, linear forms and each back end's support."""
    from specrob.lang.summary import describe as summary
    out = summary(spec)
    for decl, entry in zip((*spec.properties, *spec.scores), out["declarations"]):
        entry["backends"] = {k: {"level": v.level, "note": v.note}
                             for k, v in backends(decl).items()}
    return out


from specrob.lang import ir as _ir  # noqa: E402 - spec.loss is constraint_loss

_ir.LOSS_FACTORY[0] = constraint_loss


# --- models and data that fit ---------------------------------------------------------------

def check_class_indices(spec: Spec, classes: int) -> None:
    """The spec's constant class indices exist among the model's `classes` outputs; raises
    SpecError at the index otherwise."""
    from specrob.lang.walk import check_classes
    check_classes(spec, classes)


def _check_finite(net, dataset, model: str | Path, data: str, count: int = 512) -> None:
    """The network's outputs on (the first `count` points of) the data are finite numbers."""
    import torch

    from specrob.numerics import module_device
    for split, x in (("train", dataset.x_train[:count]), ("test", dataset.x_test[:count])):
        if len(x) == 0:
            continue
        try:
            with torch.no_grad():
                out = net(torch.tensor(x, device=module_device(net)))
        except Exception as exc:  # the user's network fails on the data
            raise UsageError(f"{model}: the network fails on the {split} points of --data "
                             f"{data}: {type(exc).__name__}: {exc}") from None
        bad = (~torch.isfinite(out)).reshape(len(x), -1).any(-1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise UsageError(f"{model}: the network's outputs are not finite (inf or NaN) on "
                             f"{int(bad.sum())} of the first {len(x)} {split} points of --data "
                             f"{data} (first: point {first}); specrob refuses such a model")


def model_outputs(net, dataset, model: str | Path, data: str) -> int:
    """The number of classes: the width of the network's output on the data's flattened
    inputs (not the labels present in the data, which may be a few points of a few classes).
    Raises UsageError when the network fails on them or its outputs there are not finite."""
    import torch

    from specrob.numerics import module_device
    x = dataset.x_test[:2] if len(dataset.x_test) else dataset.x_train[:2]
    try:
        with torch.no_grad():
            logits = net(torch.tensor(x, device=module_device(net)))
    except Exception as exc:  # the user's network cannot take this data
        raise UsageError(f"{model}: the network fails on inputs of shape ({len(x)}, "
                         f"{dataset.input_dim}) from --data {data}: {type(exc).__name__}: "
                         f"{exc}") from None
    if logits.ndim != 2 or logits.shape[0] != len(x):
        raise UsageError(f"{model}: the network returns shape {tuple(logits.shape)} for "
                         f"{len(x)} inputs; expected (B, classes) logits")
    _check_finite(net, dataset, model, data)
    return int(logits.shape[1])


def _runs_exported(path: Path) -> None:
    """The exported ONNX graph is one that eval, verify and export can run (imported and
    checked against onnxruntime), before any claim of success."""
    from specrob.network import NetworkError, load_onnx_checked
    try:
        load_onnx_checked(path)
    except NetworkError as error:
        raise UsageError(f"trained, but the exported graph cannot be evaluated or verified: "
                         f"{error} (the checkpoint is kept; change the model's layers and "
                         f"train again)") from None


def _config(config, kind: type, what: str):
    """`config`, or the defaults; a config of another kind is refused."""
    if config is None:
        return kind()
    if not isinstance(config, kind):
        raise UsageError(f"{what}() takes config={kind.__name__}(...) (from "
                         f"{kind.__module__}), got {type(config).__name__}")
    return config


# --- train ----------------------------------------------------------------------------------

def train(model: str | Path | torch.nn.Module, spec: str | Path | Spec | Property, *,
          config=None,
          property: str | None = None, data: str | Dataset = "digits",
          out: str | Path = "runs/train", set: Sequence[str] = (), fresh: bool = False,
          progress: bool = True, export: bool = True, log: Log | None = None) -> TrainResult:
    """Train the network of a model file under a property and export it to ONNX.

    Args:
        model: a .py file whose build() returns a torch.nn.Module (flattened inputs or the
            data's shape -> logits), or such a module itself (trained in place).
        spec: the .rspec file, a loaded Spec, or one of its properties (spec["CR"]);
            `set`: NAME=VALUE overrides.
        config: a `specrob.TrainConfig` (regime, logic, search, epochs, lr,
            a, b, ...); default TrainConfig().
        data: digits | fashion-mnist[:DIR] | idx:DIR | PATH.npz, or a loaded
            `specrob.data.Dataset`.
        out: the run folder: checkpoint.pt and metrics.json after every epoch, model.onnx
            (unless `export=False`; with regime adapt also adapted.onnx, f(T(x))) and
            training.png at the end; a rerun resumes (a finished run is reloaded without
            training), `fresh` starts over.
        log: receives one-line status messages (resuming, what is trained).
    Returns TrainResult. Raises SpecError, UsageError, DataError, ModelFileError, TrainError,
    ExportError, RunFolderError, SamplingError (all SpecrobError).
    Source: the constraint regime is Fischer et al. 2019 (DL2) / Casadio et al. 2022, eq. 1.
    """
    import torch

    from specrob.data import Dataset, load_data
    from specrob.report import plot_training
    from specrob.training.export import export_onnx
    from specrob.network.model_file import adapt_to_data, build_model
    from specrob.training.distributed import from_environment
    from specrob.training.trainer import TrainConfig, Trainer

    log = log or (lambda message: None)
    config = _config(config, TrainConfig, "train")
    config = dataclasses.replace(config, device=resolve_device(config.device))  # auto -> cpu / cuda:N
    out = Path(out)
    checked = _spec(spec, set)
    prop_ir = pick_property(checked, property)
    dataset = data if isinstance(data, Dataset) else load_data(data)
    data_name = dataset.name if isinstance(data, Dataset) else data
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        net, model_file, what = model, None, "the network"
    else:
        model_file = Path(model)
        torch.manual_seed(config.seed)
        net = build_model(model_file, dataset.input_dim, dataset.classes)
        what = str(model_file)
    net = adapt_to_data(net, dataset.shape, dataset.classes)
    classes = model_outputs(net, dataset, what, data_name)
    if classes != dataset.classes:
        raise UsageError(f"{what}: the network returns shape (2, {classes}) for 2 inputs; "
                         f"expected (2, {dataset.classes}) logits for --data {data_name}")
    check_class_indices(checked, dataset.classes)
    # under torchrun: one process per device, rank 0 keeps the folder (training/distributed.py)
    group = from_environment(config.device)
    leader = group is None or group.leader
    if not leader:
        log = (lambda message: None)
    trainer = Trainer(net, prop_ir, dataset, config, out=out if leader else None,
                      model_file=None if model_file is None else str(model_file),
                      progress=progress and leader, group=group)
    try:
        resumed = trainer.epoch if trainer.resume(fresh=fresh) else 0
        if resumed >= config.epochs:
            log(f"{out}: trained ({resumed} epochs)")
        else:
            if resumed:
                log(f"resuming {out} after epoch {trainer.epoch}")
            log(f"training {prop_ir.name} on {dataset.name} ({dataset.train_size} points), "
                f"regime {config.regime}, logic {config.logic}")
        metrics = trainer.fit()
        chance = 1.0 / dataset.classes
        if config.regime == "certified" and metrics and \
                metrics[-1]["test_accuracy"] <= 1.5 * chance:
            # a robust loss that wins over the natural one flattens the network (constant
            # outputs satisfy nothing, but their bounds stop moving): say what to change
            log(f"note: test accuracy {metrics[-1]['test_accuracy']:.3f} is near chance "
                f"({chance:.3f}): the certified loss may have collapsed the network to constant "
                f"outputs; lengthen --warmup / --ramp, raise --kappa, lower --lr, or try "
                f"--cert-loss ce")
        onnx, diff, curve = None, None, None
        if not leader:  # the other processes: the same weights, nothing to write
            return TrainResult(None, metrics, None, None, prop_ir.name, resumed)
        exports: dict[str, Path] = {}
        if export:
            onnx = out / "model.onnx"
            example = torch.tensor(dataset.x_test[:256], device="cpu")
            diff = float(export_onnx(trainer.model, example, onnx))
            _runs_exported(onnx)
            for stem, module in trainer.regime.exports(trainer.model).items():
                exports[stem] = out / f"{stem}.onnx"
                export_onnx(module, example, exports[stem])
                _runs_exported(exports[stem])
        curve = plot_training(metrics, out)
    finally:
        trainer.close()
        if isinstance(model, torch.nn.Module):
            model.train(was_training)  # the caller's module comes back in the mode it had
    return TrainResult(onnx, metrics, diff, curve, prop_ir.name, resumed, exports)


def train_autoencoder(*, data: str | Dataset = "digits", out: str | Path = "runs/autoencoder",
                      config=None, progress: bool = True) -> Path:
    """Train the generator of the on-manifold kernel: a Wasserstein autoencoder (WAE-MMD) on
    the training inputs of `data`, saved in `out` as autoencoder.pt and the generator module
    autoencoder.py (returned), which `specs/manifold.rspec` (`--set generator=`) and
    `specrob train --regime on-manifold --generator` load.

    config: a `specrob.training.config.AutoencoderConfig` (latent, epochs, batch_size, lr,
    mmd, seed, device). A checkpoint after every epoch: a rerun resumes.
    Raises DataError, AutoencoderError, OptionError (all SpecrobError).
    Source: Tibo et al., seed 000, sections 4.2 and 7 (their g is a Wasserstein autoencoder).
    """
    from specrob.data import Dataset, load_data
    from specrob.training.config import AutoencoderConfig
    from specrob.training.autoencoder import train_autoencoder as train_wae
    config = _config(config, AutoencoderConfig, "train_autoencoder")
    config = dataclasses.replace(config, device=resolve_device(config.device))
    dataset = data if isinstance(data, Dataset) else load_data(data)
    return train_wae(dataset.x_train, out, config, data_name=dataset.name, progress=progress)


# --- evaluate -------------------------------------------------------------------------------

def evaluate(model: str | Path, spec: str | Path | Spec, *, config=None,
             checkpoint: str | Path | None = None, data: str = "digits",
             out: str | Path = "runs/eval", set: Sequence[str] = (), only: str | None = None,
             fresh: bool = False, log: Log | None = None) -> EvalResult:
    """Evaluate a network against every property and score of a spec (or `only` one).

    Properties: constraint security and constraint accuracy per eps with 95% intervals;
    scores: Q, H, G by Monte Carlo, margin curves; Lipschitz-shaped properties: alpha_lim(r)
    (Lassance et al., seed 004). `config`: `specrob.estimate.evaluation.EvalConfig`.
    `model`: model.onnx, or a model file (.py) with `checkpoint` (a train folder).
    Writes results.json after each declaration (a rerun resumes) and PNG plots to `out`.
    Raises SpecError, UsageError, DataError, ModelError, EvalError, CentreError, ScoreError,
    RunFolderError, SamplingError (all SpecrobError)."""
    from specrob.data import load_data
    from specrob.estimate.evaluation import EvalConfig, Evaluation
    from specrob.models import load_model, model_identity
    from specrob.report import plot_results

    config = _config(config, EvalConfig, "evaluate")
    model, out = Path(model), Path(out)
    checked = _spec(spec, set)
    if only is not None:
        picked = pick_declaration(checked, only)
        checked = dataclasses.replace(
            checked, properties=tuple(p for p in checked.properties if p is picked),
            scores=tuple(d for d in checked.scores if d is picked))
    dataset = load_data(data, split=False)  # x, y alone: the centres as given
    net, described = load_model(model, dataset.input_dim, dataset.classes,
                                None if checkpoint is None else Path(checkpoint),
                                shape=dataset.shape)
    classes = model_outputs(net, dataset, model, data)
    check_class_indices(checked, classes)
    evaluation = Evaluation(checked, net, dataset, config, out=out, describe_model=described,
                            progress=log, model_identity=model_identity(
                                model, None if checkpoint is None else Path(checkpoint)),
                            fresh=fresh, classes=classes)
    with evaluation:
        results = evaluation.run()
    return EvalResult(results, plot_results(results, out), out)


# --- verify ---------------------------------------------------------------------------------

def _verification_inputs(model: Path, spec, set_, data: str | Dataset, prop: str | None):
    """The checked spec and property, the dataset, the ONNX model as network IR and torch
    module."""
    from specrob.data import Dataset, load_data
    from specrob.lang.walk import check_classes
    from specrob.network import load_onnx_checked

    checked = _spec(spec, set_)
    prop_ir = pick_property(checked, prop)
    if model.suffix != ".onnx":
        raise UsageError(f"{model}: verification reads an ONNX model (specrob train writes "
                         f"model.onnx next to its checkpoint)")
    # x, y alone: the centres as given
    dataset = data if isinstance(data, Dataset) else load_data(data, split=False)
    data = dataset.name if isinstance(data, Dataset) else data
    net, module = load_onnx_checked(model)
    check_classes(checked, net.output_size)
    if net.input_size != dataset.input_dim:
        raise UsageError(f"{model} takes {net.input_size} inputs (shape "
                         f"{tuple(net.input_shape)}); --data {data} has {dataset.input_dim} "
                         f"per point (shape {dataset.shape})")
    _check_finite(module, dataset, model, str(data))
    return checked, prop_ir, dataset, net, module


def _centres(prop_ir, dataset, module, net, points: int | None, spec):
    """The property's centres (x0, y, their indices in the data, info)."""
    from specrob.estimate.evaluation import domain_of, select_centres_indexed
    spec_dir = Path(spec).resolve().parent if not isinstance(spec, Spec) else \
        Path(spec.path).resolve().parent
    return select_centres_indexed(
        prop_ir.centres, dataset, module, points, spec_dir=spec_dir,
        domain=domain_of(prop_ir, dataset.input_dim), what=f"property {prop_ir.name}",
        classes=net.output_size)


def verify(model: str | Path, spec: str | Path | Spec, *, config=None,
           property: str | None = None, data: str | Dataset = "digits",
           out: str | Path = "runs/verify", set: Sequence[str] = (), fresh: bool = False,
           progress: bool = True, centres: tuple[torch.Tensor, torch.Tensor] | None = None) -> VerifyResult:
    """Verify a property on every centre: verified / falsified / unknown, soundly.

    Per centre: attacks (falsified only with a counterexample re-checked on onnxruntime and
    in float64), bound propagation (CROWN), branch and bound (beta-CROWN: Wang et al. 2021),
    Marabou (Katz et al. 2019). `config`: `specrob.verification.pipeline.VerifyConfig`
    (backend, bounds, timeout seconds per centre, semantics float32 | real, workers, points).
    Results stream to results.jsonl in `out` (a rerun resumes); summary.json at the end, and
    counterexamples.png for image data. `centres`: the points to verify, x0 (N, n) flattened
    inputs of `data`'s kind and labels y (N,), instead of the property's centres clause (at
    most `config.points` of them). Raises SpecError, UsageError, DataError,
    NetworkError, CentreError, RunFolderError (all SpecrobError)."""
    import torch
    from tqdm.auto import tqdm

    from specrob.report import plot_counterexamples
    from specrob.verification.pipeline import Verifier, VerifyConfig

    config = _config(config, VerifyConfig, "verify")
    # the device used (auto -> cpu or cuda:N) is the one in the run's identity
    config = dataclasses.replace(config, device="cpu" if config.cluster is not None
                                 else resolve_device(config.device))
    model, out = Path(model), Path(out)
    checked, prop_ir, dataset, net, module = _verification_inputs(model, spec, set, data,
                                                                  property)
    if centres is None:
        x0, y, index, info = _centres(prop_ir, dataset, module, net, config.points, spec)
    else:
        x0, y = _given_centres(centres, prop_ir, net, config.points)
        index, info = torch.arange(len(y), device="cpu"), {"given": len(y)}
    verifier = Verifier(prop_ir, model, net, module, x0, y, config, out=out,
                        index=index.tolist())
    bar = client = None
    address = config.cluster or _local_cluster(config.workers, verifier.blocks, config)
    try:
        if address is not None:  # before the run folder: an unreachable one leaves none
            from specrob.cluster import open_client
            client = open_client(address)
        resumed = verifier.resume(fresh=fresh)
        bar = tqdm(total=len(y), desc=f"verify {prop_ir.name}", unit="point",
                   disable=not progress, initial=resumed)
        verifier.progress = bar.update
        _run_blocks(verifier, config, client)
        summary = verifier.write_summary({"model": str(model), "centres": info})
        if len(dataset.shape) in (2, 3):  # images: x0 beside x* for the first counterexamples
            pictures = plot_counterexamples(list(verifier.done.values()), x0.numpy(),
                                            index.tolist(), dataset.shape, out)
            if pictures:
                summary["counterexample_images"] = str(pictures)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            from specrob.cluster import close_client
            close_client(client)
        verifier.close()
    notes = [verifier.attack_note] if verifier.attack_note else []
    if verifier.final is not None and verifier.nets:  # a final Softmax / LogSoftmax
        stripped = sum(n is not verifier.net for n in verifier.nets.values())
        notes.append(f"bounds and Marabou without the final {verifier.final.kind} on "
                     f"{stripped} of {len(verifier.nets)} centres they checked")
    return VerifyResult(summary, list(verifier.done.values()), notes, out)


def merge(out: str | Path, shards: Sequence[str | Path], *, fresh: bool = False
          ) -> MergeResult:
    """Join the N shard folders of one verify or eval run (`VerifyConfig(shard="i/N")`,
    `EvalConfig(shard="i/N")`) into `out`, the folder of the whole run. See
    `specrob.verification.merge` and `specrob.estimate.merge`. Raises MergeError,
    EvalMergeError, RunFolderError (SpecrobError)."""
    from specrob.runfolder import RUN_FILE, read_json
    folders = [Path(s) for s in shards]
    if not folders:
        raise UsageError("give the shard folders to merge")
    first = folders[0] / RUN_FILE
    kind = (read_json(first) or {}).get("kind") if first.is_file() else None
    if kind == "eval":
        from specrob.estimate.merge import merge as merge_eval
        from specrob.report import plot_results
        results = merge_eval(out, folders, fresh=fresh)
        plot_results(results, Path(out))
        return MergeResult("eval", results, [], Path(out))
    from specrob.verification.merge import merge as merge_verify
    summary, rows = merge_verify(out, folders, fresh=fresh)
    return MergeResult("verify", summary, rows, Path(out))


def _local_cluster(workers: int, blocks: int, config) -> str | None:
    """--workers N > 1 without --cluster: a LocalCluster of N processes ("local:N") when the
    run has more than one block of centres on the CPU and is no shard; else None (the N
    processes then serve one block: Marabou's queries for verify)."""
    if workers > 1 and blocks > 1 and config.shard is None and config.device == "cpu":
        return f"local:{workers}"
    return None


def _run_blocks(verifier, config, client) -> None:
    """The verifier's blocks here, on the Dask cluster of `client` (`config.cluster`), or a
    shard of them (`config.shard`: blocks k with k % N == i)."""
    if client is not None:
        from specrob.verification.distributed import run_on_cluster
        run_on_cluster(verifier, client, list(range(verifier.blocks)))
    elif config.shard is not None:
        from specrob.options import shard_of
        shard = shard_of(config.shard)
        assert shard is not None  # VerifyConfig checked it
        i, n = shard
        verifier.run([k for k in range(verifier.blocks) if k % n == i])
    else:
        verifier.run()


def _given_centres(centres, prop_ir: Property, net, points: int | None):
    """Explicit centres as float32 x0 (N, inputs) and int64 y (N,), the first `points`: at
    least one, finite, inside the property's domain, labels whole classes of the model.
    Raises UsageError, DataError or CentreError (SpecrobError) naming what is wrong."""
    import numpy as np
    import torch

    from specrob.data import check_labels
    from specrob.estimate.evaluation import check_inside, domain_of
    inputs = net.input_size
    try:
        x0, y = centres
        # copies: the caller's arrays stay theirs (and read-only arrays are fine)
        if isinstance(x0, torch.Tensor):
            x0 = x0.detach().to("cpu", torch.float32).clone()
        else:
            x0 = torch.from_numpy(np.array(x0, dtype=np.float32))
        y_given = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor)
                   else np.asarray(y))
        if y_given.dtype.kind == "f" and not bool(np.all(y_given == np.round(y_given))):
            raise UsageError("centres: y must be whole class labels, got non-integer values")
        if y_given.dtype.kind not in "biuf":
            raise UsageError(f"centres: y must be class labels, got dtype {y_given.dtype}")
        y = torch.from_numpy(np.array(y_given, dtype=np.int64))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"centres: expected (x0, y) tensors or arrays ({exc})") from None
    if x0.ndim != 2 or x0.shape[1] != inputs or y.shape != (len(x0),):
        raise UsageError(f"centres: expected x0 of shape (N, {inputs}) and y of shape (N,), "
                         f"got {tuple(x0.shape)} and {tuple(y.shape)}")
    if len(x0) == 0:
        raise UsageError("centres: no points; give at least one centre")
    if not bool(torch.isfinite(x0).all()):
        raise UsageError("centres: x0 contains NaN or infinite values")
    check_labels(y_given, net.output_size, "centres: y")
    if points is not None:
        x0, y = x0[:points], y[:points]
    check_inside(x0, torch.arange(len(x0), device="cpu"), domain_of(prop_ir, inputs), "centres")
    return x0, y


def verify_instances(*, instances: str | Path | None = None, model: str | Path | None = None,
                     property: str | Path | None = None, timeout: float | None = None,
                     semantics: str = "real", seed: int = 0, out: str | Path = "runs/verify",
                     fresh: bool = False, progress: bool = True, device: str = "cpu"
                     ) -> InstancesResult:
    """Decide VNN-COMP instances: an instances.csv (rows onnx,vnnlib,timeout; paths relative
    to the CSV), or one ONNX model and one VNN-LIB property (`timeout` seconds, default 120).
    Per instance sat / unsat / timeout / unknown (sat only with a counterexample re-checked on
    onnxruntime and in float64); results.jsonl, one VNN-COMP result file per instance and
    summary.json in `out`. Raises InstanceError, VnnlibError, NetworkError, UsageError."""
    from tqdm.auto import tqdm

    from specrob.verification.instance import Instance, InstanceRunner, read_instances, \
        stem_name

    out = Path(out)
    device = resolve_device(device)
    if semantics not in ("float32", "real"):
        raise UsageError(f"--semantics {semantics}: choose float32 or real")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout {timeout:g}: must be positive")
    if instances is not None:
        if model is not None or property is not None:
            raise UsageError("--instances reads the models and properties from the CSV; give "
                             "no MODEL or PROPERTY")
        rows = read_instances(Path(instances))
        if timeout is not None:
            raise UsageError("--timeout: the instances' timeouts come from the CSV")
        source = Path(instances).read_text()
    else:
        if model is None or Path(model).suffix != ".onnx":
            raise UsageError(f"{model}: a VNN-LIB property is checked on an ONNX model")
        model_path = Path(model)
        if not model_path.is_file():
            raise UsageError(f"{model_path}: no such file")
        if property is None or not Path(property).is_file():
            raise UsageError(f"{property}: no such file")
        property_path = Path(property)
        rows = [Instance(model_path, property_path, 120.0 if timeout is None else timeout,
                         stem_name(model_path, property_path))]
        source = ""
    runner = InstanceRunner(rows, out, semantics=semantics, seed=seed, source=source,
                            device=device)
    bar = None
    try:
        resumed = runner.open(fresh=fresh)
        bar = tqdm(total=len(rows), initial=resumed, desc="verify instances",
                   unit="instance", disable=not progress)
        runner.progress = lambda row: (bar.update(1), bar.set_postfix_str(
            f"{row['instance']}: {row['status']}"))
        results = runner.run()
        summary = runner.write_summary()
    finally:
        if bar is not None:
            bar.close()
        runner.close()
    return InstancesResult(results, summary, out)


# --- export ---------------------------------------------------------------------------------

def export(model: str | Path, spec: str | Path | Spec, *, format: str = "vnnlib",
           property: str | None = None, data: str = "digits", points: int | None = 10,
           timeout: float = 60.0, out: str | Path = "runs/vnnlib", set: Sequence[str] = ()
           ) -> ExportResult:
    """Export verification queries for other verifiers (VNN-COMP's VNN-LIB + ONNX): one
    point_I.vnnlib per centre (I its index in the data; the input box and the negated
    property, so that a verifier answers unsat where the property holds), model.onnx and
    instances.csv with `timeout` seconds per query. f(x0) comes from onnxruntime, as in
    `verify`. Raises UsageError for a property VNN-LIB cannot express."""
    from specrob.network.oracle import Oracle
    from specrob.lang.encode import Centre, Encoder, Unsupported
    from specrob.verification.vnnlib import export as write

    if format != "vnnlib":
        raise UsageError(f"--format {format}: only vnnlib is supported")
    model, out = Path(model), Path(out)
    checked, prop_ir, dataset, net, module = _verification_inputs(model, spec, set, data,
                                                                  property)
    x0, y, index, info = _centres(prop_ir, dataset, module, net, points, spec)
    fx0 = Oracle(model)(x0.numpy()) if len(y) else []  # no centres: no queries
    encoder = Encoder(prop_ir, net.input_size, net.output_size)
    name = spec if not isinstance(spec, Spec) else spec.path
    try:
        # named by the centres' indices in --data (point_<index>.vnnlib)
        queries = [(int(index[i]), encoder.query(Centre(x0[i].double().numpy(), int(y[i]),
                                                        fx0[i])))
                   for i in range(len(y))]
    except Unsupported as error:
        raise UsageError(f"{prop_ir.name} cannot be exported to VNN-LIB: {error}") from None
    write(queries, model, out, timeout, comment=f"property {prop_ir.name} of {name}",
          labels={int(index[i]): int(y[i]) for i in range(len(y))})
    return ExportResult(len(queries), out)


# --- reproduce ------------------------------------------------------------------------------

def reproduce(paper: str, *, smoke: bool = False, out: str | Path | None = None,
              work: str | Path = "runs/reproduce", data: str | None = None, seed: int = 0,
              fresh: bool = False, progress: bool = True, device: str = "cpu",
              budget: str = "quick", epochs: int | None = None) -> Path:
    """Reproduce a seed paper's experiments (casadio, shaham, tibo, lassance) and write its
    results page; returns the page's path. `smoke`: a tiny budget that checks the script end
    to end. `budget`: quick (minutes on a CPU) or paper (the paper's epochs and learning
    rates). `epochs`: train every net at most this many epochs (the largest budget that fits a
    machine; the page says so; its own work folder <work>/<paper>/<budget>-<N>ep). `device`:
    where the networks train and the estimators run (cpu | cuda | cuda:N | auto); the work
    folder is bound to it. Raises UsageError for an unknown paper,
    DeviceError, ReproduceError and the errors of the functions above."""
    from specrob.reproduce import PAPERS, paper_module
    from specrob.reproduce.common import Options

    if paper not in PAPERS:
        from specrob.lang.errors import did_you_mean
        guess = did_you_mean(paper, list(PAPERS))
        raise UsageError(f"unknown paper '{paper}'" + (f"; did you mean '{guess}'?" if guess
                                                       else "")
                         + f" (choose one of {', '.join(PAPERS)})")
    work = Path(work)
    if out is None:  # a smoke run never overwrites the real pages
        out = work / "smoke-results" if smoke else Path("docs/results")
    if budget not in ("quick", "paper"):
        raise UsageError(f"--budget {budget}: choose quick or paper")
    if smoke and budget == "paper":
        raise UsageError("--smoke runs a tiny budget and --budget paper the paper's: give one "
                         "of them")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise UsageError(f"--epochs {epochs}: give a whole number >= 1")
    options = Options(smoke=smoke, out=Path(out), work=work, data=data, seed=seed,
                      progress=progress, fresh=fresh, device=resolve_device(device), budget=budget,
                      epochs=epochs)
    command = (f"specrob reproduce {paper}" + (" --smoke" if smoke else "")
               + (" --budget paper" if budget == "paper" and not smoke else "")
               + (f" --epochs {epochs}" if epochs is not None else "")
               + (f" --data {data}" if data else "") + (f" --seed {seed}" if seed else "")
               + (f" --device {options.device}" if options.device != "cpu" else ""))
    return paper_module(paper).run(options, command)
