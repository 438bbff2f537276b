"""Where a command computes: --device cpu | cuda | cuda:N | auto, resolved once per run.

Every command (train, eval, verify, reproduce) resolves its --device here, before any work, so
that a machine without the CUDA device asked for gets one clear error and `auto` names the
device actually used in the run's identity (a run folder started on one device is not resumed
on another: random draws on a CUDA device follow another stream than on the CPU).
"""
from __future__ import annotations

from specrob.errors import SpecrobError
from specrob.options import DEVICES, device_ok


class DeviceError(SpecrobError):
    """A --device value this machine cannot run on (unknown, or CUDA without CUDA)."""


def resolve_device(device: str) -> str:
    """The device a run uses, spelled for its identity: "cpu" or "cuda:N".

    `device`: cpu | cuda (the current CUDA device) | cuda:N | auto (cuda when
    `torch.cuda.is_available()`, else cpu). Raises DeviceError for another value, for CUDA on a
    machine without it, and for cuda:N beyond the machine's devices."""
    import torch  # here: `specrob --help` and the option classes stay torch-free
    if not isinstance(device, str) or not device_ok(device):
        raise DeviceError(f"--device {device}: choose {DEVICES}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: no CUDA device here (torch.cuda.is_available() "
                          f"is False); use --device cpu or --device auto")
    index = int(device[5:]) if device.startswith("cuda:") else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"
