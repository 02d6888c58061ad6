"""Reporting shared by the black-box evasion and corruption probes.

Rates with Wilson intervals, queries-to-success statistics, severity, budgets in
the units of :mod:`bastion.attacks.evasion.units` (the same rule as the white-box
probes, through :class:`~bastion.attacks.evasion.budget.Domain`), and evidence:
small PNG images (written with a minimal zlib PNG encoder, no imaging library
needed) for image-like inputs and tables of original versus adversarial rows for
tabular ones.

Examples
--------
>>> import numpy as np
>>> png = encode_png(np.zeros((2, 3), dtype=np.uint8))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(png) > 40
(True, True)
>>> [m.name for m in query_metrics(np.array([10, 20, 30, 40]), "Square")]
['queries_median', 'queries_q1', 'queries_q3']
>>> image_like((1, 8, 8)), image_like((30,))
(True, False)
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.units import BudgetUnits, Units
from bastion.catalog.severity import Effect, Effort, Impact, SeverityRating, rate
from bastion.findings import Evidence, Metric, Series, wilson_interval
from bastion.probes.context import ProbeContext
from bastion.targets.spec import InputSpec

__all__ = [
    "Units",
    "blackbox_budgets",
    "budget_scale",
    "constraint_evidence",
    "encode_png",
    "evasion_rating",
    "image_evidence",
    "image_like",
    "query_metrics",
    "rate_metric",
    "table_evidence",
]


def image_like(shape: Sequence[int]) -> bool:
    """True for ``(C, H, W)`` with 1, 3 or 4 channels, or ``(H, W)``, with H, W >= 4."""
    dims = tuple(shape)
    if len(dims) == 2:
        return dims[0] >= 4 and dims[1] >= 4
    return len(dims) == 3 and dims[0] in (1, 3, 4) and dims[1] >= 4 and dims[2] >= 4


def budget_scale(
    spec: InputSpec, units: Units, reference: np.ndarray
) -> tuple[np.ndarray | None, str]:
    """Per-feature unit of a budget (None for raw units) and its description.

    The rule of :mod:`bastion.attacks.evasion.units`, applied through
    :meth:`Domain.from_spec <bastion.attacks.evasion.budget.Domain.from_spec>`.
    """
    dom = Domain.from_spec(spec, reference=reference, units=units, freeze_discrete=False)
    if dom.units.kind == "raw":
        return None, dom.units.describe()
    return dom.scale.numpy().astype(np.float32), dom.units.describe()


def blackbox_budgets(
    who: str,
    spec: InputSpec,
    units: Units,
    reference: np.ndarray,
    budgets: Sequence[float] | None,
    defaults: Sequence[float],
    norm: str,
) -> tuple[list[float], np.ndarray | None, BudgetUnits]:
    """Budgets (defaults converted), per-feature scale (None in raw units) and units.

    Raises
    ------
    UsageError
        If a budget exceeds what the input could ever need, or raw units on features
        of different ranges come without budgets.
    """
    dom = Domain.from_spec(spec, reference=reference, units=units, freeze_discrete=False, who=who)
    chosen = list(budgets) if budgets else dom.units.from_fractions(defaults, who=who)
    dom.check_budgets(chosen, norm, who)
    scale = None if dom.units.kind == "raw" else dom.scale.numpy().astype(np.float32)
    return chosen, scale, dom.units


def rate_metric(name: str, successes: int, n: int, definition: str) -> Metric:
    """A rate with its Wilson 95% interval."""
    if n == 0:
        return Metric(name=name, value=None, unit="fraction", definition=definition, n=0)
    return Metric(
        name=name,
        value=round(successes / n, 4),
        unit="fraction",
        definition=definition,
        interval=wilson_interval(successes, n),
        n=n,
    )


def query_metrics(queries: np.ndarray, attack: str) -> list[Metric]:
    """Median and quartiles of the queries successful attacks needed."""
    q = np.asarray(queries, dtype=np.float64)
    how = f"model queries {attack} needed per successful adversarial example"
    if len(q) == 0:
        return [
            Metric(name=f"queries_{k}", value=None, unit="queries", definition=f"{k} of {how}")
            for k in ("median", "q1", "q3")
        ]
    return [
        Metric(
            name=f"queries_{key}",
            value=float(np.percentile(q, pct)),
            unit="queries",
            definition=f"{label} of the {how} (over {len(q)} successes).",
            n=len(q),
        )
        for key, label, pct in (
            ("median", "Median", 50),
            ("q1", "First quartile", 25),
            ("q3", "Third quartile", 75),
        )
    ]


def query_series(queries: np.ndarray, n_attacked: int, limit: int, attack: str) -> Series:
    """Share of attacked samples broken within each number of queries (a CDF)."""
    q = np.sort(np.asarray(queries, dtype=np.float64))
    grid = np.unique(np.round(np.geomspace(1, max(limit, 2), 24)))
    ys = [float((q <= g).sum() / max(n_attacked, 1)) for g in grid]
    return Series(
        name=f"{attack}: success rate within a query budget",
        x_label="queries per sample",
        y_label="share of attacked samples evaded",
        x=[float(g) for g in grid],
        y=ys,
    )


def evasion_rating(
    success_rate: float, median_queries: float | None, context: ProbeContext, owasp: list[str]
) -> SeverityRating:
    """Severity of an evasion: extent = success rate; effort from the median queries.

    Up to 1,000 queries per example is low effort, up to 10,000 medium, more high.
    """
    if median_queries is None or median_queries <= 1000:
        effort = Effort.LOW
    elif median_queries <= 10_000:
        effort = Effort.MEDIUM
    else:
        effort = Effort.HIGH
    impact = Impact(
        effect=Effect.EVASION,
        extent=min(1.0, max(0.0, success_rate)),
        effort=effort,
        security_decision=context.security_decision,
    )
    return rate(impact, owasp=owasp)


# -- evidence -------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG from a ``(H, W)`` grey or ``(H, W, 3)`` RGB ``uint8`` array."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    colour = 0 if arr.ndim == 2 else 2
    height, width = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[r].tobytes() for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _to_pixels(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` floats -> ``(H, W, 3)`` uint8 (grey for 1 channel)."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    a = a[:3] if a.shape[0] >= 3 else np.repeat(a[:1], 3, axis=0)
    scaled = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return np.asarray(np.round(scaled * 255).astype(np.uint8).transpose(1, 2, 0))


def image_evidence(
    context: ProbeContext,
    probe_id: str,
    filename: str,
    clean: np.ndarray,
    adversarial: np.ndarray,
    description: str,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    changed: str = "adversarial input",
) -> Evidence | None:
    """A PNG with one row per example: clean | changed | difference (amplified).

    Returns None when the context has no output folder (evidence stays inline only).
    """
    path = context.evidence_path(probe_id, filename)
    if path is None or len(clean) == 0:
        return None
    lo, hi = bounds
    zoom = max(1, 64 // max(clean.shape[-1], 1))
    rows = []
    for c, a in zip(clean, adversarial, strict=True):
        diff = np.asarray(a, dtype=np.float64) - np.asarray(c, dtype=np.float64)
        peak = float(np.abs(diff).max()) or 1.0
        tiles = [_to_pixels(c, lo, hi), _to_pixels(a, lo, hi), _to_pixels(diff / peak, -1, 1)]
        gap = np.full((tiles[0].shape[0], 1, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1))
    grid = np.concatenate(rows, axis=0)
    grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    path.write_bytes(encode_png(grid))
    return Evidence(
        kind="image",
        description=description
        + f" Columns: clean input, {changed}, difference (amplified, grey = 0).",
        path=f"evidence/{probe_id}/{filename}",
    )


def table_evidence(
    names: Sequence[str],
    clean: np.ndarray,
    adversarial: np.ndarray,
    immutable: np.ndarray,
    description: str,
) -> Evidence:
    """Original versus adversarial rows, feature by feature, immutable ones marked."""
    columns = ["feature", "immutable"]
    for i in range(len(clean)):
        columns += [f"row {i + 1} original", f"row {i + 1} adversarial"]
    rows = []
    for j, name in enumerate(names):
        cells: list[object] = [name, bool(immutable[j])]
        for c, a in zip(clean, adversarial, strict=True):
            cells += [float(c[j]), float(a[j])]
        rows.append(cells)
    return Evidence(kind="table", description=description, data={"columns": columns, "rows": rows})


def constraint_evidence(
    spec: InputSpec,
    x: np.ndarray,
    x_adv: np.ndarray,
    won: np.ndarray,
    violations: dict[str, int],
    n_valid: int,
) -> list[Evidence]:
    """The constraint check of every returned row, and up to 3 successful rows as a table."""
    items = [
        Evidence(
            kind="observation",
            description="Constraint check of every returned row (rows breaking each rule).",
            data={"valid_rows": n_valid, "rows": len(x), **violations},
        )
    ]
    pick = np.nonzero(won)[0][:3]
    if len(pick):
        names = spec.feature_names or [f"x{i}" for i in range(spec.n_features)]
        items.append(
            table_evidence(
                names,
                x[pick],
                x_adv[pick],
                ~spec.mutable_mask(),
                "Original and adversarial rows; immutable features (marked) are unchanged, "
                "integers stay integers and one-hot groups keep one hot bit.",
            )
        )
    return items
