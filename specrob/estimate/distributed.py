"""A security curve's blocks of centres on a Dask cluster: one task per block.

Each block draws from its own seed (`security.block_seed`), so the curve joined from the
blocks (`security.combine`) is the curve of one process: same security and accuracy per eps,
centre by centre. The network and the property go to the workers once (scattered); each task
gets its block's centres.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from specrob.estimate.security import SecurityResult, blocks, combine, curve_block
from specrob.lang import ir
from specrob.search.attacks import Attack, block_seed


def _curve_block(shared: tuple, x0: torch.Tensor, y: torch.Tensor, seed: int
                 ) -> list[SecurityResult]:
    """On a worker: `curve_block` of one block."""
    prop, model, search_model, attacks, eps_values, samples = shared
    torch.set_num_threads(1)
    return curve_block(prop, model, x0, y, eps_values, attacks=attacks, samples=samples,
                       seed=seed, search_model=search_model)


def security_curve_on_cluster(client: Any, prop: ir.Property, model: nn.Module,
                              x0: torch.Tensor, y: torch.Tensor, eps_values: list[float], *,
                              attacks: list[Attack], samples: int = 0, seed: int = 0,
                              progress: Callable[[float], object] | None = None,
                              search_model: nn.Module | None = None) -> list[SecurityResult]:
    """`security_curve` with its blocks as tasks on the cluster of `client` (a
    dask.distributed Client); `progress(fraction of the eps grid)` as blocks finish."""
    from dask.distributed import as_completed
    shared = client.scatter((prop, model, search_model, attacks, list(eps_values), samples),
                            broadcast=True)
    parts = blocks(len(y))
    futures = {client.submit(_curve_block, shared, x0[s].clone(), y[s].clone(),
                             block_seed(seed, k), pure=False): k
               for k, s in enumerate(parts)}
    done: dict[int, list[SecurityResult]] = {}
    try:
        for future in as_completed(list(futures)):
            done[futures[future]] = future.result()
            if progress is not None:
                progress(len(eps_values) / len(parts))
    finally:
        for future in futures:
            future.cancel()
    return combine([done[k] for k in range(len(parts))])
