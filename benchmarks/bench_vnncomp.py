"""specrob on a VNN-COMP benchmark as published: decided / wrong / time per network and eps,
beside the verdicts and the counts of the VNN-COMP 2021 tools.

Default: the VNN-COMP 2021 `mnistfc` benchmark in ../shared/benchmarks/vnncomp2021-mnistfc
(three fixed-batch (1, 784, 1) ReLU networks 256x2, 256x4, 256x6; 15 properties at eps 0.03 and
0.05; 120 s each) with its reference.csv (the verdict the 2021 tools agreed on and who decided
each instance). Each instance runs through `specrob.verification.instance.verify_instance`, the code
behind `specrob verify --instances` (attack, CROWN, alpha-CROWN, branch and bound, Marabou;
"real" semantics as VNN-COMP reads it), one after the other in this process, with torch's
default threads (every core of the machine, as a VNN-COMP tool has; --threads to change).

A verdict is *wrong* when it contradicts the reference (sat where the tools agreed on unsat, or
the other way round); every sat counterexample has already been re-checked on onnxruntime and
in float64 by specrob. Results stream to --out (JSON lines; a rerun skips finished instances),
so the benchmark can be run a network at a time.

Usage:
    python benchmarks/bench_vnncomp.py [--nets 256x2,256x4] [--eps 0.03] [--timeout 120]
                                       [--out runs/bench-vnncomp.jsonl] [--only prop_1,prop_3]
The timeout defaults to each instance's own (120 s); it is the wall time of one instance on
this machine (2 cores), which is what VNN-COMP limits too.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO.parent / "shared" / "benchmarks" / "vnncomp2021-mnistfc"


def read_reference(folder: Path) -> dict[tuple[str, str], dict]:
    """The folder's reference.csv; none (every reference "?") for a folder without one, such
    as the networks of benchmarks/make_vnncomp_nets.py."""
    if not (folder / "reference.csv").exists():
        return {}
    with open(folder / "reference.csv") as f:
        return {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(f)}


def read_instances(folder: Path) -> list[tuple[str, str, float]]:
    rows = []
    for name in sorted(folder.glob("*instances.csv")):
        with open(name) as f:
            for onnx, vnnlib, timeout in csv.reader(f):
                rows.append((onnx.strip(), vnnlib.strip(), float(timeout)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=BENCH,
                        help="a VNN-COMP folder (*instances.csv; reference.csv optional), "
                             "e.g. runs/vnncomp-own from benchmarks/make_vnncomp_nets.py")
    parser.add_argument("--nets", default="", help="e.g. 256x2,256x4 (default: all)")
    parser.add_argument("--eps", default="", help="e.g. 0.03 (default: all)")
    parser.add_argument("--only", default="", help="property stems, e.g. prop_1,prop_3")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per instance")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-vnncomp.jsonl")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from specrob.network import load_onnx_checked
    from specrob.network.oracle import Oracle
    from specrob.verification.instance import verify_instance
    from specrob.verification.vnnlib_read import read_vnnlib

    reference = read_reference(args.folder)
    todo = [(o, v, t) for o, v, t in read_instances(args.folder)
            if (not args.nets or any(f"_{n}." in o for n in args.nets.split(",")))
            and (not args.eps or any(f"_{e}." in v for e in args.eps.split(",")))
            and (not args.only or any(v.startswith(p + "_") for p in args.only.split(",")))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["onnx"], row["vnnlib"], row["timeout"])] = row
    nets: dict[str, tuple] = {}
    for onnx, vnnlib, timeout in todo:
        timeout = args.timeout or timeout
        if (onnx, vnnlib, timeout) in done:
            continue
        if onnx not in nets:
            net, module = load_onnx_checked(args.folder / onnx)
            nets[onnx] = (net, module, Oracle(args.folder / onnx))
        net, module, oracle = nets[onnx]
        queries = read_vnnlib(args.folder / vnnlib)
        start, cpu = time.perf_counter(), time.process_time()
        result = verify_instance(args.folder / onnx, net, module, queries, timeout=timeout,
                                 oracle=oracle)
        ref = reference.get((onnx, vnnlib), {})
        row = {"onnx": onnx, "vnnlib": vnnlib, "timeout": timeout, "status": result.status,
               "method": result.method, "seconds": round(time.perf_counter() - start, 2),
               "cpu_seconds": round(time.process_time() - cpu, 2),
               "reference": ref.get("verdict_2021", "?"), "reason": result.reason[:300],
               "threads": torch.get_num_threads()}
        done[(onnx, vnnlib, timeout)] = row
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{onnx:22s} {vnnlib:24s} {row['status']:8s} {row['method']:12s} "
              f"{row['seconds']:7.1f} s   reference {row['reference']}", flush=True)
    report([done[(o, v, args.timeout or t)] for o, v, t in todo
            if (o, v, args.timeout or t) in done], reference)


def report(rows: list[dict], reference: dict) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:  # eps: the last "_" part of the property's name (prop_3_0.03.vnnlib)
        eps = row["vnnlib"].replace(".gz", "").replace(".vnnlib", "").rsplit("_", 1)[-1]
        groups[(row["onnx"].replace("mnist-net_", "").replace(".onnx", ""), eps)].append(row)
    tools = ("a-b-CROWN", "Marabou", "ERAN") if reference else ()
    width = max([8] + [len(net) for net, _ in groups])
    print(f"\n{'network':{width}s} {'eps':5s} {'n':>3s} {'decided':>8s} {'wrong':>6s} "
          f"{'sat/unsat':>10s} {'median s':>9s} " + " ".join(f"{t:>10s}" for t in tools))
    total = decided = wrong = 0
    for (net, eps), group in sorted(groups.items()):
        dec = [r for r in group if r["status"] in ("sat", "unsat")]
        bad = [r for r in dec if r["reference"] in ("sat", "unsat") and r["status"] != r["reference"]]
        times = sorted(r["seconds"] for r in group)
        counts = []
        for tool in tools:
            counts.append(sum(tool in reference.get((r["onnx"], r["vnnlib"]), {}).get(
                "decided_by_2021", "").split() for r in group))
        total, decided, wrong = total + len(group), decided + len(dec), wrong + len(bad)
        sat = sum(r["status"] == "sat" for r in dec)
        print(f"{net:{width}s} {eps:5s} {len(group):3d} {len(dec):8d} {len(bad):6d} "
              f"{sat:>4d}/{len(dec) - sat:<5d} {times[len(times) // 2]:9.1f} "
              + " ".join(f"{c:10d}" for c in counts))
    print(f"all: {decided} of {total} decided, {wrong} wrong")


if __name__ == "__main__":
    main()
