"""The on-manifold kernel's draws dec(enc(x) + N(0, sigma^2)) (seed 000, eq. 13;
`specrob.network.generator.manifold_samples`, used by the R4 score and the on-manifold
regime): decode calls of about DECODE_ROWS codes, several draws at once for a small batch of
points (specrob's), against one decode call per draw (the way specrob drew them before, one
batch of points at a time) and against one call for all draws. Both sides
decode the same noisy codes and are checked to give the same points first. The generator is
`specrob autoencoder`'s WAE for 28x28 images (untrained: the cost does not depend on the
weights). CPU time, sides interleaved, min and median ratios.

    python benchmarks/bench_manifold_samples.py [--repeat 20] [--points 64] [--draws 20]
"""
from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from specrob.network.generator import manifold_samples  # noqa: E402
from specrob.training.autoencoder import Autoencoder  # noqa: E402
from common import cpu_times  # noqa: E402 - benchmarks/ is on sys.path when run


def per_draw(g, x: torch.Tensor, sigma: float, count: int, gen: torch.Generator) -> torch.Tensor:
    """The earlier loop: the same noise, decoded one draw (B codes) at a time."""
    with torch.no_grad():
        z = g.encode(x)
        noise = torch.randn((count, *z.shape), generator=gen)
        return torch.stack([g.decode(z + sigma * noise[i]) for i in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = Autoencoder(784, 8).eval()
    x = torch.rand(args.points, 784)
    a = manifold_samples(g, x, 0.06, args.draws, torch.Generator().manual_seed(1))
    b = per_draw(g, x, 0.06, args.draws, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the same points

    def batched():
        manifold_samples(g, x, 0.06, args.draws, torch.Generator().manual_seed(1))

    def looped():
        per_draw(g, x, 0.06, args.draws, torch.Generator().manual_seed(1))
    def whole():
        with torch.no_grad():
            z = g.encode(x)
            noise = torch.randn((args.draws, *z.shape), generator=torch.Generator().manual_seed(1))
            g.decode((z + 0.06 * noise).reshape(-1, z.shape[1]))
    for name, other in (("a call per draw", looped), ("one call for all draws", whole)):
        ours, theirs = cpu_times(batched, other, args.repeat)
        ratios = [p / q for p, q in zip(ours, theirs)]
        print(f"{args.points} points x {args.draws} draws: specrob "
              f"{statistics.median(ours) * 1e3:.1f} ms, {name} "
              f"{statistics.median(theirs) * 1e3:.1f} ms (median); specrob / {name}: "
              f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
