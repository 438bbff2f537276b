"""The Marabou back end (Katz et al. 2019): one exact query per centre, encoded from specrob's
network IR.

- `encoding.py`  variables, bounds and constraints collected in Python
- `layers.py`    the network's nodes as constraints; `supports(net)` says what is refused
- `body.py`      the input region and the negated property
- `worker.py`    the Marabou process (`python -m`), killed when a query overruns
- `solver.py`    `solve_query`: encode, solve in the worker, read back the counterexample
"""
from specrob.verification.marabou.layers import supports
from specrob.verification.marabou.solver import (SAFE_MAGNITUDE, STATUSES, MarabouResult,
                                                 solve_query)

__all__ = ["SAFE_MAGNITUDE", "STATUSES", "MarabouResult", "solve_query", "supports"]
