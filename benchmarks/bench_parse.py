"""Parse + check every spec in specs/: milliseconds per spec after import (aim: < 20 ms).

Reference run in the same process: lark's bare LALR parse of the same text with the same
grammar, so the ratio shows what the AST, checker and desugaring add on top of parsing.
The sympy normal form (what `specrob check` prints) is timed separately.

    python benchmarks/bench_parse.py [--repeat 50]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from specrob.lang.loader import load, prelude
from specrob.lang.normal import _cached_atom, linear_forms, normal_formula
from specrob.lang.parser import _lark

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.rspec"))


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()

    t = time.perf_counter()
    prelude()  # grammar construction + the standard library templates, once per process
    print(f"first use (grammar + standard library): {1000 * (time.perf_counter() - t):.1f} ms")

    def normal(path):
        _cached_atom.cache_clear()
        for prop in load(path).properties:
            normal_formula(prop.body, prop.var)
            linear_forms(prop)

    print(f"{'spec':<16}{'lark parse':>12}{'parse+check':>13}{'ratio':>8}{'+ sympy':>10}")
    totals = []
    for path in SPECS:
        text = path.read_text()
        raw = best_ms(lambda: _lark().parse(text), args.repeat)
        full = best_ms(lambda: load(path), args.repeat)
        sym = best_ms(lambda: normal(path), max(3, args.repeat // 10))
        totals.append(full)
        print(f"{path.name:<16}{raw:>10.2f}ms{full:>11.2f}ms{full / raw:>7.2f}x{sym:>8.1f}ms")
    worst = max(totals)
    print(f"parse+check: mean {sum(totals) / len(totals):.2f} ms, worst {worst:.2f} ms per spec "
          f"({'meets' if worst < 20 else 'MISSES'} the 20 ms aim)")


if __name__ == "__main__":
    main()
