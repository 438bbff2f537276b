"""The package type-checks: pyright in basic mode (pyproject's [tool.pyright]) reports no
error, so a new IR node that a walker forgets fails here (the walkers end in assert_never)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyright(*args: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "pyright", "--outputjson", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    return json.loads(run.stdout)


def _errors(report: dict) -> list[str]:
    return [f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
            for d in report["generalDiagnostics"] if d["severity"] == "error"]


def test_the_package_is_clean_in_pyright_basic_mode():
    report = _pyright()
    assert report["summary"]["filesAnalyzed"] > 50
    errors = _errors(report)
    assert not errors, "pyright (basic) finds:\n" + "\n".join(errors)


def test_a_walker_that_forgets_an_ir_node_fails_type_checking(tmp_path):
    # the oracle for the check above: a dispatch that misses one formula kind is an error
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import assert_never\n"
        "from specrob.lang import ir\n\n"
        "def kind(f: ir.Formula) -> str:\n"
        "    if isinstance(f, (ir.Compare, ir.IndexCompare, ir.Truth, ir.And, ir.Or)):\n"
        "        return 'known'\n"
        "    assert_never(f)\n")
    errors = _errors(_pyright("--pythonpath", sys.executable, str(probe)))
    assert any("IndexQuant" in e for e in errors), errors
