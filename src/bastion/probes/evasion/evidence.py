"""Evidence for evasion findings: adversarial examples as PNG images or tables.

Image-like rows (``(C, H, W)`` with 1 or 3 channels, or ``(H, W)``, sides of at least
4) are written as small PNGs showing the clean input, the adversarial input and the
perturbation (grey = unchanged, brighter/darker = pushed up/down, amplified to use
the full range). Pixels map from the declared bounds to 0..255, or from the two
images' own range where a bound is missing. Other rows become a table of the
features that changed most, relative to their range.

The PNG encoder is a few lines of :mod:`zlib` (8-bit greyscale or RGB, no filters),
so no imaging library is needed.

Examples
--------
>>> png = encode_png(np.zeros((2, 3), dtype=np.uint8))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", int.from_bytes(png[16:20], "big")
(True, 3)
>>> is_image_row((1, 8, 8)), is_image_row((30,))
(True, False)
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bastion.attacks.evasion.units import BudgetUnits
from bastion.findings import Evidence
from bastion.probes.context import ProbeContext

__all__ = ["encode_png", "example_evidence", "is_image_row", "triptych", "units_evidence"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GAP = 1


def is_image_row(shape: Sequence[int]) -> bool:
    """True for ``(C, H, W)`` rows with C in {1, 3} or ``(H, W)`` rows, sides >= 4."""
    if len(shape) == 3:
        return shape[0] in (1, 3) and shape[1] >= 4 and shape[2] >= 4
    return len(shape) == 2 and shape[0] >= 4 and shape[1] >= 4


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB)."""
    img = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = img.shape[:2]
    colour = 0 if img.ndim == 2 else 2
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _as_hwc(row: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` or ``(H, W)`` row as ``(H, W)`` or ``(H, W, 3)`` floats."""
    if row.ndim == 2:
        return np.asarray(row, dtype=np.float64)
    if row.shape[0] == 1:
        return np.asarray(row[0], dtype=np.float64)
    return np.asarray(np.moveaxis(row, 0, -1), dtype=np.float64)


def triptych(clean: np.ndarray, adversarial: np.ndarray, low: float, high: float) -> np.ndarray:
    """``clean | adversarial | perturbation`` side by side as a uint8 image."""
    a, b = _as_hwc(clean), _as_hwc(adversarial)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        low, high = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        high = high if high > low else low + 1.0

    def to_byte(v: np.ndarray) -> np.ndarray:
        return np.asarray(np.clip((v - low) / (high - low) * 255.0, 0, 255))

    delta = b - a
    peak = float(np.abs(delta).max()) or 1.0
    panels = [to_byte(a), to_byte(b), np.clip(128.0 + delta / peak * 127.0, 0, 255)]
    gap_shape = (a.shape[0], _GAP, *a.shape[2:])
    gap = np.full(gap_shape, 255.0)
    joined = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return np.asarray(np.round(joined), dtype=np.uint8)


def units_evidence(units: BudgetUnits) -> Evidence:
    """An observation recording how a run read its budgets (resolved and requested units)."""
    return Evidence(
        kind="observation",
        description=f"Budgets are in {units.describe()} (units '{units.requested}' resolved to "
        f"'{units.kind}'; see docs/evasion.md, 'Budget units').",
        data=units.as_dict(),
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "target"


def example_evidence(
    *,
    context: ProbeContext,
    probe_id: str,
    target_name: str,
    tag: str,
    clean: np.ndarray,
    adversarial: np.ndarray,
    labels: Sequence[str],
    adversarial_labels: Sequence[str],
    budgets: Sequence[float],
    lower: np.ndarray,
    upper: np.ndarray,
    scale: np.ndarray,
    feature_names: Sequence[str] | None,
    change_units: str = "fraction of the feature's range",
) -> list[Evidence]:
    """Evidence for a few adversarial examples (rows of ``clean``/``adversarial``).

    ``lower``/``upper``/``scale`` are flat per-feature arrays (``scale`` is the budget
    unit; ``change_units`` says what it is). Returns one image per
    example for image-like rows when the context has an output folder, else one table
    of the most-changed features, plus a table that lists every example.
    """
    if len(clean) == 0:
        return []
    found: list[Evidence] = []
    shape = clean.shape[1:]
    listing = {
        "columns": ["example", "true class", "adversarial class", "budget"],
        "rows": [
            [i + 1, labels[i], adversarial_labels[i], f"{budgets[i]:g}"] for i in range(len(clean))
        ],
    }
    found.append(
        Evidence(
            kind="table",
            description="Adversarial examples: the model's answer before and after the "
            "perturbation, and the smallest tested budget that produced it.",
            data=listing,
        )
    )
    if is_image_row(shape) and context.output_dir is not None:
        low, high = float(np.min(lower)), float(np.max(upper))
        for i in range(len(clean)):
            name = f"{_safe(target_name)}-{tag}-example{i + 1}.png"
            path = context.evidence_path(probe_id, name)
            if path is None:
                break
            Path(path).write_bytes(encode_png(triptych(clean[i], adversarial[i], low, high)))
            found.append(
                Evidence(
                    kind="image",
                    description=f"Example {i + 1}: clean input (class {labels[i]}), adversarial "
                    f"input (class {adversarial_labels[i]}) at budget {budgets[i]:g}, and the "
                    "perturbation (grey = unchanged, amplified).",
                    path=Path(path).relative_to(context.output_dir).as_posix(),
                )
            )
        return found
    flat_c = clean.reshape(len(clean), -1).astype(np.float64)
    flat_a = adversarial.reshape(len(adversarial), -1).astype(np.float64)
    names = list(feature_names) if feature_names else [f"x[{j}]" for j in range(flat_c.shape[1])]
    rows = []
    for i in range(len(clean)):
        change = (flat_a[i] - flat_c[i]) / scale
        for j in np.argsort(-np.abs(change), kind="stable")[:5]:
            if change[j] == 0:
                break
            rows.append(
                [i + 1, names[j], f"{flat_c[i, j]:.6g}", f"{flat_a[i, j]:.6g}", f"{change[j]:+.3g}"]
            )
    found.append(
        Evidence(
            kind="table",
            description="The features each adversarial example changed most (change in "
            f"{change_units}).",
            data={
                "columns": ["example", "feature", "clean", "adversarial", "change"],
                "rows": rows,
            },
        )
    )
    return found
