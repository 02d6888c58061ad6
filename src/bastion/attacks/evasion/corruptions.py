"""Common corruptions of images at five severities, tensor-native.

After Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (ImageNet-C / CIFAR-10-C), and their
perturbation set for small rotations and shifts. Not an attack: these are the
changes cameras, compression and handling bring about without an adversary
(Microsoft failure modes FM15 natural hard examples and FM16 common corruptions).

Inputs are ``(n, C, H, W)`` tensors already mapped to ``[0, 1]``; every function
returns a tensor of the same shape, clipped to ``[0, 1]``. Random corruptions draw
from the given ``torch.Generator`` so results repeat for a seed.

=================  ==============================================  =======================
name               what                                            severity 1 .. 5
=================  ==============================================  =======================
``gaussian_noise`` add N(0, sigma^2)                               sigma .08 .12 .18 .26 .38
``shot_noise``     Poisson photon noise, ``Poisson(x lam) / lam``  lam 60 25 12 5 3
``gaussian_blur``  separable Gaussian filter                       sigma (px) .5 .75 1 1.25 1.5
``box_blur``       mean filter blended with the image              size 3 3 3 5 5, weight
                                                                   .4 .7 1 .8 1
``brightness``     add a constant                                  +.1 .2 .3 .4 .5
``contrast``       scale around the per-image, per-channel mean    x .4 .3 .2 .1 .05
``rotate``         rotate about the centre, random direction       degrees 5 10 15 20 25
``shift``          translate, random direction                     share of size .05 .1 .15
                                                                   .2 .25
``jpeg``           JPEG-like compression                           quality 75 50 30 20 10
=================  ==============================================  =======================

Simplifications, stated: noise, brightness and contrast follow ImageNet-C's
parameters but operate directly on the stored values (no HSV conversion for
brightness); blur widths are in pixels chosen for small images (8x8 to 32x32);
rotations and shifts resample bilinearly with border padding. ``jpeg`` is not a
byte-exact JPEG codec (no Pillow is needed): each 8x8 block of every channel
(in YCbCr for three channels, no chroma subsampling) goes through an orthonormal
DCT, is quantised with the standard JPEG tables scaled for the quality as libjpeg
does, and is transformed back and rounded to 8 bits -- the loss that makes JPEG
artefacts.

Examples
--------
>>> import torch
>>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
>>> g = torch.Generator().manual_seed(1)
>>> [tuple(corrupt(x, name, 3, g).shape) for name in ("jpeg", "rotate")]
[(2, 1, 8, 8), (2, 1, 8, 8)]
>>> bool((corrupt(x, "brightness", 5, g) >= x).all())
True
>>> sorted(CORRUPTIONS)[:3]
['box_blur', 'brightness', 'contrast']
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bastion.errors import UsageError

__all__ = ["CORRUPTIONS", "corrupt"]

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def _gaussian_noise(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    sigma = (0.08, 0.12, 0.18, 0.26, 0.38)[s - 1]
    return x + sigma * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)


def _shot_noise(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    lam = (60.0, 25.0, 12.0, 5.0, 3.0)[s - 1]
    return torch.poisson(x.clamp(0, 1) * lam, generator=g) / lam


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable filter with a 1-D ``kernel`` along H then W, replicate padding."""
    n, c, h, w = x.shape
    k = len(kernel)
    pad = k // 2
    flat = x.reshape(n * c, 1, h, w)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="replicate")
    kern = kernel.to(x)
    flat = F.conv2d(flat, kern.view(1, 1, k, 1))
    flat = F.conv2d(flat, kern.view(1, 1, 1, k))
    return flat.reshape(n, c, h, w)


def _gaussian_blur(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    sigma = (0.5, 0.75, 1.0, 1.25, 1.5)[s - 1]
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    return _filter(x, kernel / kernel.sum())


def _box_blur(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    size = (3, 3, 3, 5, 5)[s - 1]
    weight = (0.4, 0.7, 1.0, 0.8, 1.0)[s - 1]
    blurred = _filter(x, torch.full((size,), 1.0 / size, dtype=torch.float64))
    return weight * blurred + (1 - weight) * x


def _brightness(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    return x + (0.1, 0.2, 0.3, 0.4, 0.5)[s - 1]


def _contrast(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    factor = (0.4, 0.3, 0.2, 0.1, 0.05)[s - 1]
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _sign(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=g, device=device).to(torch.float64) * 2 - 1


def _rotate(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    angle = math.radians((5, 10, 15, 20, 25)[s - 1]) * _sign(len(x), g, x.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _warp(x, theta)


def _shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    share = (0.05, 0.1, 0.15, 0.2, 0.25)[s - 1]
    direction = torch.rand(len(x), generator=g, device=x.device, dtype=torch.float64) * 2 * math.pi
    dx, dy = 2 * share * torch.cos(direction), 2 * share * torch.sin(direction)
    one, zero = torch.ones_like(dx), torch.zeros_like(dx)
    theta = torch.stack([torch.stack([one, zero, dx], 1), torch.stack([zero, one, dy], 1)], 1)
    return _warp(x, theta)


_LUMA = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_CHROMA = [
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    *([[99] * 8] * 4),
]


@functools.lru_cache(maxsize=1)
def _dct_matrix() -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)[:, None]
    i = torch.arange(8, dtype=torch.float64)[None, :]
    d = torch.cos((2 * i + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


def _quant_table(table: list[list[int]], quality: int) -> torch.Tensor:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    q = torch.floor((torch.tensor(table, dtype=torch.float64) * scale + 50) / 100)
    return q.clamp(1, 255)


def _jpeg(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    quality = (75, 50, 30, 20, 10)[s - 1]
    n, c, h, w = x.shape
    z = x.to(torch.float64).clamp(0, 1) * 255
    rgb = c == 3
    if rgb:  # JFIF RGB -> YCbCr
        r, gr, b = z[:, 0], z[:, 1], z[:, 2]
        z = torch.stack(
            [
                0.299 * r + 0.587 * gr + 0.114 * b,
                128 - 0.168736 * r - 0.331264 * gr + 0.5 * b,
                128 + 0.5 * r - 0.418688 * gr - 0.081312 * b,
            ],
            dim=1,
        )
    ph, pw = -h % 8, -w % 8
    z = F.pad(z, (0, pw, 0, ph), mode="replicate") - 128
    hh, ww = h + ph, w + pw
    blocks = z.reshape(n, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)
    d = _dct_matrix().to(z.device)
    tables = [_quant_table(_LUMA if (ch == 0 or not rgb) else _CHROMA, quality) for ch in range(c)]
    q = torch.stack(tables).to(z.device).view(1, c, 1, 1, 8, 8)
    coef = d @ blocks @ d.T
    blocks = d.T @ (torch.round(coef / q) * q) @ d
    z = blocks.transpose(3, 4).reshape(n, c, hh, ww)[:, :, :h, :w] + 128
    if rgb:  # YCbCr -> RGB
        yy, cb, cr = z[:, 0], z[:, 1] - 128, z[:, 2] - 128
        z = torch.stack(
            [yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr, yy + 1.772 * cb], dim=1
        )
    return (torch.round(z.clamp(0, 255)) / 255).to(x.dtype)


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "gaussian_blur": _gaussian_blur,
    "box_blur": _box_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "rotate": _rotate,
    "shift": _shift,
    "jpeg": _jpeg,
}
"""Corruption name -> function ``(x, severity, generator) -> corrupted x``."""


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to ``(n, C, H, W)`` images in ``[0, 1]``.

    Raises
    ------
    UsageError
        For an unknown name, a severity outside 1-5 or a tensor that is not 4-D.
    """
    if name not in CORRUPTIONS:
        raise UsageError(f"Unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}.")
    if severity not in (1, 2, 3, 4, 5):
        raise UsageError(f"A corruption severity must be 1, 2, 3, 4 or 5; got {severity!r}.")
    if x.ndim != 4:
        raise UsageError(f"Corruptions take (n, C, H, W) images; got shape {tuple(x.shape)}.")
    return CORRUPTIONS[name](x, severity, generator).clamp(0, 1).to(x.dtype)
