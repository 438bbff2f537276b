"""Transfer by paired autoencoders (Tibo et al., seed 001, section 4 and Appendix B): one
encoder E and two decoders, D_1 reconstructing clean inputs x and D_2 reconstructing shifted
inputs x~ (unlabeled, not paired with any x), trained jointly on the reconstruction loss; the
transfer map T(x~) = D_1(E(x~)) sends shifted inputs back towards the clean distribution, and
the adapted classifier is f(T(x~)). The `adapt` regime (`training.regimes`) trains f and the
pair in one run.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specrob.errors import SpecrobError


class TransferError(SpecrobError):
    """Shifted data that cannot be used, or a model file's pair that is not one."""


class PairedAutoencoder(nn.Module):
    """E with the clean decoder D_1 and the shifted decoder D_2.

    Shape: every part maps flat rows: E (B, n) -> (B, latent), D_i (B, latent) -> (B, n).
    Source: Tibo et al., seed 001, section 4, Figure 4."""

    def __init__(self, encoder: nn.Module, clean_decoder: nn.Module,
                 shifted_decoder: nn.Module):
        super().__init__()
        self.encoder, self.clean_decoder = encoder, clean_decoder
        self.shifted_decoder = shifted_decoder

    def transfer(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = D_1(E(x)): (B, n) -> (B, n)."""
        return self.clean_decoder(self.encoder(x))

    def reconstruction_loss(self, clean: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of both autoencoders, D_1(E(x)) against x and
        D_2(E(x~)) against x~, each averaged over its pixels and rows, summed."""
        return (F.mse_loss(self.transfer(clean), clean)
                + F.mse_loss(self.shifted_decoder(self.encoder(shifted)), shifted))


class Adapted(nn.Module):
    """The adapted classifier f(T(x)): (B, n) -> (B, classes) logits."""

    def __init__(self, classifier: nn.Module, pair: PairedAutoencoder):
        super().__init__()
        self.classifier, self.pair = classifier, pair

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pair.transfer(x))


class _Unflatten(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def default_pair(input_dim: int, *, latent: int = 128) -> PairedAutoencoder:
    """The paper's encoder (Appendix B) for square images whose side is 8 or more:
    E = Conv(32, 3, stride 2) -> Conv(64, 3, 2) -> Conv(128, 3, 2) -> Dense(latent), ReLUs;
    decoders D_i = Dense(2048) -> Dense(n), sigmoid output. The paper's decoders continue
    with transposed convolutions (Dense((side/4)^2 64) -> ConvT(64, 3, 2) -> ConvT(32, 3, 2) ->
    ConvT(1, 3, 1)); specrob's ONNX importer and bound propagation have no ConvTranspose, and
    the adapted network f(T(x)) is meant to be evaluated and verified like any other, so the
    decoders here are dense. Other inputs get an MLP pair n -> 512 -> latent -> 2048 -> n.
    Shape: flat rows (B, input_dim) in [0, 1]."""
    return PairedAutoencoder(conv_encoder(input_dim, latent), dense_decoder(latent, input_dim),
                             dense_decoder(latent, input_dim))


def conv_encoder(input_dim: int, latent: int) -> nn.Module:
    """Conv(32, 3, s2) -> Conv(64, 3, s2) -> Conv(128, 3, s2) -> Dense(latent), ReLUs, for
    square images of side 8 or more; else the MLP n -> 512 -> latent.
    Shape: (B, input_dim) -> (B, latent). Source: seed 001, Appendix B."""
    side = math.isqrt(input_dim)
    if side * side != input_dim or side < 8:
        return nn.Sequential(nn.Linear(input_dim, 512), nn.ReLU(), nn.Linear(512, latent))
    after = math.ceil(math.ceil(math.ceil(side / 2) / 2) / 2)  # three stride-2 convolutions
    return nn.Sequential(
        _Unflatten(1, side, side),
        nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(128 * after ** 2, latent))


def dense_decoder(latent: int, input_dim: int) -> nn.Module:
    """Dense(2048) -> ReLU -> Dense(input_dim) -> sigmoid. Shape: (B, latent) -> (B, n)."""
    return nn.Sequential(nn.Linear(latent, 2048), nn.ReLU(), nn.Linear(2048, input_dim),
                         nn.Sigmoid())


def build_pair(model_file: str | Path | None, input_dim: int) -> PairedAutoencoder:
    """The model file's `autoencoder_pair(input_dim)` (a PairedAutoencoder, or a tuple
    (E, D_1, D_2) of modules on flat rows), else `default_pair`. Raises TransferError."""
    if model_file is not None:
        from specrob.network.model_file import load_module
        fn = getattr(load_module(model_file), "autoencoder_pair", None)
        if callable(fn):
            try:
                made = fn(input_dim=input_dim)
            except Exception as exc:  # a user's function: report, do not crash
                raise TransferError(f"{model_file}: autoencoder_pair() failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
            if isinstance(made, PairedAutoencoder):
                return made
            if (isinstance(made, tuple) and len(made) == 3
                    and all(isinstance(m, nn.Module) for m in made)):
                return PairedAutoencoder(*made)
            raise TransferError(f"{model_file}: autoencoder_pair() must return a "
                                f"PairedAutoencoder or a tuple (E, D_1, D_2) of modules")
    return default_pair(input_dim)


def load_shifted(path: str | Path, input_dim: int) -> np.ndarray:
    """The unlabeled shifted inputs of an .npz file: its array `x` (or `x_train`), rows of
    `input_dim` values in [0, 1] (images are flattened). Returns float32 (N, input_dim).
    Raises TransferError naming the file and what is wrong."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            key = next((k for k in ("x", "x_train") if k in arrays.files), None)
            if key is None:
                raise TransferError(f"--shifted {path}: no array 'x' (found "
                                    f"{', '.join(arrays.files) or 'none'}); save the shifted "
                                    f"inputs with np.savez(path, x=...)")
            x = np.asarray(arrays[key])
    except TransferError:
        raise
    except (OSError, ValueError) as exc:
        raise TransferError(f"--shifted {path}: not a readable .npz file ({exc})") from None
    if x.ndim < 2 or x.shape[0] == 0:
        raise TransferError(f"--shifted {path}: '{key}' has shape {x.shape}; expected rows "
                            f"of {input_dim} values")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != input_dim:
        raise TransferError(f"--shifted {path}: rows of {x.shape[1]} values; the data has "
                            f"{input_dim}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)) \
            or x.min() < 0 or x.max() > 1:
        raise TransferError(f"--shifted {path}: values must be finite numbers in [0, 1] "
                            f"(scale pixels by 1/255)")
    return x.astype(np.float32)
