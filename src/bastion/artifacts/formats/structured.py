"""Formats with no code in them by design, validated so loaders cannot disagree:
safetensors and GGUF.

**safetensors**: an 8-byte little-endian header length, a JSON header, then the data.
Checked: the header is a JSON object without duplicate keys, within
``max_header_bytes``; every tensor has a known dtype, a shape of non-negative integers
and ``data_offsets`` whose span equals ``prod(shape) * dtype size``; spans lie inside the
data, do not overlap and leave no gap or trailing bytes (where hidden content could
sit). Tensor bytes are hashed with the file, never parsed.

**GGUF**: magic, version 1-3, tensor and metadata counts that fit in the file, every
metadata key/value readable within bounds, tensor infos with at most 4 dimensions and
offsets inside the file. A chat template that reaches Python internals (the Jinja
template-injection pattern behind CVE-2024-34359) is reported as code execution.

Examples
--------
>>> import json, struct
>>> from bastion.artifacts.scanner import scan_bytes
>>> head = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
>>> ok = struct.pack("<Q", len(head)) + head + bytes(8)
>>> scan_bytes(ok).safe, scan_bytes(ok + b"hidden").issues[0].category.value
(True, 'container_anomaly')
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["scan_gguf", "scan_safetensors"]

_ST_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} (parsers keep different ones)")
        out[key] = value
    return out


def scan_safetensors(ctx: ScanContext, w: Window, member: tuple[str, ...]) -> None:
    """Validate a safetensors header against its data (see the module notes)."""
    n = struct.unpack("<Q", w.head(8))[0]

    def bad(message: str, category: Category = Category.UNPROVABLE) -> None:
        suffix = "; could not be proven safe" if category is Category.UNPROVABLE else ""
        ctx.issue(category, f"safetensors: {message}{suffix}", member, opcode="header")

    if n > ctx.limits.max_header_bytes:
        return bad(f"the header is {n} bytes (limit max_header_bytes)")
    try:
        header = json.loads(w.head(n, 8), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as err:
        return bad(f"the header is not valid JSON ({err})", Category.CONTAINER_ANOMALY)
    if not isinstance(header, dict):
        return bad("the header is not a JSON object")
    data_size = w.size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                bad("__metadata__ must map strings to strings", Category.CONTAINER_ANOMALY)
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            return bad(f"tensor {name!r} is not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _ST_BITS:
            return bad(f"tensor {name!r} has the unknown dtype {dtype!r}")
        ints = isinstance(shape, list) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        )
        pair = (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        )
        if not ints or not pair:
            return bad(f"tensor {name!r} has a malformed shape or data_offsets")
        begin, end = offsets
        nbits = math.prod(shape) * _ST_BITS[dtype]
        if not 0 <= begin <= end <= data_size:
            return bad(f"tensor {name!r} points outside the data ({begin}..{end} of {data_size})")
        if nbits % 8 or end - begin != nbits // 8:
            bad(
                f"tensor {name!r} spans {end - begin} bytes but its shape and dtype need "
                f"{nbits / 8:g}",
                Category.CONTAINER_ANOMALY,
            )
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            bad(f"tensor {name!r} overlaps another tensor", Category.CONTAINER_ANOMALY)
        elif begin > cursor:
            bad(
                f"{begin - cursor} unused byte(s) before tensor {name!r}",
                Category.CONTAINER_ANOMALY,
            )
        cursor = max(cursor, end)
    if cursor < data_size:
        bad(
            f"{data_size - cursor} byte(s) follow the last tensor (hidden content)",
            Category.CONTAINER_ANOMALY,
        )
    ctx.note(f"safetensors: {len(spans)} tensor(s) validated; their bytes were hashed, not parsed")
    return None


# -- GGUF ---------------------------------------------------------------------------------
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_JINJA_ESCAPE = re.compile(
    r"__(class|globals|subclasses|builtins|import|mro|base|init|getattribute|code)__|"
    r"\b(popen|subprocess|os\.system|eval|exec)\b|\bcycler\b|\bjoiner\b|\blipsum\b"
)


class _Reader:
    def __init__(self, w: Window, v1: bool) -> None:
        self.w, self.pos, self.v1 = w, 0, v1

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = self.w.head(size, self.pos)
        if len(data) < size:
            raise ValueError("truncated")
        self.pos += size
        return struct.unpack(fmt, data)[0]

    def count(self) -> int:
        return int(self.take("<I" if self.v1 else "<Q"))

    def string(self, limit: int) -> str:
        n = self.count()
        if n > limit or self.pos + n > self.w.size:
            raise ValueError(f"a string of {n} bytes does not fit")
        self.pos += n
        return self.w.head(n, self.pos - n).decode("utf-8", "replace")

    def value(self, vtype: int, limit: int, depth: int = 0) -> Any:
        if vtype in _GGUF_SCALARS:
            return self.take(_GGUF_SCALARS[vtype])
        if vtype == 8:
            return self.string(limit)
        if vtype == 9 and depth < 2:
            inner, n = self.take("<I"), self.count()
            if n > self.w.size:
                raise ValueError(f"an array of {n} items does not fit")
            return [self.value(inner, limit, depth + 1) for _ in range(n)][:4]
        raise ValueError(f"unknown metadata type {vtype}")


def scan_gguf(ctx: ScanContext, w: Window, member: tuple[str, ...]) -> None:
    """Check a GGUF header (see the module notes)."""
    version = struct.unpack("<I", w.head(4, 4).ljust(4, b"\0"))[0]
    r = _Reader(w, v1=version == 1)
    r.pos = 8
    limit = ctx.limits.max_header_bytes
    try:
        if version not in (1, 2, 3):
            raise ValueError(f"unknown GGUF version {version}")
        n_tensors, n_kv = r.count(), r.count()
        if n_tensors > w.size // 8 or n_kv > w.size // 8:
            raise ValueError(f"{n_tensors} tensors / {n_kv} keys cannot fit in the file")
        for _ in range(n_kv):
            key, vtype = r.string(limit), r.take("<I")
            value = r.value(vtype, limit)
            template = isinstance(value, str) and key.endswith("chat_template")
            if template and _JINJA_ESCAPE.search(value):
                ctx.issue(
                    Category.CODE_EXECUTION,
                    f"GGUF {key} reaches Python internals (Jinja template injection runs "
                    "code when the template is rendered)",
                    member,
                    global_name=key,
                )
        for _ in range(n_tensors):
            r.string(limit)
            n_dims = r.take("<I")
            if n_dims > 4:
                raise ValueError(f"a tensor has {n_dims} dimensions (GGML allows 4)")
            for _ in range(n_dims):
                r.count()
            r.take("<I")
            if r.take("<Q") > w.size:
                raise ValueError("a tensor offset points past the end of the file")
    except ValueError as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"GGUF header: {err}; could not be proven safe",
            member,
            offset=r.pos,
        )
        return
    ctx.note("GGUF header validated; tensor data was hashed, not parsed")
