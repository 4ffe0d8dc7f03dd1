"""The teacher: a small denoising diffusion model (DDPM, epsilon prediction) on resized digits.

Training only (needs torch). Sampling uses deterministic DDIM, so each noise vector maps to
one image: the (noise, image) pairs the optical student is distilled from.

The teacher is class-conditional with classifier-free guidance: it learns the digits with
their labels (each sample's label dropped with probability 0.1), and samples with the guided noise estimate
``(1 + w) eps(x, t, class) - w eps(x, t, none)``. The class of a sample is read from its own
noise vector (:func:`class_from_noise`: the decile of its first component), so the pairs stay
a plain function noise -> image that the student learns, and the ten classes are equally
likely by construction. Judged at the 32 x 32 output grid, 500 samples (15,000 steps, 768
hidden): the unconditional teacher of digits-v1, 74 % confident, inception 7.9, Frechet 0.59;
this one unguided, 94 %, 9.2, 0.54; at guidance 1, 100 %, 9.8, 0.54 (decision 0004).
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["DiffusionTeacher", "train_teacher", "class_from_noise"]

CLASSES = 10


def timestep_embedding(t: torch.Tensor, dim: int = 128) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def class_from_noise(noise: torch.Tensor, classes: int = CLASSES) -> torch.Tensor:
    """The class a noise vector asks for: the decile of its first (standard normal) component."""
    u = 0.5 * (1.0 + torch.erf(noise[:, 0] / math.sqrt(2.0)))
    return torch.clamp((u * classes).long(), 0, classes - 1)


class DiffusionTeacher(nn.Module):
    """An MLP denoiser eps(x_t, t[, class]) over flattened size x size images in [-1, 1].

    ``classes=0`` makes an unconditional teacher; otherwise class ``classes`` means "no class".
    ``channels``: 1 for grey images, 3 for RGB.
    """

    def __init__(self, size: int = 16, hidden: int = 1024, steps: int = 1000, classes: int = 0, channels: int = 1):
        super().__init__()
        self.size, self.steps, self.classes, self.channels = size, steps, classes, channels
        d = channels * size * size
        extra = 128 if classes else 0
        self.net = nn.Sequential(nn.Linear(d + 128 + extra, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, d))
        if classes:
            self.label_embedding = nn.Embedding(classes + 1, 128)
        betas = torch.linspace(1e-4, 0.02, steps)
        self.register_buffer("alpha_bar", torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def from_state(cls, state: dict, size: int) -> "DiffusionTeacher":
        """Rebuild a saved teacher (conditional or not) from its state dict."""
        classes = state["label_embedding.weight"].shape[0] - 1 if "label_embedding.weight" in state else 0
        pixels = state["net.6.weight"].shape[0]
        model = cls(size, hidden=state["net.0.weight"].shape[0], classes=classes, channels=pixels // (size * size))
        model.load_state_dict(state)
        return model.eval()

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x, timestep_embedding(t)]
        if self.classes:
            if y is None:
                y = torch.full((x.shape[0],), self.classes, dtype=torch.long)
            parts.append(self.label_embedding(y))
        return self.net(torch.cat(parts, dim=1))

    def loss(self, x0: torch.Tensor, y: torch.Tensor | None = None, p_uncond: float = 0.1) -> torch.Tensor:
        t = torch.randint(0, self.steps, (x0.shape[0],))
        eps = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None]
        if self.classes and y is not None:
            y = torch.where(torch.rand(len(y)) < p_uncond, torch.full_like(y, self.classes), y)
        return torch.mean((self(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t, y) - eps) ** 2)

    def _eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float) -> torch.Tensor:
        tt = t.repeat(x.shape[0])
        if not self.classes or y is None:
            return self(x, tt)
        cond = self(x, tt, y)
        if guidance == 0.0:
            return cond
        return (1.0 + guidance) * cond - guidance * self(x, tt)

    @torch.no_grad()
    def ddim_sample(self, noise: torch.Tensor, n_steps: int = 50, guidance: float = 0.0,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from ``noise`` (B, channels*size*size); returns images in [0, 1],
        (B, size, size) grey or (B, channels, size, size).

        A conditional teacher draws each sample's class from its noise unless ``labels`` are given.
        """
        if self.classes and labels is None:
            labels = class_from_noise(noise, self.classes)
        ts = torch.linspace(self.steps - 1, 0, n_steps).round().long()
        x = noise
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            eps = self._eps(x, t, labels, guidance)
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # keep eps consistent with the clipped x0
            ab_next = self.alpha_bar[ts[i + 1]] if i + 1 < n_steps else torch.tensor(1.0)
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        shape = (self.size, self.size) if self.channels == 1 else (self.channels, self.size, self.size)
        return ((x.clamp(-1, 1) + 1) / 2).reshape(-1, *shape)


def train_teacher(images: np.ndarray, labels: np.ndarray | None = None, steps: int = 6000, batch: int = 256,
                  lr: float = 1e-3, hidden: int = 512, seed: int = 0, ema_decay: float = 0.999,
                  log=print, classes: int | None = None, on_step: Callable[[], None] | None = None) -> DiffusionTeacher:
    """Train the teacher on images (N, size, size) or (N, channels, size, size) in [0, 1] (conditional
    when ``labels`` are given: ``classes`` of them, default the ten digits).

    Returns the exponential moving average of the weights (``ema_decay``), which samples
    cleaner digits than the last weights (Frechet distance 0.89 against 1.23 at 10,000 steps).
    ``on_step``: called after each step (progress).
    """
    torch.manual_seed(seed)
    size = images.shape[-1]
    channels = 1 if images.ndim == 3 else images.shape[1]
    classes = (classes or CLASSES) if labels is not None else 0
    model = DiffusionTeacher(size, hidden=hidden, classes=classes, channels=channels)
    ema = copy.deepcopy(model)
    data = torch.from_numpy(images.reshape(len(images), -1) * 2.0 - 1.0)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if labels is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    for step in range(steps):
        idx = torch.randint(0, len(data), (batch,))
        loss = model.loss(data[idx], targets[idx] if targets is not None else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(ema_decay, (1 + step) / (10 + step))
            for averaged, current in zip(ema.parameters(), model.parameters()):
                averaged.mul_(decay).add_(current, alpha=1 - decay)
        if on_step is not None:
            on_step()
        if step % 1000 == 0 or step == steps - 1:
            log(f"teacher step {step}/{steps} loss {loss.item():.4f}")
    return ema.eval()
