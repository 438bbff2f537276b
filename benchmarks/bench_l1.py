"""The l_1 CR attack: specrob's PGD in the l_1 ball against foolbox's L1 PGD, speed and strength.

Both run 20 steps, one random start, step 2.5·eps/20, on the same model and correctly
classified points, in the l_1 ball of radius eps intersected with [0, 1]^n. They are different
searches (specrob: the steepest l_1 ascent, the largest-magnitude coordinate of the gradient,
then the Euclidean projection onto the l_1 ball and the box; foolbox 3: the gradient
normalised to unit l_1 norm, then a rescaling into the ball and a clip), so they are compared
on CPU time per attack (sides interleaved, min and median ratios; aim <= 1.5x) and on their
strength at equal settings (robust accuracy: lower is stronger); then at equal strength or
better: the fewest specrob steps (3, 5, 10, 15, 20) whose robust accuracy is at most
foolbox's with 20 steps, timed against foolbox's 20 steps.

    python benchmarks/bench_l1.py [--repeat 15] [--points 256]

foolbox is installed in the benchmark environment only (`pip install foolbox`).
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import specrob  # noqa: E402
from specrob.data import load_data  # noqa: E402
from specrob.estimate.security import security_curve  # noqa: E402
from specrob.network.model_file import build_model  # noqa: E402
from specrob.search import PGD  # noqa: E402
from specrob.search.attacks import Attack  # noqa: E402
from common import cpu_times, model_cases, train_quickly  # noqa: E402 - benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parent.parent
RADII = {"digits": [1.0, 2.0, 4.0], "fashion-mnist": [2.0, 5.0, 10.0]}


def compare(name: str, net, x, y, repeat: int) -> None:
    import foolbox as fb
    with torch.no_grad():
        keep = net(x).argmax(-1) == y
    x, y = x[keep], y[keep]
    prop = specrob.load(ROOT / "specs" / "cr.rspec", p=1)["CR"]
    pgd = [Attack("pgd-20", PGD(steps=20, restarts=1))]
    fmodel = fb.PyTorchModel(net, bounds=(0, 1))
    attack = fb.attacks.L1PGD(steps=20, rel_stepsize=2.5 / 20, random_start=True)
    print(f"{name}: {len(y)} correctly classified points, l_1 radii {RADII[name]}")
    print(f"  {'eps':>6} {'specrob':>9} {'foolbox':>9}   CPU time specrob / foolbox")
    for eps in RADII[name]:
        ours = security_curve(prop, net, x, y, [eps], attacks=pgd)[0].security.value
        _, _, success = attack(fmodel, x, y, epsilons=[eps])
        theirs = 1 - success.float().mean().item()
        run_a = lambda: security_curve(prop, net, x, y, [eps], attacks=pgd)  # noqa: E731
        run_b = lambda: attack(fmodel, x, y, epsilons=[eps])  # noqa: E731
        a, b = cpu_times(run_a, run_b, repeat, warmup=2)
        print(f"  {eps:>6g} {ours:>9.3f} {theirs:>9.3f}   median "
              f"{statistics.median(a) / statistics.median(b):.2f}x / min {min(a) / min(b):.2f}x "
              f"({statistics.median(a) * 1000:.1f} ms vs {statistics.median(b) * 1000:.1f} ms)")
        equal_strength(prop, net, x, y, eps, theirs, run_b, repeat)


def equal_strength(prop, net, x, y, eps: float, theirs: float, run_b, repeat: int) -> None:
    """The fewest specrob PGD steps (step 2.5·eps/steps, the same convention) whose robust
    accuracy is at most foolbox's with 20 steps, and its CPU time against foolbox's."""
    for steps in (3, 5, 10, 15, 20):
        pgd = [Attack(f"pgd-{steps}", PGD(steps=steps, restarts=1))]
        ours = security_curve(prop, net, x, y, [eps], attacks=pgd)[0].security.value
        if ours <= theirs:
            run_a = lambda: security_curve(prop, net, x, y, [eps], attacks=pgd)  # noqa: E731
            a, b = cpu_times(run_a, run_b, repeat, warmup=1)
            print(f"         at equal strength or better: {steps} steps, {ours:.3f}; median "
                  f"{statistics.median(a) / statistics.median(b):.2f}x / min "
                  f"{min(a) / min(b):.2f}x")
            return
    print("         no step count up to 20 reaches foolbox's strength")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--points", type=int, default=256)
    args = ap.parse_args()
    try:
        import foolbox  # noqa: F401
    except ImportError:
        raise SystemExit("foolbox is not installed here: pip install foolbox") from None
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); security = "
          f"robust accuracy of the attack (lower: stronger)")
    for name, model_file, epochs in model_cases(ROOT):
        data = load_data(name)
        torch.manual_seed(0)
        net = train_quickly(build_model(model_file, data.input_dim, data.classes), data, epochs)
        compare(name, net, torch.tensor(data.x_test[:args.points]),
                torch.tensor(data.y_test[:args.points]), args.repeat)


if __name__ == "__main__":
    main()
