"""The `specrob` command line."""
from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from specrob import api
from specrob.estimate.config import EvalConfig
from specrob.training.config import AutoencoderConfig, TrainConfig
from specrob.verification.config import VerifyConfig
from specrob.errors import SpecrobError
from specrob.lang.errors import SpecError

app = typer.Typer(
    name="specrob",
    help="Robustness specifications of neural-network classifiers: write a property once in "
         ".rspec, then check it, train under it, evaluate it and verify it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

def _device_option(what: str):
    """--device: one spelling and help for every command (`what`: what runs there)."""
    return typer.Option(help=f"Where {what} run: cpu | cuda | cuda:N | auto (cuda when torch "
                             f"sees a GPU, else cpu).")


SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="NAME=VALUE",
                 help="Override a parameter of every declaration that has it, e.g. "
                      "--set eps=0.05 --set p=2 (repeatable)."),
]

def _finite(value: float | None) -> float | None:
    """A typer callback: a float option must be a finite number (nan and inf are refused)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _choice(*allowed: str):
    """A typer callback: the option's value must be one of `allowed` (did-you-mean otherwise)."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            from specrob.lang.errors import did_you_mean
            guess = did_you_mean(value, allowed)
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(allowed)}"
                                     + (f"; did you mean '{guess}'?" if guess else ""))
        return value
    return check


def _positive(value: float | None) -> float | None:
    """A typer callback: a float option that must be a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a finite number > 0")
    return value


LEVEL_STYLE = {"exact": "green", "sound": "yellow", "bound": "yellow", "no": "red"}


def fail(error: SpecError) -> None:
    """Print one located error message on stderr."""
    Console(stderr=True, highlight=False, soft_wrap=True, emoji=False).print(escape(error.format()))


def _version(value: bool) -> None:
    if value:
        from specrob import __version__
        print(f"specrob {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print specrob's version and exit.")] = False) -> None:
    """specrob: one robustness property for training, evaluation and verification."""


@app.command()
def check(
    specs: Annotated[list[Path], typer.Argument(
        metavar="SPEC...", help="One or more .rspec files (e.g. specs/*.rspec).",
        show_default=False)],
    set_: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Parse and type-check specs; print each property and score in normal form.

    For every property: its parameters, the centres and input domain, the body in sympy
    normal form, its linear forms over the output coordinates, whether it is piecewise
    linear, and which back ends (loss, attack, bounds, marabou, vnnlib) handle it exactly,
    soundly (a stronger condition: "verified" stays sound) or not at all, and why.

    Exit codes: 0 all specs check, 2 a spec is malformed (file:line:col and a fix).

    Example:  specrob check specs/cr.rspec --set eps=0.05
    """
    from specrob.lang.loader import load, overrides_from_cli

    results, failed = [], False
    for path in specs:
        try:
            spec = load(path, overrides_from_cli(set_ or []))
            results.append(api.describe(spec))
        except SpecError as error:
            fail(error)
            failed = True
    if as_json:
        print(json.dumps(results if len(results) != 1 else results[0], indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        for result in results:
            _print_summary(console, result)
    if failed:
        raise typer.Exit(2)


def _print_summary(console: Console, result: dict) -> None:
    console.print(f"[bold]{escape(result['path'])}[/bold]")
    for d in result["declarations"]:
        values = ", ".join(
            f"{p['name']} = {p['value']}" + (f" [dim]\\[{p['unit']}][/dim]" if p["unit"] else "")
            for p in d["params"])
        console.print(f"  [bold cyan]{d['kind']} {escape(d['name'])}[/bold cyan]({values})")
        console.print(f"    centres      {escape(d['centres'])}")
        if d["kind"] == "property":
            console.print(f"    for all      {escape(d['quantifier'])}")
            console.print(f"    normal form  {escape(d['normal_form'])}")
            for form in d["linear_forms"]:
                console.print(f"    linear       {escape(form)}")
            pwl = "yes" if d["piecewise_linear"] else "no: " + "; ".join(d["nonlinear"])
            console.print(f"    piecewise linear  {escape(pwl)}")
        else:
            console.print(f"    Q = {escape(d['Q'])};  H = {d['H']};  G = {escape(d['G'])}")
            for fam in d["families"]:
                console.print(f"    family       {escape(fam)}")
        for name, s in d["backends"].items():
            style = LEVEL_STYLE[s["level"]]
            note = f" [dim]({escape(s['note'])})[/dim]" if s["note"] else ""
            console.print(f"    {name:<12} [{style}]{s['level']}[/{style}]{note}")
    console.print()


def _interrupted(kept: str) -> None:
    """Ctrl-C during a long run: say what was kept and how to resume; exit 130."""
    # a new line first: a progress bar may own the current one
    Console(stderr=True).print(f"\ninterrupted: {kept}; run the same command to resume")
    raise typer.Exit(130)


def _user_error(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True, emoji=False).print(
        f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


@contextlib.contextmanager
def _user_errors(kept: str | None = None):
    """The one place a command turns specrob's errors into messages: a SpecError with its
    file, line and caret, any other SpecrobError as "error: ...", exit 2; Ctrl-C says what was
    kept (`kept`) and how to resume, exit 130."""
    try:
        yield
    except SpecError as error:
        fail(error)
        raise typer.Exit(2)
    except SpecrobError as error:
        _user_error(str(error))
    except KeyboardInterrupt:
        if kept is None:
            raise
        _interrupted(kept)


@app.command()
def train(
    model: Annotated[Path, typer.Argument(help="A model file: a .py file whose build() returns "
                                               "a torch.nn.Module (flattened inputs -> logits).",
                                          show_default=False)],
    spec: Annotated[Path, typer.Argument(help="The .rspec file with the property.",
                                         show_default=False)],
    prop: Annotated[Optional[str], typer.Option(
        "--property", help="Which property of the spec (default: its first).")] = None,
    data: Annotated[str, typer.Option(help="digits | fashion-mnist[:DIR] | idx:DIR | "
                                           "PATH.npz (arrays x, y)")] = "digits",
    regime: Annotated[str, typer.Option(help="baseline | constraint | adversarial | "
                                             "augmentation | cotrain | cross-lipschitz | "
                                             "parseval | laplacian | adapt | on-manifold | "
                                             "latent-adversarial | certified")
                      ] = TrainConfig.regime,
    logic: Annotated[str, typer.Option(help="dl2 | goedel | lukasiewicz | product | "
                                            "yager[:P]")] = TrainConfig.logic,
    search: Annotated[str, typer.Option(callback=_choice("pgd", "sample", "fgsm"),
                                        help="How the constraint's worst point is found: "
                                             "pgd | sample | fgsm")] = TrainConfig.search,
    steps: Annotated[int, typer.Option(min=0, help="PGD steps.")] = TrainConfig.steps,
    restarts: Annotated[int, typer.Option(
        min=1, help="PGD random restarts (worst case kept).")] = TrainConfig.restarts,
    samples: Annotated[int, typer.Option(
        min=1, help="Samples per point for --search sample.")] = TrainConfig.samples,
    epochs: Annotated[int, typer.Option(
        min=1, help="Epochs in all (a resumed run continues).")] = TrainConfig.epochs,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size (under torchrun: the "
                                                        "global batch, shared by the "
                                                        "processes).")] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(callback=_positive, help="Learning rate (of --optimizer).")
                  ] = TrainConfig.lr,
    optimizer: Annotated[str, typer.Option(
        callback=_choice("adam", "sgd"), help="adam | sgd (torch.optim).")] = TrainConfig.optimizer,
    momentum: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="--optimizer sgd: momentum (Shaham et al.'s code: 0.9).")] = TrainConfig.momentum,
    dampening: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="--optimizer sgd: momentum dampening, as torch.optim.SGD (Torch7's optim.sgd "
             "defaults it to the momentum).")] = TrainConfig.dampening,
    weight_decay: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="L2 penalty wd/2 * ||w||^2 on the weights (Shaham et al.'s code: 1e-3).")
                            ] = TrainConfig.weight_decay,
    lr_steps: Annotated[Optional[str], typer.Option(
        help="Epoch counts after which the learning rate is multiplied by --lr-gamma "
             "(torch's MultiStepLR milestones), e.g. 5 (the 6th epoch on) or 50,75.",
        show_default=False)] = None,
    lr_gamma: Annotated[float, typer.Option(
        min=0.0, max=1.0, callback=_finite, help="--lr-steps: the factor at each step.")
                        ] = TrainConfig.lr_gamma,
    lr_decay: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="Learning rate after t steps: lr / (1 + t * lr_decay) (Torch7's "
             "learningRateDecay; Shaham et al.'s code: 5e-6).")] = TrainConfig.lr_decay,
    a: Annotated[float, typer.Option(
        min=0.0, callback=_finite, help="constraint regime: weight of cross-entropy.")] = TrainConfig.a,
    b: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="constraint regime: weight of the constraint loss.")] = TrainConfig.b,
    adv_steps: Annotated[int, typer.Option(
        min=1, help="adversarial regime: 1 = single steepest-ascent step (Shaham et al.), "
                    ">1 = PGD.")] = TrainConfig.adv_steps,
    augment: Annotated[str, typer.Option(
        callback=_choice("uniform", "fgsm", "static-fgsm", "random-walk"),
        help="augmentation regime: uniform | fgsm (new points every step), or static-fgsm | "
             "random-walk (made once and appended to the training set, as Casadio et al.'s "
             "released code does: FGSM points at eps/2 and eps that fool --reference; random "
             "walks of single-pixel steps of up to eps until the l_2 distance passes eps).")
                      ] = TrainConfig.augment,
    reference: Annotated[Optional[Path], typer.Option(
        help="--augment static-fgsm: the trained network (ONNX, e.g. a baseline's "
             "model.onnx) whose FGSM points are kept where they fool it.",
        show_default=False)] = None,
    lam: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="cotrain regime: weight of the generator regulariser (Tibo et al. eq. 10); "
             "cross-lipschitz: weight of Hein and Andriushchenko's Cross-Lipschitz "
             "regulariser (the HEIN method); on-manifold: weight of the R4 term.")
                  ] = TrainConfig.lam,
    beta: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="parseval regime: the retraction W <- (1+beta) W - beta W W^T W after each step "
             "(Cisse et al.; Lassance et al.'s code: 0.01).")] = TrainConfig.beta,
    gamma: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="laplacian regime: the penalty's weight is gamma^power (Lassance et al.'s code: "
             "0.01).")] = TrainConfig.gamma,
    power: Annotated[int, typer.Option(
        min=1, help="laplacian regime: the power m of the graph Laplacian (Lassance et al.'s "
                    "code: 2).")] = TrainConfig.power,
    shifted: Annotated[Optional[Path], typer.Option(
        help="adapt regime: unlabeled shifted inputs (.npz with an array x, e.g. corrupted "
             "images) for the paired autoencoders; the run also writes adapted.onnx, the "
             "classifier after the transfer map (Tibo et al., seed 001, section 4).",
        show_default=False)] = None,
    transfer_steps: Annotated[int, typer.Option(
        min=1, help="adapt regime: the autoencoder pair's steps per classifier step (the "
                    "paper: 100 epochs for the pair, 50 for the classifier, i.e. 2).")
                              ] = TrainConfig.transfer_steps,
    generator: Annotated[Optional[Path], typer.Option(
        help="on-manifold / latent-adversarial regimes: the generator module (encode/decode), "
             "e.g. the autoencoder.py written by `specrob autoencoder`.",
        show_default=False)] = None,
    sigma: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="on-manifold regime: the code-space noise of dec(enc(x) + N(0, sigma^2)) (Tibo et "
             "al., seed 000: 0.06).")] = TrainConfig.sigma,
    radii: Annotated[int, typer.Option(
        min=1, help="on-manifold regime: eps values drawn uniformly in [0, d] per step (the "
                    "paper's |Σ| = 10).")] = TrainConfig.radii,
    draws: Annotated[int, typer.Option(
        min=1, help="on-manifold regime: generator samples per training point."
                    )] = TrainConfig.draws,
    latent_eps: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="latent-adversarial regime: the l_inf radius around enc(x) in code space "
             "(Stutz et al.'s on-manifold adversarial training); --adv-steps PGD steps.")
                          ] = TrainConfig.latent_eps,
    bound: Annotated[str, typer.Option(
        callback=_choice("ibp", "crown-ibp"),
        help="certified regime: the bound propagation trained through: ibp (Gowal et al. "
             "2018) | crown-ibp (CROWN's last pass over IBP's intermediate bounds, Zhang et al. "
             "2020).")] = TrainConfig.bound,
    cert_loss: Annotated[str, typer.Option(
        callback=_choice("logic", "ce"),
        help="certified regime: logic (the body in --logic, each atom's worst case from its "
             "bound) | ce (cross-entropy of the worst-case margins, the IBP papers' loss; "
             "needs a conjunction).")] = TrainConfig.cert_loss,
    warmup: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="certified regime: epochs (fractions allowed) of the natural loss only.")
                      ] = TrainConfig.warmup,
    ramp: Annotated[float, typer.Option(
        min=0.0, callback=_finite,
        help="certified regime: epochs over which eps grows from 0 to the property's, the "
             "natural weight from 1 to --kappa and CROWN-IBP's beta from 1 to --crown-end "
             "(warmup + ramp <= --epochs).")] = TrainConfig.ramp,
    kappa: Annotated[float, typer.Option(
        min=0.0, max=1.0, callback=_finite,
        help="certified regime: the natural cross-entropy's final weight (Gowal et al.: "
             "0.5).")] = TrainConfig.kappa,
    crown_end: Annotated[float, typer.Option(
        min=0.0, max=1.0, callback=_finite,
        help="certified regime, --bound crown-ibp: the CROWN-IBP bound's final weight beta "
             "(Zhang et al.: 0, i.e. IBP at the end; 1 keeps CROWN-IBP).")
                         ] = TrainConfig.crown_end,
    pgd_mix: Annotated[float, typer.Option(
        min=0.0, max=1.0, callback=_finite,
        help="certified regime: the PGD constraint loss's share alpha of the robust loss "
             "(MTL-IBP's mix, De Palma et al. 2024; --steps PGD steps).")
                       ] = TrainConfig.pgd_mix,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same result).")] = TrainConfig.seed,
    device: Annotated[str, _device_option("the network, its searches and the losses")
                      ] = TrainConfig.device,
    out: Annotated[Path, typer.Option(help="Output folder: checkpoint.pt, metrics.json, "
                                           "model.onnx.")] = Path("runs/train"),
    set_: SetOption = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore a checkpoint in --out and "
                                                        "start over.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train a network under a property and export it to ONNX.

    The constraint regime minimises a·CE + b·L_C(x*), where x* maximises the property's
    violation in its ball (PGD) and L_C is the property's loss in the chosen logic. The other
    regimes use the property's ball: adversarial training, augmentation, co-training; or
    regularise the network whatever the property: cross-lipschitz (Hein and Andriushchenko,
    --lam), parseval (Cisse et al., --beta), laplacian (Lassance et al., --gamma, --power);
    or adapt to a shifted distribution: adapt (Tibo et al.'s paired autoencoders, --shifted);
    or learn from a generator's on-manifold points: on-manifold (R4 training of Tibo et al.,
    seed 000, --generator, --sigma) and latent-adversarial (Stutz et al., --latent-eps); or
    train for verifiability: certified (the property's body bounded over its ball by the
    verifier's own bound propagation, --bound ibp | crown-ibp, with the eps ramp --warmup,
    --ramp, --kappa; `specrob verify` then decides more points).

    Writes to --out after every epoch: checkpoint.pt and metrics.json (CE, constraint loss,
    clean accuracy, fraction of points whose PGD point satisfies the property); at the end
    model.onnx, checked against torch with onnxruntime. Run the same command again to resume
    an interrupted run.

    Data-parallel: `torchrun --standalone --nproc_per_node N -m specrob train ...` runs one
    process per device (with --device cuda, process r takes cuda:LOCAL_RANK); gradients are
    averaged over the global batch and rank 0 keeps --out.

    Example:  specrob train examples/digits_mlp.py specs/cr.rspec --set eps=0.1 --epochs 10
    """
    console = Console(highlight=False, soft_wrap=True)
    with _user_errors(f"finished epochs are in {out}"):
        config = TrainConfig(regime=regime, logic=logic, search=search, steps=steps,
                             restarts=restarts, samples=samples, epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed, device=device, a=a, b=b,
                             adv_steps=adv_steps, augment=augment, lam=lam, beta=beta,
                             gamma=gamma, power=power,
                             shifted=None if shifted is None else str(shifted),
                             transfer_steps=transfer_steps,
                             generator=None if generator is None else str(generator),
                             sigma=sigma, radii=radii, draws=draws, latent_eps=latent_eps,
                             bound=bound, cert_loss=cert_loss, warmup=warmup, ramp=ramp,
                             kappa=kappa, crown_end=crown_end, pgd_mix=pgd_mix,
                             optimizer=optimizer, momentum=momentum, dampening=dampening,
                             weight_decay=weight_decay, lr_decay=lr_decay,
                             lr_steps=_epochs(lr_steps), lr_gamma=lr_gamma,
                             reference=None if reference is None else str(reference))
        result = api.train(model, spec, config=config, property=prop, data=data, out=out,
                           set=set_ or [], fresh=fresh, progress=not quiet,
                           log=lambda message: console.print(message))
    if result.model is None:  # another process of a torchrun group: rank 0 reports
        return
    if result.metrics:
        last = result.metrics[-1]
        console.print(f"epoch {last['epoch']}: CE {last['ce']:.4f}, test accuracy "
                      f"{last['test_accuracy']:.3f}, PGD points satisfying {result.property}: "
                      f"train {last['train_satisfied']:.3f} / test {last['test_satisfied']:.3f}")
    console.print(f"wrote {result.model} (onnxruntime matches torch to "
                  f"{result.onnx_difference:.1e}), "
                  + "".join(f"{path} ({stem}), " for stem, path in result.exports.items())
                  + f"{out / 'metrics.json'}, {out / 'checkpoint.pt'}"
                  + (f", {result.curve}" if result.curve else ""))


def _epochs(text: str | None) -> tuple[int, ...]:
    """--lr-steps: whole epoch numbers separated by commas."""
    if text is None:
        return ()
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        _user_error(f"--lr-steps {text}: give epoch numbers separated by commas, e.g. "
                    f"--lr-steps 50,75")
    return ()


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        _user_error(f"{option} takes numbers separated by commas, e.g. {option} 0,0.02,0.05")
    if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
        _user_error(f"{option} takes radii >= 0, e.g. {option} 0,0.02,0.05")
    return values


@app.command(name="eval")
def evaluate(
    model: Annotated[Path, typer.Argument(help="model.onnx, or a model file (.py) with "
                                               "--checkpoint.", show_default=False)],
    spec: Annotated[Path, typer.Argument(help="The .rspec file.", show_default=False)],
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="For a .py model: the --out folder (or checkpoint.pt) of specrob train.")] = None,
    data: Annotated[str, typer.Option(help="digits | fashion-mnist[:DIR] | idx:DIR | "
                                           "PATH.npz")] = "digits",
    eps: Annotated[Optional[str], typer.Option(
        help="Radii, comma-separated (default: 6 from 0 to each property's eps).")] = None,
    points: Annotated[Optional[int], typer.Option(min=1, help="At most this many centres per "
                                                       "declaration.")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Uniform samples per centre (accuracy, "
                                              "scores).")] = EvalConfig.samples,
    steps: Annotated[int, typer.Option(min=0, help="PGD steps of the attacks.")] = EvalConfig.steps,
    restarts: Annotated[int, typer.Option(min=1, help="PGD random restarts.")] = EvalConfig.restarts,
    grid: Annotated[int, typer.Option(min=2, help="Grid points for a parameter family "
                                           "(eps ~ uniform(a, b)).")] = EvalConfig.grid,
    seed: Annotated[int, typer.Option(help="Random seed.")] = EvalConfig.seed,
    out: Annotated[Path, typer.Option(help="Output folder: results.json and PNG "
                                           "plots.")] = Path("runs/eval"),
    set_: SetOption = None,
    margins: Annotated[bool, typer.Option(help="Margin curves for margin scores.")] = EvalConfig.margins,
    lipschitz: Annotated[bool, typer.Option(help="alpha_lim(r) for Lipschitz-shaped "
                                                 "properties.")] = EvalConfig.lipschitz,
    cluster: Annotated[Optional[str], typer.Option(
        help="Run the properties' blocks of 2048 centres (attacks and uniform samples) on a "
             "Dask cluster: local, local:N or tcp://host:port; the same estimates as one "
             "process. Scores and Lipschitz curves run here.", show_default=False)] = None,
    shard: Annotated[Optional[str], typer.Option(
        help="i/N: compute only the properties' blocks k with k mod N = i (shard 0 also the "
             "scores and Lipschitz curves); join the N --out folders with `specrob merge`.",
        show_default=False)] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard the results in --out (of "
                                                        "another run) and start over.")] = False,
    only: Annotated[Optional[str], typer.Option(
        "--property", help="Evaluate only this property or score (default: every "
                           "declaration of the spec).")] = None,
    device: Annotated[str, _device_option(
        "the network (ONNX executed in torch), the attacks and the samplers")
                      ] = EvalConfig.device,
    workers: Annotated[int, typer.Option(
        min=1, max=256, help="Processes on this machine: with a property of more than 2048 "
                             "centres, a Dask LocalCluster of N workers (as --cluster "
                             "local:N); the same estimates.")] = EvalConfig.workers,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Evaluate a network against every property and score of a spec.

    Properties: constraint security (no attack finds a violation: PGD in the ball's norm with
    restarts, and FGSM; the worst case per centre; every violation re-checked on the model)
    and constraint accuracy (uniform samples of ball ∩ domain), at each eps, with 95%
    intervals. Scores (Q, H, G): Monte Carlo; H = indicator is an upper bound (attacks);
    margin scores give margin curves and their area. Lipschitz-shaped properties also give
    alpha_lim(r).

    Writes results.json (after each declaration: an interrupted run continues when started
    again) and PNG plots to --out.

    Example:  specrob eval runs/digits-cr/model.onnx specs/cr.rspec --eps 0,0.05,0.1
    """
    from specrob.report import print_results

    eps_values = _floats(eps, "--eps")
    console = Console(highlight=False, soft_wrap=True)
    say = None if quiet else (lambda m: console.print(f"[dim]evaluating {m} ...[/dim]"))
    with _user_errors(f"finished declarations are in {out / 'results.json'}"):
        config = EvalConfig(eps=eps_values, points=points, samples=samples, steps=steps,
                            restarts=restarts, grid=grid, seed=seed, margins=margins,
                            lipschitz=lipschitz, cluster=cluster, shard=shard, device=device,
                            workers=workers)
        result = api.evaluate(model, spec, config=config, checkpoint=checkpoint, data=data,
                              out=out, set=set_ or [], only=only, fresh=fresh, log=say)
    print_results(result.results, console)
    console.print(f"wrote {out / 'results.json'}" + "".join(f", {p}" for p in result.plots))


@app.command()
def verify(
    model: Annotated[Optional[Path], typer.Argument(help="The ONNX model.",
                                                    show_default=False)] = None,
    spec: Annotated[Optional[Path], typer.Argument(
        help="The .rspec file, or a VNN-LIB property (.vnnlib, .vnnlib.gz).",
        show_default=False)] = None,
    instances: Annotated[Optional[Path], typer.Option(
        "--instances", help="A VNN-COMP instances.csv (rows onnx,vnnlib,timeout; paths "
                            "relative to the CSV): decide every instance.")] = None,
    prop: Annotated[Optional[str], typer.Option(
        "--property", help="Which property (default: the first).")] = None,
    data: Annotated[str, typer.Option(help="digits | fashion-mnist[:DIR] | idx:DIR | "
                                           "PATH.npz")] = "digits",
    points: Annotated[Optional[int], typer.Option(min=1, help="At most this many centres.")] = None,
    backend: Annotated[str, typer.Option(help="auto (attack, bounds, branch and bound, "
                                              "Marabou) | bounds | bab | marabou")] = VerifyConfig.backend,
    bounds: Annotated[str, typer.Option(help="Bound propagation: ibp | crown | "
                                             "alpha-crown | alpha-crown-all (alpha on every "
                                             "layer)")] = VerifyConfig.bounds,
    timeout: Annotated[Optional[float], typer.Option(
        help="Seconds per centre for branch and bound and Marabou together (.rspec, default "
             "60); for a VNN-LIB property the whole instance (default 120).",
        show_default=False)] = None,
    semantics: Annotated[Optional[str], typer.Option(
        help="What 'verified' means: float32 = for the network in exact arithmetic and for "
             "any float32 execution of it (as deployed: sound float32 error margins); real = "
             "exact arithmetic only (VNN-COMP's reading). Default: float32 for .rspec, real "
             "for VNN-LIB.", show_default=False)] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help=(
        "Processes on this machine: with more than one block of 256 centres a Dask "
        "LocalCluster of N workers (as --cluster local:N), else N Marabou processes (one "
        "single-threaded query each)."))] = VerifyConfig.workers,
    seed: Annotated[int, typer.Option(help="Random seed of the attacks.")] = VerifyConfig.seed,
    device: Annotated[str, _device_option(
        "the attacks, CROWN and branch and bound (batched; counterexamples are re-checked on "
        "onnxruntime, Marabou is on the CPU)")] = VerifyConfig.device,
    cluster: Annotated[Optional[str], typer.Option(
        help="Run the blocks of 256 centres on a Dask cluster: local or local:N (a "
             "LocalCluster of N one-thread workers on this machine), or tcp://host:port (a "
             "running scheduler, e.g. dask-jobqueue on SLURM; workers must see the model at "
             "the same path). Same verdicts as one process; results stream into --out.",
        show_default=False)] = None,
    shard: Annotated[Optional[str], typer.Option(
        help="i/N: verify only the blocks k with k mod N = i (e.g. one job of a batch "
             "array); join the N --out folders with `specrob merge`.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option(help="Output folder: results.jsonl, "
                                           "summary.json.")] = Path("runs/verify"),
    set_: SetOption = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard results in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Verify a property on every centre: verified / falsified / unknown, soundly.

    Per centre: attacks look for a counterexample (for l_inf balls a margin attack with one
    restart per disjunct of the violation, e.g. per wrong class j maximising f_j - f_y, and
    APGD-like step halving; then PGD with 10 restarts and FGSM); bound propagation (CROWN) tries to
    prove the property; branch and bound (ReLU splits with beta-CROWN bounds, or input splits
    for few inputs) decides what CROWN leaves open, with 60% of --timeout; Marabou gets the
    rest (one query with the negated property). "falsified" only with a counterexample
    re-checked on the ONNX model with onnxruntime (and in float64) inside ball ∩ domain;
    "verified" only from a sound proof; otherwise "unknown" with the reason. By default
    "verified" also covers float32 execution (--semantics). l_2 balls: Marabou searches the
    enclosing box and a counterexample must lie in the ball. Results stream to results.jsonl
    (a rerun resumes); summary.json holds constraint satisfaction (CS), the semantics and the
    time per stage.

    VNN-LIB (VNN-COMP instances): `specrob verify model.onnx prop.vnnlib[.gz]` or
    `specrob verify --instances instances.csv` answers sat / unsat / timeout / unknown per
    instance within its timeout (attack, CROWN, branch and bound, Marabou; sat only with a
    counterexample re-checked on onnxruntime and in float64) and writes results.jsonl, one
    VNN-COMP result file ONNX_VNNLIB.txt per instance and summary.json to --out.

    Example:  specrob verify runs/digits-cr/model.onnx specs/cr.rspec --set eps=0.01 --points 100
    """
    if instances is not None or (spec is not None and _is_vnnlib(spec)):
        ignored = [name for name, given in (
            ("--set", bool(set_)), ("--points", points is not None),
            ("--property", prop is not None), ("--data", data != "digits"),
            ("--backend", backend != VerifyConfig.backend),
            ("--bounds", bounds != VerifyConfig.bounds),
            ("--workers", workers != VerifyConfig.workers),
            ("--cluster", cluster is not None), ("--shard", shard is not None)) if given]
        if ignored:
            _user_error(f"{', '.join(ignored)}: VNN-LIB instances state their own input box and "
                        f"output constraints and run every stage; these options apply to "
                        f".rspec properties only")
        _verify_vnnlib(model, spec, instances, timeout, semantics or "real", seed, out, fresh,
                       quiet, device)
        return
    if model is None or spec is None:
        _user_error("expected MODEL.onnx and SPEC (.rspec or .vnnlib), or --instances CSV")
    timeout = 60.0 if timeout is None else timeout
    semantics = semantics or "float32"
    console = Console(highlight=False, soft_wrap=True)
    with _user_errors(f"finished points are in {out / 'results.jsonl'}"):
        config = VerifyConfig(backend=backend, bounds=bounds, timeout=timeout, workers=workers,
                              points=points, seed=seed, semantics=semantics, device=device,
                              cluster=cluster, shard=shard)
        result = api.verify(model, spec, config=config, property=prop, data=data, out=out,
                            set=set_ or [], fresh=fresh, progress=not quiet)
    summary = result.summary
    cs = summary["constraint_satisfaction"]
    console.print(f"[bold]{summary['property']}[/bold] (eps {summary['eps']:g}, "
                  f"l_{summary['norm']}) on {summary['points']} centres: verified "
                  f"{summary['verified']}, falsified {summary['falsified']}, unknown "
                  f"{summary['unknown']}")
    console.print(f"semantics {semantics}: {summary['semantics']}", style="dim")
    console.print(f"constraint satisfaction CS = {cs['value']:.3f} "
                  f"[{cs['low']:.3f}, {cs['high']:.3f}]")
    console.print("by method: " + ", ".join(f"{k} {v}" for k, v in
                                            sorted(summary["by_method"].items())))
    console.print("seconds per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                   summary["stage_seconds"].items()))
    for text in result.notes:
        console.print(f"[dim]note: {escape(text)}[/dim]")
    pictures = summary.get("counterexample_images")
    console.print(f"wrote {out / 'results.jsonl'}, {out / 'summary.json'}"
                  + (f", {pictures}" if pictures else ""))


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="The folder of the merged run.",
                                        show_default=False)],
    shards: Annotated[list[Path], typer.Argument(
        help="The --out folders of `specrob verify --shard i/N` or `specrob eval --shard i/N`, "
             "all N of them.",
        show_default=False)],
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard results in OUT.")] = False,
) -> None:
    """Join the shard folders of one `specrob verify` or `specrob eval` run into one folder.

    Checks that the folders are the N finished shards of one run (same model, spec,
    settings, specrob version; each shard once). verify: OUT/results.jsonl with every
    centre's row and OUT/summary.json (counts and constraint satisfaction over all centres,
    seconds per stage summed). eval: OUT/results.json with every property's blocks joined
    (the numbers of one process) and shard 0's scores, and the plots. OUT is then the folder
    of the whole run: the same command with --out OUT finds everything done.

    Example:  specrob verify m.onnx specs/cr.rspec --shard 0/2 --out runs/s0   (and 1/2 to
    runs/s1, e.g. on two machines), then  specrob merge runs/all runs/s0 runs/s1
    """
    console = Console(highlight=False, soft_wrap=True)
    with _user_errors():
        merged = api.merge(out, shards, fresh=fresh)
    summary = merged.summary
    if merged.kind == "eval":
        from specrob.report import print_results
        print_results(summary, console)
        console.print(f"{len(shards)} shards joined; wrote {out / 'results.json'}")
        return
    cs = summary["constraint_satisfaction"]
    console.print(f"{len(shards)} shards, {summary['points']} centres: verified "
                  f"{summary['verified']}, falsified {summary['falsified']}, unknown "
                  f"{summary['unknown']}; CS = {cs['value']:.3f} [{cs['low']:.3f}, "
                  f"{cs['high']:.3f}]")
    console.print(f"wrote {out / 'results.jsonl'}, {out / 'summary.json'}")


@app.command()
def autoencoder(
    data: Annotated[str, typer.Option(help="digits | fashion-mnist[:DIR] | idx:DIR | "
                                           "PATH.npz (arrays x, y)")] = "digits",
    out: Annotated[Path, typer.Option(help="Output folder: autoencoder.py (the generator "
                                           "module), autoencoder.pt, autoencoder.json.")
                   ] = Path("runs/autoencoder"),
    latent: Annotated[int, typer.Option(min=1, help="Code size.")] = AutoencoderConfig.latent,
    epochs: Annotated[int, typer.Option(
        min=1, help="Epochs in all (a rerun resumes).")] = AutoencoderConfig.epochs,
    batch_size: Annotated[int, typer.Option(min=2, help="Batch size.")
                          ] = AutoencoderConfig.batch_size,
    lr: Annotated[float, typer.Option(callback=_positive, help="Adam's learning rate.")
                  ] = AutoencoderConfig.lr,
    mmd: Annotated[float, typer.Option(
        min=0.0, callback=_finite, help="Weight of the MMD between the codes and N(0, I) "
                                        "(Tolstikhin et al.: 10).")] = AutoencoderConfig.mmd,
    seed: Annotated[int, typer.Option(help="Random seed.")] = AutoencoderConfig.seed,
    device: Annotated[str, _device_option("the autoencoder's training steps")
                      ] = AutoencoderConfig.device,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train the generator of the on-manifold kernel: a Wasserstein autoencoder on the data.

    The on-manifold scores of specs/manifold.rspec draw dec(enc(x) + N(0, sigma^2)) around
    each point (Tibo et al., seed 000, eq. 13); this command trains enc and dec (WAE-MMD,
    Tolstikhin et al. 2018) and writes the generator module they load.

    Example:  specrob autoencoder --data fashion-mnist --out runs/ae

    then  specrob eval model.onnx specs/manifold.rspec --data fashion-mnist
    --set generator=runs/ae/autoencoder.py  (on-manifold scores)

    or  specrob train model.py specs/cr.rspec --data fashion-mnist --regime on-manifold
    --generator runs/ae/autoencoder.py  (R4 training)
    """
    console = Console(highlight=False, soft_wrap=True)
    with _user_errors(f"finished epochs are in {out}"):
        config = AutoencoderConfig(latent=latent, epochs=epochs, batch_size=batch_size, lr=lr,
                                   mmd=mmd, seed=seed, device=device)
        module = api.train_autoencoder(data=data, out=out, config=config, progress=not quiet)
    console.print(f"wrote {module} (and autoencoder.pt); use it with "
                  f"--set generator={module} (specs/manifold.rspec) or "
                  f"--regime on-manifold --generator {module}")


def _is_vnnlib(path: Path) -> bool:
    return path.name.endswith((".vnnlib", ".vnnlib.gz"))


def _verify_vnnlib(model: Path | None, prop: Path | None, instances: Path | None,
                   timeout: float | None, semantics: str, seed: int, out: Path, fresh: bool,
                   quiet: bool, device: str = "cpu") -> None:
    """`specrob verify` on VNN-COMP instances: one (model, property) or an instances.csv."""
    console = Console(highlight=False, soft_wrap=True)
    with _user_errors(f"finished instances are in {out / 'results.jsonl'}"):
        result = api.verify_instances(instances=instances, model=model, property=prop,
                                      timeout=timeout, semantics=semantics, seed=seed,
                                      out=out, fresh=fresh, progress=not quiet,
                                      device=device)
    results, summary = result.rows, result.summary
    if len(results) == 1:
        r = results[0]
        console.print(f"{r['instance']}: [bold]{r['status']}[/bold] ({r['method']}, "
                      f"{r['seconds']:.1f} s)" + (f" - {escape(r['reason'])}" if r['reason']
                                                   else ""))
    console.print(f"{summary['finished']} instances: " + ", ".join(
        f"{s} {summary[s]}" for s in ("unsat", "sat", "timeout", "unknown")) +
        f" (semantics {semantics})")
    console.print(f"wrote {out / 'results.jsonl'}, {out / 'summary.json'} and one "
                  f"<onnx>_<vnnlib>.txt per instance")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="The ONNX model.", show_default=False)],
    spec: Annotated[Path, typer.Argument(help="The .rspec file.", show_default=False)],
    format: Annotated[str, typer.Option("--format", help="vnnlib")] = "vnnlib",
    prop: Annotated[Optional[str], typer.Option(
        "--property", help="Which property (default: the first).")] = None,
    data: Annotated[str, typer.Option(help="digits | fashion-mnist[:DIR] | idx:DIR | "
                                           "PATH.npz")] = "digits",
    points: Annotated[Optional[int], typer.Option(min=1, help="At most this many centres.")] = 10,
    timeout: Annotated[float, typer.Option(callback=_positive, help="The timeout written to "
                                               "instances.csv.")] = 60.0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/vnnlib"),
    set_: SetOption = None,
) -> None:
    """Export verification queries for other verifiers (VNN-COMP's VNN-LIB + ONNX).

    One point_I.vnnlib per centre (the input box and the negated property: a verifier
    answers unsat where the property holds), model.onnx and instances.csv.

    Example:  specrob export runs/digits-cr/model.onnx specs/cr.rspec --set eps=0.01
    """
    with _user_errors():
        result = api.export(model, spec, format=format, property=prop, data=data,
                            points=points, timeout=timeout, out=out, set=set_ or [])
    Console(highlight=False).print(f"wrote {result.queries} queries to {out} "
                                   f"(instances.csv, model.onnx, point_*.vnnlib)")


@app.command()
def reproduce(
    paper: Annotated[str, typer.Argument(
        help="casadio | shaham | tibo | lassance | tibo-transfer | tibo-manifold | certified",
        show_default=False)],
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="A tiny budget (about a minute) that checks the script end to end; "
                        "falls back to digits when Fashion-MNIST is absent.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        help="Where the page PAPER.md, PAPER.json and the figures PAPER/*.png go "
             "(default: docs/results; with --smoke: runs/reproduce/smoke-results).",
        show_default=False)] = None,
    work: Annotated[Path, typer.Option(help="Trained networks and finished stages (a rerun "
                                            "resumes from them).")] = Path("runs/reproduce"),
    data: Annotated[Optional[str], typer.Option(
        help="Override the paper's dataset: digits | fashion-mnist[:DIR] | idx:DIR | "
             "PATH.npz")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[int, typer.Option(min=1, max=256, help="torch threads (1 is fastest on a busy "
                                              "2-core machine).")] = 1,
    fresh: Annotated[bool, typer.Option(help="Retrain and recompute everything.")] = False,
    budget: Annotated[str, typer.Option(
        callback=_choice("quick", "paper"),
        help="quick: a budget of minutes on a CPU (the committed pages say theirs); paper: "
             "the paper's (or the authors' code's) epochs, optimiser and net sizes (hours on a "
             "CPU; resumable, in WORK/PAPER/paper).")] = "quick",
    epochs: Annotated[Optional[int], typer.Option(
        min=1, help="Train every net at most this many epochs, e.g. --budget paper --epochs "
                    "20: the largest paper budget that fits your machine (said on the page; "
                    "work folder WORK/PAPER/paper-20ep).", show_default=False)] = None,
    device: Annotated[str, _device_option(
        "the networks (training) and the estimators")] = "cpu",
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
) -> None:
    """Reproduce a seed paper's experiments; write its results page with the paper's numbers.

    Each paper trains its networks with specrob's regimes, evaluates them with specrob's
    estimators (and verifier), and writes docs/results/PAPER.md: tables and PNG figures
    beside the paper's own numbers, the paper's claims checked one by one, and a table of how
    the run differs from the authors' experiments. With the default --budget quick a full run
    takes minutes to an hour on a 2-core CPU; --budget paper runs the authors' epochs and
    optimisers (about 10 minutes for tibo, hours for the others; --epochs N cuts them); an
    interrupted run resumes (same command).

    - **casadio**   seed 003, Fashion-MNIST: the 7 training regimes as the authors' code
               trains them (and the text's readings beside), Table 2, security curves
               under SR/SCR/LR attacks (Figs. 2-4), constraint accuracy, and constraint
               satisfaction from `specrob verify`.
    - **shaham**    seed 002: robust optimisation with l_1/l_2/l_inf sets at the authors'
               radii, SGD and input batch norm; Table 1 (clean and A_mnist accuracy),
               FGSM accuracy curves (Fig. 3), accuracies over 3 seeds.
    - **tibo**      seeds 000/001: co-training vs baseline vs HEIN (Cross-Lipschitz);
               Table 1, margin curves and areas (Fig. 3), the attacks' shares of closest
               examples (Table 3), over 3 seeds.
    - **lassance**  seed 004: Vanilla, PGD, Parseval, Laplacian, L2NN (and a LocalLipschitz
               constraint net): alpha_lim(r) (Fig. 5), dataset incompatibility (Figs. 1, 3),
               accuracy under Gaussian noise vs SNR (Fig. 4).
    - **tibo-transfer**  seed 001 section 4: transfer by paired autoencoders (regime
               adapt) against PLAIN and Gaussian noise augmentation, on corrupted
               Fashion-MNIST (3 corruptions x 2 sample sizes x SEPARATE / JOINT).
    - **tibo-manifold**  seed 000 section 7: a WAE generator, then R4 training (regime
               on-manifold) against Stutz et al.'s on-manifold adversarial training and R2
               co-training, each scored under R2 and R4 (Tables 4 and 5).
    - **certified**  issue 17: CR trained by the constraint loss, PGD, and certified
               training (IBP, CROWN-IBP, IBP + PGD) on the seed 003 MLP and a small CNN,
               judged by `specrob verify`'s constraint satisfaction at eps 0.01 / 0.05 / 0.1.

    Example:  specrob reproduce casadio        (then read docs/results/casadio.md)
    """
    import torch

    torch.set_num_threads(max(1, threads))
    with _user_errors(f"trained networks and finished stages are in {work / paper}"):
        page = api.reproduce(paper, smoke=smoke, out=out, work=work, data=data, seed=seed,
                             fresh=fresh, progress=not quiet, device=device, budget=budget,
                             epochs=epochs)
    Console(highlight=False).print(f"wrote {page}")


def run() -> None:
    """Console entry point: never a traceback for a user's mistake."""
    from specrob.errors import SpecrobError
    from specrob.process import bound_heap
    bound_heap()  # peak memory follows what is alive (see specrob/process.py)
    try:
        app()
    except SpecError as error:
        fail(error)
        sys.exit(2)
    except SpecrobError as error:  # every user error not caught by its command
        Console(stderr=True, highlight=False, soft_wrap=True, emoji=False).print(
            f"[red]error:[/red] {escape(str(error))}")
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
