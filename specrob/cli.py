"""The `specrob` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from specrob.lang.errors import SpecError

app = typer.Typer(
    name="specrob",
    help="Robustness specifications of neural-network classifiers: write a property once in "
         ".rspec, then check it, train under it, evaluate it and verify it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="NAME=VALUE",
                 help="Override a parameter of every declaration that has it, e.g. "
                      "--set eps=0.05 --set p=2 (repeatable)."),
]

LEVEL_STYLE = {"exact": "green", "sound": "yellow", "bound": "yellow", "no": "red"}


def fail(error: SpecError) -> None:
    """Print one located error message on stderr."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(error.format()))


@app.callback()
def main() -> None:
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
    from specrob.lang.summary import describe

    results, failed = [], False
    for path in specs:
        try:
            spec = load(path, overrides_from_cli(set_ or []))
            results.append(describe(spec))
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


def run() -> None:
    """Console entry point: never a traceback for a user's mistake."""
    try:
        app()
    except SpecError as error:  # pragma: no cover - commands catch their own
        fail(error)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
