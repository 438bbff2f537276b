"""The autoencoder behind the on-manifold kernel (Tibo, Jaeger and Larsen, seed 000, sections
4.2 and 7): a Wasserstein autoencoder (WAE-MMD, Tolstikhin et al. 2018) trained on the
training inputs, saved as a generator module that `specrob eval` (Q = manifold(...)) and the
R4 training regime load with `--set generator=` / `--generator`.

The WAE's loss is the squared reconstruction error plus lambda * MMD between the codes of a
batch and draws of the prior N(0, I), with the sum of inverse multiquadratic kernels
C / (C + ||z - z'||^2), C = 2 * latent * s for s in SCALES (the kernel of Tolstikhin et al.'s
released code). No library of the field ships a WAE, so it is written here (40 lines).
"""
from __future__ import annotations

import json
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from specrob.errors import SpecrobError
from specrob.training.config import AutoencoderConfig
from specrob.training.transfer import conv_encoder, dense_decoder

FORMAT = "specrob-autoencoder-1"
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MODULE = '''"""A generator for specrob's on-manifold kernel, written by specrob (a Wasserstein
autoencoder trained on {data}; settings in autoencoder.json). Use it with

    specrob eval MODEL.onnx specs/manifold.rspec --set generator=FOLDER/autoencoder.py
    specrob train MODEL.py SPEC.rspec --regime on-manifold --generator FOLDER/autoencoder.py
"""
from pathlib import Path

from specrob.training.autoencoder import load_autoencoder


def load():
    return load_autoencoder(Path(__file__).with_name("autoencoder.pt"))
'''


class AutoencoderError(SpecrobError):
    """An autoencoder file that cannot be read."""


class Autoencoder(nn.Module):
    """encode: (B, n) -> (B, latent); decode: (B, latent) -> (B, n) in [0, 1] (sigmoid).
    The generator protocol of `specrob.network.generator`."""

    def __init__(self, input_dim: int, latent: int):
        super().__init__()
        self.input_dim, self.latent = input_dim, latent
        self.encoder = conv_encoder(input_dim, latent)
        self.decoder = dense_decoder(latent, input_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(x.shape[0], -1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def mmd_imq(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """The unbiased MMD^2 estimate between codes z and prior draws, both (B, latent), under the
    sum over SCALES of the inverse multiquadratic kernels C / (C + ||a - b||^2),
    C = 2 * latent * s (Tolstikhin et al. 2018, section 4, and their released code)."""
    n, latent = z.shape
    both = torch.cat([z, prior])
    d2 = torch.cdist(both, both).pow(2)
    k = torch.stack([2 * latent * s / (2 * latent * s + d2) for s in SCALES]).sum(0)
    off = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    kzz, kpp, kzp = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kzz * off).sum() + (kpp * off).sum()) / (n * (n - 1)) - 2 * kzp.mean()


def wae_loss(ae: Autoencoder, x: torch.Tensor, mmd: float, gen: torch.Generator
             ) -> tuple[torch.Tensor, float, float]:
    """(loss, reconstruction, MMD) of a batch: the squared error summed over the pixels and
    averaged over the rows, plus mmd * MMD(codes, N(0, I) draws)."""
    z = ae.encode(x)
    recon = (ae.decode(z) - x).pow(2).sum(1).mean()
    prior = torch.randn(z.shape, generator=gen, device="cpu").to(z.device)
    dist = mmd_imq(z, prior)
    return recon + mmd * dist, recon.item(), dist.item()


def train_autoencoder(x: np.ndarray, out: str | Path, config: AutoencoderConfig | None = None,
                      *, data_name: str = "the training inputs", progress: bool = True) -> Path:
    """Train a WAE on rows x (N, n) in [0, 1] and save it in folder `out`: autoencoder.pt
    (weights), autoencoder.json (settings, losses per epoch) and autoencoder.py (the generator
    module; returned). A checkpoint after every epoch: a rerun with the same settings and data
    resumes, one already finished returns at once; other settings or data in `out` raise
    AutoencoderError (use another folder)."""
    from tqdm import tqdm

    from specrob.runfolder import array_identity
    config = config or AutoencoderConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    # what must match to resume: not the epoch count (more epochs continue), not the device
    identity = {"settings": {k: v for k, v in asdict(config).items()
                             if k not in ("device", "epochs")},
                "data_sha256": array_identity(x), "input_dim": x.shape[1]}
    ckpt = out / "checkpoint.pt"
    torch.manual_seed(config.seed)
    ae = Autoencoder(x.shape[1], config.latent).to(config.device)
    opt = torch.optim.Adam(ae.parameters(), lr=config.lr)
    done, history = 0, []
    if ckpt.exists():
        state = torch.load(ckpt, map_location=config.device, weights_only=False)
        if state["identity"] != identity:
            raise AutoencoderError(f"{out} holds an autoencoder of other settings or data; "
                                   f"give another folder (or delete {ckpt})")
        ae.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        done, history = state["epoch"], state["history"]
    gen = torch.Generator().manual_seed(config.seed)
    data = torch.tensor(x)
    for epoch in range(done, config.epochs):
        gen.manual_seed(config.seed * 1000003 + epoch)  # per-epoch seed: exact resume
        order = torch.randperm(len(data), generator=gen)
        ae.train()
        total = [0.0, 0.0, 0]
        batches = range(0, len(data), config.batch_size)
        for start in tqdm(batches, desc=f"autoencoder epoch {epoch + 1}", disable=not progress,
                          leave=False, unit="batch"):
            batch = data[order[start:start + config.batch_size]].to(config.device)
            if len(batch) < 2:  # the MMD estimate needs two codes
                continue
            loss, recon, dist = wae_loss(ae, batch, config.mmd, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total = [total[0] + recon * len(batch), total[1] + dist * len(batch),
                     total[2] + len(batch)]
        history.append({"epoch": epoch + 1, "reconstruction": total[0] / max(total[2], 1),
                        "mmd": total[1] / max(total[2], 1)})
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"identity": identity, "model": ae.state_dict(),
                    "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history}, tmp)
        tmp.replace(ckpt)
    # the files a generator is loaded from, written once the training is done (a rerun of a
    # finished one leaves them as they are: runs trained with them are bound to their contents)
    module = out / "autoencoder.py"
    if not (module.exists() and (out / "autoencoder.pt").exists()
            and (out / "autoencoder.json").exists() and json.loads((out / "autoencoder.json").read_text())["history"] == history):
        torch.save({"format": FORMAT, "input_dim": x.shape[1], "latent": config.latent,
                    "state": {k: v.cpu() for k, v in ae.state_dict().items()}},
                   out / "autoencoder.pt")
        (out / "autoencoder.json").write_text(json.dumps(
            {**identity, "data": data_name, "history": history}, indent=2))
        module.write_text(MODULE.format(data=data_name))
    return module


def load_autoencoder(path: str | Path) -> Autoencoder:
    """The autoencoder saved by `train_autoencoder` (autoencoder.pt), in eval mode on the CPU.
    Raises AutoencoderError when the file is missing or not one."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise AutoencoderError(f"{path}: not a readable autoencoder file ({exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise AutoencoderError(f"{path}: not an autoencoder written by specrob "
                               f"(train one with `specrob autoencoder`)")
    ae = Autoencoder(int(saved["input_dim"]), int(saved["latent"]))
    ae.load_state_dict(saved["state"])
    return ae.eval()
