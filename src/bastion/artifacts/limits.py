"""Bounds that keep a scan finite on hostile input.

Each limit, when reached, becomes an ``unprovable`` issue ("could not be proven
safe"), never a silent pass. The defaults pass real multi-gigabyte checkpoints: tensor
bytes are hashed, not parsed, so only pickles and configs count against the opcode,
memo and string limits, and stored (uncompressed) archive members do not count as
decompressed bytes.

Examples
--------
>>> from bastion.artifacts.limits import Limits
>>> Limits().max_depth
8
>>> Limits(max_opcodes=10).max_opcodes
10
>>> Limits(max_ratio=0)
Traceback (most recent call last):
...
bastion.errors.UsageError: Scan limit max_ratio must be a positive number; got 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from bastion.errors import UsageError

__all__ = ["Limits"]

_GIB = 1 << 30
_MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Scan bounds.

    Parameters
    ----------
    max_depth : int
        Containers inside containers (zip in tar in gzip ...).
    max_decompressed_bytes : int
        Total bytes produced by decompression (gzip, bz2, xz, deflate...) or read out of
        stored zip members, per file (overlapping members cannot multiply the work).
    max_ratio : float
        Decompressed/compressed ratio allowed for a stream once it produced
        ``ratio_floor_bytes`` (zip-bomb guard).
    ratio_floor_bytes : int
        Output size below which the ratio is not enforced (small text compresses well).
    max_members : int
        Members per archive.
    max_opcodes : int
        Opcodes per pickle stream (expansion attacks).
    max_memo : int
        Memo entries per pickle stream.
    max_stack : int
        Stack depth (values plus marks) per pickle stream.
    max_string_bytes : int
        Strings and bytes larger than this are hashed and kept as placeholders instead
        of being held in memory.
    max_pickles_per_stream : int
        Concatenated pickles read from one stream.
    max_header_bytes : int
        Size of a JSON/metadata header (safetensors, GGUF, npy, Keras config).
    """

    max_depth: int = 8
    max_decompressed_bytes: int = 32 * _GIB
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 256 * _MIB
    max_members: int = 100_000
    max_opcodes: int = 20_000_000
    max_memo: int = 2_000_000
    max_stack: int = 1_000_000
    max_string_bytes: int = 1 * _MIB
    max_pickles_per_stream: int = 64
    max_header_bytes: int = 100 * _MIB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"Scan limit {f.name} must be a positive number; got {value!r}.")
