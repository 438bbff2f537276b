"""specrob: robustness specifications of neural-network classifiers, written once in .rspec
and used to train, evaluate and verify.

The public API (`specrob.api`, re-exported here): `load`, `train`, `evaluate`, `verify`,
`verify_instances`, `export`, `reproduce`, `constraint_loss`, `train_autoencoder`; the CLI calls the same functions.
"""
from __future__ import annotations

from specrob.api import (EvalResult, ExportResult, InstancesResult, MergeResult, TrainResult,
                         UsageError, VerifyResult, backends, constraint_loss, describe,
                         evaluate, export, load, merge, reproduce, train, train_autoencoder,
                         verify, verify_instances)
from specrob.devices import DeviceError
from specrob.errors import OptionError, SpecrobError
from specrob.estimate.config import EvalConfig
from specrob.training.config import TrainConfig
from specrob.verification.config import VerifyConfig
from specrob.lang.errors import SpecError
from specrob.lang.ir import Property, Score, Spec

__version__ = "0.1.0"
__all__ = ["load", "loads", "train", "train_autoencoder", "evaluate", "verify", "verify_instances", "merge", "export",
           "reproduce", "constraint_loss", "describe", "backends", "TrainConfig", "EvalConfig",
           "VerifyConfig", "Spec", "Property", "Score", "SpecError", "SpecrobError",
           "UsageError", "OptionError", "DeviceError", "TrainResult", "EvalResult", "VerifyResult",
           "InstancesResult", "ExportResult", "MergeResult", "__version__"]


def loads(text: str, path: str = "<spec>", base_dir=None, **overrides) -> Spec:
    """Check spec text; imports are resolved against `base_dir`. Raises SpecError."""
    from specrob.lang.loader import load_text, overrides_from_api
    return load_text(text, path, overrides_from_api(overrides), base_dir=base_dir)
