"""Where random-search attacks perturb: square windows on images, coordinate sets on vectors.

:class:`SearchGeometry` holds a batch in a fixed internal layout ``(n, C, H, W)``
together with its bounds, per-feature scale and mutable mask, and draws the random
windows the Square attack (and the constrained black-box fallback) changes.

Layouts. A row with at least two trailing axes of size >= 3 is an image: its
trailing axes are ``H, W`` and all leading axes are folded into channels ``C``. Any
other row is a vector of ``d`` features, held as ``(n, 1, 1, d)``; its "window" is a
random set of mutable coordinates.

Examples
--------
>>> import torch
>>> geo = SearchGeometry.build(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]),
...                            lower=0.0, upper=1.0)
>>> geo.is_image, (geo.c, geo.h, geo.w)
(True, (3, 8, 8))
>>> win = geo.window(2, 0.25, torch.Generator().manual_seed(0), minimum=1)
>>> win.size, tuple(win.mask.shape), int(win.mask[0].sum())
(4, (2, 1, 8, 8), 16)
>>> SearchGeometry.build(torch.zeros(2, 30), torch.tensor([0, 1])).is_image
False
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from bastion.errors import DataError, UsageError

__all__ = ["SearchGeometry", "Window", "check_attack_inputs", "pseudo_gaussian"]

_TOL = 1e-6


def check_attack_inputs(x: torch.Tensor, labels: torch.Tensor, *, what: str = "y") -> torch.Tensor:
    """``labels`` as an int64 ``(n,)`` tensor on ``x``'s device, or a :class:`DataError`."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        raise DataError(
            "An attack needs a non-empty batch tensor x of shape (n, *row); got "
            f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}."
        )
    if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
        raise DataError("An attack needs finite floating-point inputs; clean the data first.")
    if (
        not isinstance(labels, torch.Tensor)
        or labels.shape != (len(x),)
        or labels.dtype.is_floating_point
    ):
        raise DataError(
            f"An attack needs {what} as one integer label per row, shape ({len(x)},); got "
            f"{tuple(getattr(labels, 'shape', ()))}."
        )
    return labels.to(device=x.device, dtype=torch.int64)


@functools.lru_cache(maxsize=64)
def pseudo_gaussian(a: int, b: int) -> torch.Tensor:
    """The paper's pseudo-Gaussian bump on an ``a x b`` window (CPU, float64).

    Entry ``(r, q)`` on ring ``d = max(|r - centre_r|, |q - centre_q|)`` (rounded down)
    is ``sum_{k=0}^{n-d} 1 / (n + 1 - k)^2`` with ``n`` the outermost ring: largest in
    the middle, ``1 / (n + 1)^2`` on the border.

    >>> pseudo_gaussian(3, 3)[1].tolist()
    [0.25, 1.25, 0.25]
    """
    r = torch.arange(a, dtype=torch.float64)[:, None] - (a - 1) / 2
    q = torch.arange(b, dtype=torch.float64)[None, :] - (b - 1) / 2
    ring = torch.maximum(r.abs(), q.abs()).floor().to(torch.int64)
    n = int(ring.max()) if ring.numel() else 0
    weights = torch.tensor([1.0 / (n + 1 - k) ** 2 for k in range(n + 1)], dtype=torch.float64)
    cumulative = weights.cumsum(0)
    return cumulative[n - ring]


@functools.lru_cache(maxsize=64)
def _window_table(s: int) -> torch.Tensor:
    """Unit-norm ``s x s`` update: left half +bump, right half -bump (paper, Sec. 3.2)."""
    left = pseudo_gaussian(s, s // 2) if s // 2 else torch.zeros(s, 0, dtype=torch.float64)
    table = torch.cat([left, -pseudo_gaussian(s, s - s // 2)], dim=1)
    unit: torch.Tensor = table / table.norm()
    return unit


@functools.lru_cache(maxsize=64)
def _squares(h: int, w: int, side: int, device: torch.device) -> torch.Tensor:
    """Every ``side x side`` window of an ``h x w`` image, ``(positions, 1, h, w)`` bool.

    Window ``r * (w - side + 1) + c`` has its top-left corner at ``(r, c)``. Indexing
    this table with the random corners gives a batch's windows in one gather instead
    of a handful of comparisons per search iteration.
    """
    rr = torch.arange(h, device=device)
    cc = torch.arange(w, device=device)
    top = torch.arange(h - side + 1, device=device)
    left = torch.arange(w - side + 1, device=device)
    in_rows = (rr >= top[:, None]) & (rr < top[:, None] + side)  # (rows, h)
    in_cols = (cc >= left[:, None]) & (cc < left[:, None] + side)  # (cols, w)
    table = in_rows[:, None, :, None] & in_cols[None, :, None, :]  # (rows, cols, h, w)
    return table.reshape(-1, 1, h, w)


@dataclass(frozen=True)
class Window:
    """Random windows for a batch of ``a`` samples.

    Attributes
    ----------
    mask : Tensor
        ``(a, 1, H, W)`` bool, True inside each sample's window.
    size : int
        Side ``s`` of the square (images) or number of coordinates (vectors).
    rows, cols : Tensor or None
        ``(a,)`` top-left corners (images only).
    """

    mask: torch.Tensor
    size: int
    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None


@dataclass(frozen=True)
class SearchGeometry:
    """A batch in the internal layout, with bounds, scale and mutable mask.

    Build it with :meth:`build`. ``x``, ``lo``, ``hi``, ``scale`` and ``allowed`` are
    ``(n|1, C, H, W)`` tensors on ``x``'s device; ``row_shape`` is the caller's layout.
    """

    x: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    scale: torch.Tensor
    allowed: torch.Tensor
    row_shape: tuple[int, ...]
    is_image: bool

    @classmethod
    def build(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        lower: float | torch.Tensor | None = None,
        upper: float | torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> SearchGeometry:
        """Validate the batch and its constraints and fold them into the layout."""
        check_attack_inputs(x, y)
        row = tuple(int(v) for v in x.shape[1:])
        image = len(row) >= 2 and row[-1] >= 3 and row[-2] >= 3
        layout = (math.prod(row[:-2]), row[-2], row[-1]) if image else (1, 1, math.prod(row))
        dev, dt = x.device, x.dtype

        def field(value: float | torch.Tensor | None, fill: float, name: str) -> torch.Tensor:
            t = torch.as_tensor(fill if value is None else value, dtype=dt, device=dev)
            if t.ndim and tuple(t.shape) != row:
                raise UsageError(
                    f"The attack's {name!r} must be a number or a tensor of the row shape {row}; "
                    f"got shape {tuple(t.shape)}."
                )
            return t.expand(row).reshape(1, *layout).clone()

        lo = field(lower, -math.inf, "lower")
        hi = field(upper, math.inf, "upper")
        sc = field(scale, 1.0, "scale")
        if not bool(torch.isfinite(sc).all() and (sc > 0).all()):
            raise UsageError("The attack's 'scale' must be finite and positive for every feature.")
        if bool((lo > hi).any()):
            raise UsageError("The attack's 'lower' bound exceeds 'upper' for some feature.")
        allowed = torch.ones((1, *layout), dtype=torch.bool, device=dev)
        if mask is not None:
            m = torch.as_tensor(mask, device=dev)
            if tuple(m.shape) != row or m.dtype != torch.bool:
                raise UsageError(f"The attack's 'mask' must be a bool tensor of shape {row}.")
            allowed = m.reshape(1, *layout).clone()
        if not bool(allowed.any()):
            raise UsageError("The attack's mask allows no feature to change; nothing to attack.")
        xi = x.reshape(len(x), *layout)
        if bool((xi < lo - _TOL).any() or (xi > hi + _TOL).any()):
            raise DataError(
                "The attack's inputs lie outside the declared bounds; rescale the data to the "
                "model's raw input space or correct the bounds."
            )
        return cls(xi, lo, hi, sc, allowed.to(dt), row, image)

    # -- shapes ----------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Samples in the batch."""
        return len(self.x)

    @functools.cached_property
    def c(self) -> int:
        """Channels of the internal layout (1 for vectors)."""
        return int(self.x.shape[1])

    @functools.cached_property
    def h(self) -> int:
        """Height of the internal layout (1 for vectors)."""
        return int(self.x.shape[2])

    @functools.cached_property
    def w(self) -> int:
        """Width of the internal layout (the feature count for vectors)."""
        return int(self.x.shape[3])

    @property
    def device(self) -> torch.device:
        """Where every tensor lives."""
        return self.x.device

    def to_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Internal ``(m, C, H, W)`` -> the caller's ``(m, *row)``."""
        return t.reshape(len(t), *self.row_shape)

    def from_rows(self, t: torch.Tensor) -> torch.Tensor:
        """The caller's ``(m, *row)`` -> internal ``(m, C, H, W)``."""
        return t.reshape(len(t), self.c, self.h, self.w)

    def apply(self, x0: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``clip(x0 + delta * scale)`` to the bounds; masked features stay exact.

        ``x0`` is ``(m, C, H, W)`` rows of :attr:`x` (internal layout).
        """
        moved = torch.clamp(x0 + delta * self.scale, self.lo, self.hi)
        return torch.where(self.allowed.bool(), moved, x0)

    def step_targets(self, x0: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(up, down)``: ``x0 +- radius * scale`` clipped to the bounds, ``x0`` where masked.

        These are the only values an L∞ Square step can write into a window, so the
        search computes them once per sample instead of once per iteration.
        """
        step = radius * self.scale
        keep = self.allowed.bool()
        up = torch.where(keep, torch.clamp(x0 + step, self.lo, self.hi), x0)
        down = torch.where(keep, torch.clamp(x0 - step, self.lo, self.hi), x0)
        return up, down

    # -- random windows -------------------------------------------------------------------
    def window(self, a: int, p: float, gen: torch.Generator, *, minimum: int) -> Window:
        """A random window per sample covering about a fraction ``p`` of the row.

        Images: an ``s x s`` square, ``s = round(sqrt(p H W))`` kept in
        ``[minimum, min(H, W) - 1]``. Vectors: ``round(p d)`` random mutable coordinates
        (at least one).
        """
        dev = self.device
        if self.is_image:
            side = self._side(p, minimum)
            rows = torch.randint(0, self.h - side + 1, (a,), generator=gen, device=dev)
            cols = torch.randint(0, self.w - side + 1, (a,), generator=gen, device=dev)
            inside = _squares(self.h, self.w, side, dev)[rows * (self.w - side + 1) + cols]
            return Window(inside, side, rows, cols)
        free, n_free = self._free
        k = max(1, min(n_free, round(p * n_free)))
        draw = torch.rand((a, self.w), generator=gen, device=dev).masked_fill(~free, 2.0)
        chosen = draw.topk(k, dim=1, largest=False).indices
        mask = torch.zeros((a, self.w), dtype=torch.bool, device=dev).scatter_(1, chosen, True)
        return Window(mask[:, None, None, :], k)

    def window_mask(self, a: int, p: float, gen: torch.Generator, *, minimum: int) -> torch.Tensor:
        """Just the ``mask`` of :meth:`window`, drawn with fewer operations.

        Images draw one uniformly random position among all windows of the side (the
        same distribution as :meth:`window`'s row and column), one table look-up.
        """
        if not self.is_image:
            return self.window(a, p, gen, minimum=minimum).mask
        table = _squares(self.h, self.w, self._side(p, minimum), self.device)
        return table[torch.randint(0, len(table), (a,), generator=gen, device=self.device)]

    def _side(self, p: float, minimum: int) -> int:
        side = min(max(round(math.sqrt(p * self.h * self.w)), minimum), min(self.h, self.w) - 1)
        return max(side, 1)

    @functools.cached_property
    def _free(self) -> tuple[torch.Tensor, int]:
        """Vectors: the mutable coordinates ``(d,)`` and how many there are."""
        free = self.allowed[0, 0, 0].bool()
        return free, int(free.sum())

    def window_pattern(self, win: Window, gen: torch.Generator) -> torch.Tensor:
        """Unit-norm L2 update shaped to each window, ``(a, 1, H, W)``.

        Images: the paper's two-half pseudo-Gaussian, transposed for a random half of
        the samples. Vectors: a random Gaussian direction on the chosen coordinates.
        """
        a, dev, dt = len(win.mask), self.device, self.x.dtype
        if not self.is_image or win.rows is None or win.cols is None:
            g = torch.randn((a, 1, 1, self.w), generator=gen, device=dev, dtype=dt) * win.mask
            return g / g.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        s = win.size
        table = _window_table(s).to(device=dev, dtype=dt)
        flip = torch.randint(0, 2, (a,), generator=gen, device=dev).bool()
        tables = torch.where(flip[:, None, None], table.T, table)
        rr = (torch.arange(self.h, device=dev)[None, :] - win.rows[:, None]).clamp(0, s - 1)
        cc = (torch.arange(self.w, device=dev)[None, :] - win.cols[:, None]).clamp(0, s - 1)
        batch = torch.arange(a, device=dev)[:, None, None]
        placed = tables[batch, rr[:, :, None], cc[:, None, :]]
        return placed[:, None] * win.mask

    def tiled_pattern(self, a: int, gen: torch.Generator) -> torch.Tensor:
        """The paper's L2 initialisation: pseudo-Gaussian tiles of side ``min(H, W) // 5``
        with a random sign per (sample, channel, tile), ``(a, C, H, W)`` (not normalised)."""
        dev, dt = self.device, self.x.dtype
        t = max(min(self.h, self.w) // 5, 1)
        base = pseudo_gaussian(t, t).to(device=dev, dtype=dt)
        rh, rw = torch.arange(self.h, device=dev), torch.arange(self.w, device=dev)
        bump = base[(rh % t)[:, None], (rw % t)[None, :]]
        n_r, n_c = -(-self.h // t), -(-self.w // t)
        bits = torch.randint(0, 2, (a, self.c, n_r, n_c), generator=gen, device=dev)
        signs = (bits.to(dt) * 2 - 1)[:, :, (rh // t)[:, None], (rw // t)[None, :]]
        return bump * signs
