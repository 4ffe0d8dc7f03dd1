"""The teacher: a small denoising diffusion model (DDPM, epsilon prediction) on resized digits.

Training only (needs torch). Sampling uses deterministic DDIM, so each noise vector maps to
one image: the (noise, image) pairs the optical student is distilled from.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["DiffusionTeacher", "train_teacher"]


def timestep_embedding(t: torch.Tensor, dim: int = 128) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class DiffusionTeacher(nn.Module):
    """An MLP denoiser eps(x_t, t) over flattened size x size images in [-1, 1]."""

    def __init__(self, size: int = 16, hidden: int = 1024, steps: int = 1000):
        super().__init__()
        self.size, self.steps = size, steps
        d = size * size
        self.net = nn.Sequential(nn.Linear(d + 128, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, d))
        betas = torch.linspace(1e-4, 0.02, steps)
        self.register_buffer("alpha_bar", torch.cumprod(1.0 - betas, dim=0))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, timestep_embedding(t)], dim=1))

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        t = torch.randint(0, self.steps, (x0.shape[0],))
        eps = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None]
        return torch.mean((self(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps) ** 2)

    @torch.no_grad()
    def ddim_sample(self, noise: torch.Tensor, n_steps: int = 50) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from ``noise`` (B, size*size); returns images in [0, 1]."""
        ts = torch.linspace(self.steps - 1, 0, n_steps).round().long()
        x = noise
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            eps = self(x, t.repeat(x.shape[0]))
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # keep eps consistent with the clipped x0
            ab_next = self.alpha_bar[ts[i + 1]] if i + 1 < n_steps else torch.tensor(1.0)
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        return ((x.clamp(-1, 1) + 1) / 2).reshape(-1, self.size, self.size)


def train_teacher(images: np.ndarray, steps: int = 6000, batch: int = 256, lr: float = 1e-3, hidden: int = 512,
                  seed: int = 0, log=print) -> DiffusionTeacher:
    """Train the teacher on images (N, size, size) in [0, 1]."""
    torch.manual_seed(seed)
    size = images.shape[1]
    model = DiffusionTeacher(size, hidden=hidden)
    data = torch.from_numpy(images.reshape(len(images), -1) * 2.0 - 1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    for step in range(steps):
        idx = torch.randint(0, len(data), (batch,))
        loss = model.loss(data[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 1000 == 0 or step == steps - 1:
            log(f"teacher step {step}/{steps} loss {loss.item():.4f}")
    return model.eval()
