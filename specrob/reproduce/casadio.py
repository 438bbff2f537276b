"""Casadio et al. 2022 (seed 003), "Neural network robustness as a verification property":
seven training regimes on Fashion-MNIST, evaluated by constraint security under SR, SCR and LR
attacks (Figs. 2-4, App. A), clean accuracy (Table 2), constraint accuracy (Def. 7) and, beyond
the paper, constraint satisfaction (Def. 5) from `specrob verify`.

Everything comes from one spec text (`SPEC` below, the paper's parameters): the same
properties are the constraint losses of training, the attacks' objectives and the verifier's
queries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import specrob
from specrob.estimate.security import accuracy_at, at_radius, security_curve
from specrob.search.attacks import default_attacks
from specrob.logic.compiled import CompiledProperty
from specrob.reproduce.common import Options, Run, accuracy, pct, plot_curves, table, tensors
from specrob.training.trainer import TrainConfig

# §4, "Settings": a = 1, b = 0.2, eps = 0.1, delta = 10, eta = 0.52, L = 10, l_inf.
SPEC = """\
# Casadio et al. 2022, Section 4: the three constraints with the paper's parameters.
property SR_paper = SR(eps = 0.1, delta = 10)
property SCR_paper = SCR(eps = 0.1, eta = 0.52)
property LR_paper = LR(eps = 0.1, L = 10)
"""
NOTIONS = {"SR": "SR_paper", "SCR": "SCR_paper", "LR": "LR_paper"}

# name, the paper's row label, the property whose ball (and loss) training uses, regime options
REGIMES = (
    ("baseline", "Baseline", "SR", {"regime": "baseline"}),
    ("aug-ru", "Data Augmentation (RU)", "SR", {"regime": "augmentation", "augment": "uniform"}),
    ("aug-fgsm", "Data Augmentation (FGSM)", "SR", {"regime": "augmentation", "augment": "fgsm"}),
    ("adversarial", "Adversarial Training", "SR", {"regime": "adversarial", "adv_steps": 1}),
    ("constraint-sr", "Constraint Loss (SR)", "SR", {"regime": "constraint"}),
    ("constraint-scr", "Constraint Loss (SCR)", "SCR", {"regime": "constraint"}),
    ("constraint-lr", "Constraint Loss (LR)", "LR", {"regime": "constraint"}),
)
LABEL = {name: label for name, label, _, _ in REGIMES}
# Table 2: standard test-set accuracy (%), FASHION and GTSRB columns
PAPER_TABLE2 = {"baseline": (88.2, 92.4), "aug-ru": (88.6, 92.8), "aug-fgsm": (88.8, 94.5),
                "adversarial": (85.1, 83.5), "constraint-sr": (88.2, 93.3),
                "constraint-scr": (88.1, 91.9), "constraint-lr": (86.6, 93.1)}
LR_MARABOU = "constraint-lr"  # the one net whose LR queries also go to Marabou (slow)
EPS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1)  # the figures' x axis


@dataclass(frozen=True)
class Budget:
    epochs: int
    lr: float
    pgd_steps: int         # PGD steps of the constraint loss's inner search
    train: int | None      # training points (None: all 60k)
    test: int | None       # test points for clean accuracy (None: all 10k)
    security_points: int   # test points attacked per eps
    samples: int           # uniform samples per point for constraint accuracy
    verify_points: int
    verify_eps: float
    verify_timeout: float  # seconds per Marabou query
    lr_marabou_points: int  # LR through Marabou: this many points of the LR-trained net


FULL = Budget(epochs=8, lr=1e-3, pgd_steps=5, train=None, test=None, security_points=1000,
              samples=50, verify_points=100, verify_eps=0.01, verify_timeout=10.0,
              lr_marabou_points=3)
SMOKE = Budget(epochs=1, lr=1e-3, pgd_steps=2, train=1500, test=300, security_points=60,
               samples=10, verify_points=8, verify_eps=0.01, verify_timeout=5.0,
               lr_marabou_points=1)


def build_net(input_dim: int, classes: int) -> nn.Module:
    """§4 "Networks": F1: R^n -> R^100 with ReLU, F0: R^100 -> R^10 with clamp(-100, 100);
    softmax only inside the training loss. The model file examples/fashion_mnist_net.py, read
    as any user's model file is."""
    from specrob.network.model_file import build_model
    from specrob.resources import examples_dir
    return build_model(examples_dir() / "fashion_mnist_net.py", input_dim, classes)


def run(options: Options, command: str) -> Path:
    run = Run("casadio", "Casadio et al. (seed 003): constraint-driven training, attacks and "
                         "verification on Fashion-MNIST", options, command)
    budget = SMOKE if options.smoke else FULL
    data = run.dataset("fashion-mnist", train=budget.train, test=budget.test)
    run.settings(budget=asdict(budget))
    spec_path = run.work / "casadio.rspec"
    spec_path.write_text(SPEC)
    spec = specrob.load(spec_path)
    props = {short: spec[name] for short, name in NOTIONS.items()}

    nets: dict[str, nn.Module] = {}
    for name, _, notion, regime in REGIMES:
        torch.manual_seed(options.seed)
        config = TrainConfig(epochs=budget.epochs, batch_size=128, lr=budget.lr, seed=options.seed,
                             a=1.0, b=0.2, steps=budget.pgd_steps, eval_points=256,
                             eval_steps=10, **regime)
        nets[name] = run.train(name, build_net(data.input_dim, data.classes), props[notion],
                               data, config)

    x_test, y_test = tensors(data, "test")
    clean = run.stage("clean-accuracy", lambda: {n: accuracy(m, x_test, y_test)
                                                 for n, m in nets.items()})
    x0, y0 = tensors(data, "test", budget.security_points)
    security = {n: run.stage(f"security-{n}", lambda m=m: _security(m, props, x0, y0, options.seed))
                for n, m in nets.items()}
    cacc = {n: run.stage(f"constraint-accuracy-{n}",
                         lambda m=m: _constraint_accuracy(m, props, x0, y0, budget.samples,
                                                          options.seed))
            for n, m in nets.items()}
    verdicts = {n: run.stage(f"verify-{n}", lambda n=n, m=m: _verify(run, n, m, spec_path, x0,
                                                                    y0, budget))
                for n, m in nets.items()}
    run.results.update({"spec": SPEC, "clean_accuracy": clean, "security": security,
                        "constraint_accuracy": cacc, "constraint_satisfaction": verdicts,
                        "eps": list(EPS)})

    _table2(run, clean, data)
    _figures(run, security)
    _security_tables(run, security, budget)
    _accuracy_table(run, cacc, budget)
    _verification_table(run, verdicts, budget)
    _claims(run, clean, security, cacc)
    return run.finish(
        paper_ref="Marco Casadio, Ekaterina Komendantskaya, Matthew L. Daggitt, Wen Kokke, Guy "
                  "Katz, Guy Amir, Idan Refaeli: *Neural Network Robustness as a Verification "
                  "Property: A Principled Case Study* (CAV 2022; seed 003, the ICLR submission "
                  "text).",
        budget=f"{budget.epochs} epochs per network (the paper: 100) at Adam lr {budget.lr:g} "
               f"(the paper: 1e-4 — ten times larger so that {budget.epochs} epochs get near "
               f"the accuracy the paper's 100 reach), batch 128, "
               f"{'all 60000' if budget.train is None else budget.train} training points; "
               f"constraint loss with DL2 (a = 1, b = 0.2) at a {budget.pgd_steps}-step PGD "
               f"point; security on the first {len(y0)} test points (PGD-20 with 2 random "
               f"restarts, PGD-20 from the centre and FGSM; worst case per point), constraint "
               f"accuracy from {budget.samples} uniform samples per point; `specrob verify` on "
               f"the first {budget.verify_points} test points at eps = {budget.verify_eps:g}.",
        summary=_summary(run, clean, security))


# --- evaluation ---------------------------------------------------------------------------
def _security(model: nn.Module, props: dict, x0: torch.Tensor, y0: torch.Tensor,
              seed: int) -> dict:
    """Constraint security (Def. 6) per eps under each notion's attack: the notion's own
    violation maximised by PGD/FGSM, every counterexample re-checked."""
    out = {}
    for notion, prop in props.items():
        curve = security_curve(prop, model, x0, y0, list(EPS), attacks=default_attacks(),
                               seed=seed)
        out[notion] = [r.as_dict() for r in curve]
    return out


def _constraint_accuracy(model: nn.Module, props: dict, x0: torch.Tensor, y0: torch.Tensor,
                         samples: int, seed: int) -> dict:
    """Constraint accuracy (Def. 7) at the paper's eps = 0.1: uniform samples of the ball."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for notion, prop in props.items():
        compiled = at_radius(CompiledProperty(prop, x0.shape[-1]), EPS[-1])
        out[notion] = accuracy_at(compiled, model, x0, y0, samples, gen).as_dict()
    return out


def _verify(run: Run, name: str, model: nn.Module, spec_path: Path, x0: torch.Tensor,
            y0: torch.Tensor, budget: Budget) -> dict:
    """Constraint satisfaction (Def. 5) on the exported ONNX network by the pipeline of
    `specrob verify` (attack, CROWN, Marabou; in-process to spare 21 interpreter starts). LR
    gets bound propagation only: its Marabou queries (a max over 784 |x_i - x0_i|) timed out
    on every point tried, see LR_MARABOU."""
    from specrob.network import load_onnx_checked
    from specrob.training.export import export_onnx
    from specrob.verification.pipeline import Verifier, VerifyConfig

    onnx_path = run.work / name / "model.onnx"
    export_onnx(model, x0[:64], onnx_path)
    net, module = load_onnx_checked(onnx_path)
    spec = specrob.load(spec_path, eps=budget.verify_eps)
    out = {}
    for notion, prop_name in NOTIONS.items():
        lr = notion == "LR"
        points = budget.lr_marabou_points if lr and name == LR_MARABOU else budget.verify_points
        backend = "auto" if not lr or name == LR_MARABOU else "bounds"
        config = VerifyConfig(backend=backend, timeout=budget.verify_timeout, points=points,
                              seed=run.options.seed)
        folder = run.work / name / f"verify-{notion}-{config.key()}"  # resumable per settings
        verifier = Verifier(spec[prop_name], onnx_path, net, module, x0[:points], y0[:points],
                            config, out=folder)
        try:
            verifier.resume()
            verifier.run()
        finally:
            verifier.close()
        summary = verifier.summary()
        out[notion] = {k: summary[k] for k in ("points", "verified", "falsified", "unknown",
                                               "constraint_satisfaction", "by_method",
                                               "stage_seconds")}
        out[notion]["command"] = (
            f"specrob verify {onnx_path} {spec_path} --property {prop_name} --set "
            f"eps={budget.verify_eps:g} --points {points} --data {run.data_spec} --timeout "
            f"{budget.verify_timeout:g}" + ("" if backend == "auto" else f" --backend {backend}"))
    return out


# --- the page -----------------------------------------------------------------------------
def _values(security: dict, name: str, notion: str) -> list[float]:
    return [row["security"]["value"] for row in security[name][notion]]


def _mean_attacked(security: dict, name: str, notion: str) -> float:
    """Mean security over the attacked radii eps > 0 (the area under a Fig. 2-4 curve / 0.1)."""
    vals = _values(security, name, notion)[1:]
    return sum(vals) / len(vals)


def _table2(run: Run, clean: dict, data) -> None:
    rows = [[LABEL[n], pct(clean[n]), f"{PAPER_TABLE2[n][0]:.1f}", f"{PAPER_TABLE2[n][1]:.1f}"]
            for n in LABEL]
    run.section(f"## Table 2: clean test accuracy (%)\n\nOurs on all {data.test_size} test "
                f"points of {data.name}; the paper's FASHION column is the comparable one "
                f"(GTSRB is not reproduced).\n\n"
                + table(["training regime", "ours", "paper (FASHION)", "paper (GTSRB)"], rows))


FIGURES = (  # file, the paper's figure, the regimes plotted, the attack
    ("fig2-lr-trained", "Fig. 2 (left)", ("constraint-lr",), None),
    ("fig2-sr-trained", "Fig. 2 (right)", ("constraint-sr",), None),
    ("fig3-constraints-sr-attack", "Fig. 3 / Fig. 8",
     ("baseline", "constraint-sr", "constraint-scr", "constraint-lr"), "SR"),
    ("fig4-regimes-sr-attack", "Fig. 4 / Fig. 5",
     ("baseline", "aug-ru", "aug-fgsm", "adversarial", "constraint-sr"), "SR"),
    ("fig6-regimes-scr-attack", "Fig. 6", ("baseline", "aug-ru", "aug-fgsm", "adversarial",
                                           "constraint-sr"), "SCR"),
    ("fig7-regimes-lr-attack", "Fig. 7", ("baseline", "aug-ru", "aug-fgsm", "adversarial",
                                          "constraint-sr"), "LR"),
    ("fig9-constraints-lr-attack", "Fig. 9",
     ("baseline", "constraint-sr", "constraint-scr", "constraint-lr"), "LR"),
    ("fig10-constraints-scr-attack", "Fig. 10",
     ("baseline", "constraint-sr", "constraint-scr", "constraint-lr"), "SCR"),
)


def _figures(run: Run, security: dict) -> None:
    lines = ["## Constraint security against SR, SCR and LR attacks (Figs. 2-10)", "",
             "Constraint security (Def. 6): the share of test points where no attack finds a "
             "violation of the constraint in the l_inf ball of radius eps (every counterexample "
             "re-checked on the network). Shaded: 95% Wilson intervals.", ""]
    for file, paper_fig, names, attack in FIGURES:
        path, link = run.figure(file)
        if attack is None:  # Fig. 2: one network, the three attacks
            (name,) = names
            series = {f"{a} attack": _values(security, name, a) for a in NOTIONS}
            bands = {f"{a} attack": _band(security[name][a]) for a in NOTIONS}
            title = f"{LABEL[name]}: security against each attack"
        else:
            series = {LABEL[n]: _values(security, n, attack) for n in names}
            bands = {LABEL[n]: _band(security[n][attack]) for n in names}
            title = f"Robustness against the {attack} attack"
        plot_curves(path, list(EPS), series, bands=bands, xlabel="epsilon (l_inf)",
                    ylabel="constraint security", title=title, ylim=(-0.02, 1.02))
        lines += [f"**{paper_fig}** — {title}", "", f"![{paper_fig}]({link})", ""]
    run.section("\n".join(lines))


def _band(rows: list[dict]) -> tuple[list[float], list[float]]:
    return [r["security"]["low"] for r in rows], [r["security"]["high"] for r in rows]


def _security_tables(run: Run, security: dict, budget: Budget) -> None:
    parts = ["## Constraint security (%) per eps", ""]
    for notion in NOTIONS:
        rows = [[LABEL[n], *[pct(v) for v in _values(security, n, notion)]] for n in LABEL]
        parts += [f"**{notion} attack**", "",
                  table(["training regime", *[f"eps {e:g}" for e in EPS]], rows), ""]
    run.section("\n".join(parts))


def _accuracy_table(run: Run, cacc: dict, budget: Budget) -> None:
    rows = [[LABEL[n], *[pct(cacc[n][a]["value"]) for a in NOTIONS]] for n in LABEL]
    run.section(f"## Constraint accuracy (%) at eps = 0.1 (Def. 7)\n\nThe mean share of "
                f"{budget.samples} uniform samples of each ball where the constraint holds. "
                f"The paper reports 100% (SR) and > 98% (SCR) and calls these numbers "
                f"deceivingly high: random sampling misses the adversarial examples PGD "
                f"finds.\n\n" + table(["training regime", "SR", "SCR", "LR"], rows))


def _verification_table(run: Run, verdicts: dict, budget: Budget) -> None:
    rows = []
    for n in LABEL:
        cells = []
        for a in NOTIONS:
            v = verdicts[n][a]
            cells.append(f"{pct(v['constraint_satisfaction']['value'])} "
                         f"({v['verified']}/{v['falsified']}/{v['unknown']})")
        rows.append([LABEL[n], *cells])
    example = verdicts["constraint-sr"]["SR"]["command"]
    run.section(
        f"## Constraint satisfaction (%) from `specrob verify` (Def. 5, beyond the paper)\n\n"
        f"The paper left constraint satisfaction to future work (its preliminary Marabou runs "
        f"found it very hard to achieve). Here: the first {budget.verify_points} test points at "
        f"eps = {budget.verify_eps:g} (a tenth of the training radius), each verdict sound: "
        f"verified by bound propagation or Marabou, falsified only with a counterexample "
        f"re-checked by onnxruntime, unknown otherwise (Marabou timeout "
        f"{budget.verify_timeout:g} s). LR is checked by the attack and bound propagation "
        f"only, except on the LR-trained net, whose first {budget.lr_marabou_points} points may "
        f"also go to Marabou: an LR query carries a max over all |x_i - x0_i|, and in our "
        f"trials Marabou timed out on such queries ({_lr_marabou(verdicts)}). "
        f"Cells: CS (verified/falsified/unknown). The same verdicts come from, e.g.:\n\n"
        f"```\n{example}\n```\n\n"
        + table(["training regime", "SR", "SCR", "LR"], rows))


def _lr_marabou(verdicts: dict) -> str:
    """What happened to the LR queries that reached Marabou in this run."""
    lr = verdicts[LR_MARABOU]["LR"]
    tried = sum(n for k, n in lr["by_method"].items() if k.endswith("by marabou"))
    if not tried:
        return "here the attack settled every LR point before Marabou"
    return (f"here {tried} LR point(s) reached Marabou: "
            + ", ".join(f"{n} {k}" for k, n in sorted(lr["by_method"].items())))


def _claims(run: Run, clean: dict, security: dict, cacc: dict) -> None:
    m = lambda n, a: _mean_attacked(security, n, a)
    f = lambda v: f"{100 * v:.1f}"
    worst = min(clean, key=clean.get)
    run.claim("Table 2: the most notable accuracy drop occurs for adversarial training",
              worst == "adversarial",
              f"lowest clean accuracy: {LABEL[worst]} ({pct(clean[worst])}%)")
    drop = max(clean["baseline"] - clean[n] for n in ("constraint-sr", "constraint-scr",
                                                      "constraint-lr"))
    run.claim("Table 2: constraint training does not deteriorate accuracy drastically "
              "(the paper: at most 1.6 points below the baseline; read: within 2 points)",
              drop <= 0.02,
              f"largest drop of a constraint-trained net: {100 * drop:.1f} points")
    run.claim("E1 (Fig. 2): the LR-trained net has higher security than the SR-trained one "
              "against both the SR and the LR attack",
              m("constraint-lr", "SR") > m("constraint-sr", "SR")
              and m("constraint-lr", "LR") > m("constraint-sr", "LR"),
              f"mean security over eps > 0, LR-trained vs SR-trained: SR attack "
              f"{f(m('constraint-lr', 'SR'))} vs {f(m('constraint-sr', 'SR'))}, LR attack "
              f"{f(m('constraint-lr', 'LR'))} vs {f(m('constraint-sr', 'LR'))}")
    lr_weakest = all(m(n, "LR") <= min(m(n, "SR"), m(n, "SCR"))
                     for n in ("constraint-sr", "constraint-lr"))
    run.claim("E1 (Fig. 2): trained with SR or LR, a net is less robust against the LR attack "
              "than against any other attack", lr_weakest,
              "; ".join(f"{LABEL[n]}: " + ", ".join(f"{a} {f(m(n, a))}" for a in NOTIONS)
                        for n in ("constraint-sr", "constraint-lr")))
    run.claim("E2 (Fig. 3): training with the SCR constraint does not help against SR attacks",
              m("constraint-scr", "SR") <= m("baseline", "SR") + 0.05,
              f"mean SR security: SCR-trained {f(m('constraint-scr', 'SR'))}, baseline "
              f"{f(m('baseline', 'SR'))}")
    run.claim("E3 (Fig. 4): adversarial training gives the most robustness against SR attacks, "
              "Constraint Loss (SR) almost as much, both above the baseline",
              m("adversarial", "SR") >= m("constraint-sr", "SR") > m("baseline", "SR"),
              f"mean SR security: adversarial {f(m('adversarial', 'SR'))}, constraint SR "
              f"{f(m('constraint-sr', 'SR'))}, baseline {f(m('baseline', 'SR'))}")
    run.claim("E3 (Fig. 4): networks trained with data augmentation are worse than even the "
              "baseline (SR attack)",
              max(m("aug-ru", "SR"), m("aug-fgsm", "SR")) < m("baseline", "SR"),
              f"mean SR security: RU {f(m('aug-ru', 'SR'))}, FGSM {f(m('aug-fgsm', 'SR'))}, "
              f"baseline {f(m('baseline', 'SR'))}")
    run.claim("E4 (Fig. 4): augmentation by random uniform sampling is less successful than by "
              "FGSM", m("aug-ru", "SR") < m("aug-fgsm", "SR"),
              f"mean SR security: RU {f(m('aug-ru', 'SR'))}, FGSM {f(m('aug-fgsm', 'SR'))}")
    top_lr = max(_values(security, n, "LR")[-1] for n in LABEL)
    run.claim("App. A: no training technique succeeds in ensuring robustness against LR "
              "attacks (read: LR security below 50% at eps = 0.1 for every net)", top_lr < 0.5,
              f"best LR security at eps 0.1: {f(top_lr)}%")
    sr_acc = min(cacc[n]["SR"]["value"] for n in LABEL)
    scr_acc = min(cacc[n]["SCR"]["value"] for n in LABEL)
    run.claim("§4: constraint accuracy (random sampling) is deceivingly high: 100% for SR, "
              "> 98% for SCR", sr_acc >= 0.995 and scr_acc > 0.98,
              f"lowest over the nets: SR {f(sr_acc)}%, SCR {f(scr_acc)}%")


def _summary(run: Run, clean: dict, security: dict) -> str:
    base = clean["baseline"]
    held = [c for c in run.claims if c.holds]
    failed = [c for c in run.claims if not c.holds]
    text = (f"Our baseline reaches {pct(base)}% clean accuracy against the paper's 88.2% "
            f"(its 100 epochs vs our {len(run.results['training']['baseline'])}). ")
    if held:
        text += ("Agreeing with the paper: " + "; ".join(c.text.split(": ", 1)[-1]
                                                         for c in held) + ". ")
    if failed:
        text += ("Differing from the paper: " + "; ".join(
            f"{c.text.split(': ', 1)[-1]} (ours: {c.ours})" for c in failed) + ". ")
    text += ("Expected sources of difference: far fewer epochs at a larger learning rate, "
             "our attack (PGD-20 with restarts plus FGSM, worst case per point) is likely "
             "stronger than the paper's single PGD, and the paper's curves are from one "
             "training run each (so are ours: no error bars across seeds).")
    return text
