"""`security_curve` (constraint security of CR at six radii, specrob's default attacks) against
the same loop hand-written in PyTorch.

The hand-written side runs what `security_curve` runs, written out: per eps (seeded alike),
PGD-20 with two random starts, PGD-20 from the centre and FGSM, on the DL2 search objective
(`bench_loss.hand_objective`), each point re-checked on the model (the margin and the ball),
a counterexample at a smaller eps counting at every larger one. Both sides' violated centres
are compared first (they must be the same); then CPU time, sides interleaved, min and median
ratios (aim <= 1.15).

    python benchmarks/bench_security.py [--repeat 7] [--points 256]
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import specrob  # noqa: E402
from specrob.data import load_data  # noqa: E402
from specrob.estimate.security import security_curve  # noqa: E402
from specrob.network.model_file import build_model  # noqa: E402
from bench_loss import hand_objective  # noqa: E402 - benchmarks/ is on sys.path when run
from common import cpu_times, model_cases, train_quickly  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EPS = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]


def hand_search(J, x0, eps, steps, restarts, random_start, fraction, gen):
    """PGD in the l_inf ball ∩ [0, 1]^n keeping each row's best point, the best restart."""
    batch = len(x0)
    starts = x0.repeat(restarts, 1)
    low, high = (starts - eps).clamp_min(0.0), (starts + eps).clamp_max(1.0)
    if random_start:
        x = (starts + (torch.rand(starts.shape, generator=gen) * 2 - 1) * eps).clamp(0.0, 1.0)
    else:
        x = starts.clone()
    best_x, best_v = x, torch.full((len(x),), -float("inf"))
    for step in range(steps + 1):
        if step < steps:
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                v = J(x)
                (g,) = torch.autograd.grad(v.sum(), x)
            if step == 0 and not random_start:  # no direction at the centre: a random start
                stuck = ~torch.isfinite(g).all(-1) | (g == 0).all(-1)
                if stuck.any():
                    moved = (starts + (torch.rand(starts.shape, generator=gen) * 2 - 1) * eps
                             ).clamp(0.0, 1.0)
                    x = torch.where(stuck[:, None], moved, x.detach()).requires_grad_(True)
                    with torch.enable_grad():
                        v = J(x)
                        (g,) = torch.autograd.grad(v.sum(), x)
        else:
            with torch.no_grad():
                v = J(x)
        x, v = x.detach(), v.detach()
        better = v > best_v
        best_x = torch.where(better[:, None], x, best_x)
        best_v = torch.where(better, v, best_v)
        if step < steps:
            x = torch.clamp(x + fraction * eps * g.sign(), low, high)
    values = best_v.reshape(restarts, batch)
    return best_x.reshape(restarts, batch, -1)[values.argmax(0), torch.arange(batch)]


def hand_security(net, x0, y, steps=20, restarts=2, seed=0):
    """Per eps, the violated centres: the hand-written `security_curve` (samples = 0)."""
    is_y = F.one_hot(y, int(net(x0[:1]).shape[1])).bool()
    out, carried = [], torch.zeros(len(y), dtype=torch.bool)
    for eps in sorted(EPS):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        violated = torch.zeros(len(y), dtype=torch.bool)
        for r, random_start, n, fraction in ((restarts, True, steps, 2.5 / steps),
                                             (1, False, steps, 2.5 / steps), (1, False, 1, 1.0)):
            J = hand_objective(net, y.repeat(r), is_y.repeat(r, 1))
            x = hand_search(J, x0, eps, n, r, random_start, fraction, gen)
            with torch.no_grad():
                f = net(x)
            holds = (f.gather(1, y[:, None]) > f.masked_fill(is_y, -float("inf"))).all(1)
            inside = ((x - x0).abs().amax(1) <= eps * (1 + 1e-5) + 1e-5) & \
                (x >= -1e-5).all(1) & (x <= 1 + 1e-5).all(1)
            violated |= ~holds & inside
        carried = carried | violated
        out.append(carried.clone())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--points", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    prop = specrob.load(ROOT / "specs" / "cr.rspec")["CR"]
    for name, model_file, epochs in model_cases(ROOT):
        data = load_data(name)
        torch.manual_seed(0)
        net = train_quickly(build_model(model_file, data.input_dim, data.classes), data, epochs)
        x, y = torch.tensor(data.x_test[:args.points]), torch.tensor(data.y_test[:args.points])
        ours = [r.violated for r in security_curve(prop, net, x, y, EPS)]
        theirs = hand_security(net, x, y)
        same = all(torch.equal(a, b) for a, b in zip(ours, theirs))
        print(f"{name}: {model_file.name}, {len(y)} centres, security "
              + " ".join(f"{1 - float(v.float().mean()):.3f}" for v in ours)
              + f"  ({'the same violated centres' if same else 'DIFFERENT from hand-written'})")
        a, b = cpu_times(lambda: security_curve(prop, net, x, y, EPS),
                         lambda: hand_security(net, x, y), args.repeat, warmup=1)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"  CPU time over {args.repeat}: specrob {ma * 1000:.0f} ms, hand-written "
              f"{mb * 1000:.0f} ms, ratio median {ma / mb:.3f} / min {min(a) / min(b):.3f} "
              f"({'meets' if ma / mb <= 1.15 else 'MISSES'} the 1.15 aim)")


if __name__ == "__main__":
    main()
