"""Leave pickle behind: rewrite a scanned-clean model as safetensors or skops.

A pickle-based model file is a program; safetensors (a JSON header and raw tensor
bytes) and skops (a schema of allowed types, loaded without ``pickle``) are data.
:func:`convert_artifact` moves a model from the first kind to the second, and never
runs the input on the way:

1. the input is scanned with :func:`bastion.artifacts.scan_path`; any issue refuses
   the conversion (:class:`ConversionRefused`, exit code 1) and nothing is loaded;
2. it is loaded with :func:`bastion.artifacts.safe_load`, the restricted unpickler
   that enforces the scanner's allowlist, pinned to the SHA-256 the scan saw, so the
   bytes loaded are the bytes scanned;
3. ``safetensors``: every tensor in the loaded object (a state dict, or a checkpoint
   dict holding one, nested keys joined with ``.``) is written; non-tensor entries
   (epoch counters, optimizer hyper-parameters) and tensors safetensors cannot hold
   (sparse, quantized, nested, meta) are dropped and listed; tensors sharing storage
   (tied weights) are written as separate copies. The header's keys are sorted, so
   the same input always gives the same bytes (and SHA-256). The file is read back
   and every tensor compared with :func:`torch.equal`;
   ``skops``: the estimator is written with :func:`skops.io.dump` (deflated), then read back
   with :func:`skops.io.load` trusting exactly the types reported by
   :func:`skops.io.get_untrusted_types`, which are listed so a reader knows what it
   will be asked to trust;
4. the output goes next to the input (``model.pt`` → ``model.safetensors``,
   ``model.pkl`` → ``model.skops``) unless another path is given, through a temporary
   file and an atomic rename; its SHA-256 is returned.

Examples
--------
>>> import tempfile, pathlib, torch
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> torch.save({"w": torch.ones(2, 3), "step": 7}, folder / "model.pt")
>>> result = convert_artifact(folder / "model.pt", to="safetensors")
>>> result.output.name, result.tensors, result.dropped
('model.safetensors', 1, ('step (int)',))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bastion.errors import BastionError, UsageError

__all__ = [
    "ConversionRefused",
    "ConversionResult",
    "ConvertTarget",
    "collect_tensors",
    "convert_artifact",
    "default_output",
    "file_sha256",
    "scan_and_load",
    "select_entry",
    "write_converted",
]

logger = logging.getLogger(__name__)

ConvertTarget = Literal["safetensors", "skops"]
_SUFFIX: dict[str, str] = {"safetensors": ".safetensors", "skops": ".skops"}
_MAX_DEPTH = 32
_MAX_ENTRIES = 1_000_000


class ConversionRefused(BastionError):
    """The input did not scan clean, so it was not loaded (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_artifact` wrote and what it left out."""

    source: Path
    output: Path
    to: ConvertTarget
    sha256: str
    source_sha256: str
    tensors: int = 0
    dropped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    trusted_types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "source_sha256": self.source_sha256,
            "output": str(self.output),
            "format": self.to,
            "sha256": self.sha256,
            "tensors": self.tensors,
            "dropped": list(self.dropped),
            "notes": list(self.notes),
            "trusted_types": list(self.trusted_types),
        }


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def default_output(path: Path, to: ConvertTarget) -> Path:
    """``model.pt`` → ``model.safetensors``; ``model.joblib`` → ``model.skops``."""
    path = Path(path)
    return path.with_suffix(_SUFFIX[to]) if path.suffix else path.with_name(path.name + _SUFFIX[to])


def _unsupported_tensor(tensor: Any) -> str | None:
    import torch

    if tensor.layout != torch.strided:
        return f"{tensor.layout} layout"
    if tensor.is_quantized:
        return "quantized"
    if getattr(tensor, "is_nested", False):
        return "nested"
    if tensor.is_meta:
        return "meta (no data)"
    return None


def collect_tensors(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """Flatten the tensors in a (nested) dict/list structure.

    Returns
    -------
    (tensors, dropped)
        ``tensors`` maps dotted keys (``"encoder.0.weight"``, list items by index) to
        tensors; ``dropped`` describes each non-tensor leaf or unsupported tensor,
        e.g. ``"epoch (int)"``.

    >>> import torch
    >>> tensors, dropped = collect_tensors({"a": {"w": torch.zeros(1)}, "opt": [0.1]})
    >>> sorted(tensors), dropped
    (['a.w'], ['opt.0 (float)'])
    """
    import torch

    tensors: dict[str, Any] = {}
    dropped: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", obj, 0)]
    while stack:
        if len(tensors) + len(dropped) > _MAX_ENTRIES:
            raise UsageError(f"The object holds more than {_MAX_ENTRIES} entries; not converted.")
        key, value, depth = stack.pop()
        label = key or "(root)"
        if isinstance(value, torch.Tensor):
            reason = _unsupported_tensor(value)
            if reason is None:
                tensors[key or "tensor"] = value.detach()
            else:
                dropped.append(f"{label} ({reason} tensor)")
            continue
        if isinstance(value, Mapping | list | tuple):
            if id(value) in seen or depth >= _MAX_DEPTH:
                dropped.append(f"{label} (repeated or too deeply nested container)")
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            children = [(f"{key}.{k}" if key else str(k), v, depth + 1) for k, v in items]
            stack.extend(reversed(children))
            continue
        dropped.append(f"{label} ({type(value).__name__})")
    return tensors, dropped


def select_entry(obj: Any, select: str | None) -> Any:
    """The entry ``select`` (dotted keys) of a loaded checkpoint; ``obj`` when None."""
    if select is None:
        return obj
    current = obj
    for part in select.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            keys = sorted(map(str, current))[:10] if isinstance(current, Mapping) else []
            raise UsageError(
                f"The loaded object has no entry {select!r} (stopped at {part!r}); "
                f"top-level keys: {', '.join(keys) or 'none'}."
            )
    return current


def scan_and_load(path: Path, allow: Sequence[str] = ()) -> tuple[Any, str]:
    """Scan ``path`` and, only if it is clean, load it with the restricted unpickler.

    Returns the object and the SHA-256 the scan saw (the load is pinned to it).

    Raises
    ------
    ConversionRefused
        The scan found issues; nothing was loaded.
    """
    from bastion.artifacts import safe_load, scan_path

    report = scan_path(path, allow=list(allow))
    if not report.safe:
        issues = report.issues
        first = issues[0] if issues else None
        what = f": {first.message} ({first.location.describe()})" if first else ""
        raise ConversionRefused(
            f"{path} did not scan clean ({len(issues)} issue(s){what}); it was not loaded. "
            f"Run `bastion artifacts scan {path}` for the full report."
        )
    pinned = report.files[0].sha256
    return safe_load(path, expected_sha256=pinned, allow=list(allow)), pinned


def _canonicalize_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, so equal inputs give equal bytes.

    The ``safetensors`` writer emits the metadata map in hash order, which differs
    from run to run. The header is JSON; re-serialising it with sorted keys and the
    same separators yields the same length (it is padded with spaces to 8-byte
    alignment), so it is rewritten in place and the tensor offsets stay valid.
    """
    with path.open("r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        raw = handle.read(length)
        text = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
        encoded = text.encode("utf-8")
        if len(encoded) > length:  # pragma: no cover - the writer is already compact
            raise UsageError("The safetensors header could not be canonicalised.")
        handle.seek(8)
        handle.write(encoded + b" " * (length - len(encoded)))


def _write_safetensors(
    obj: Any, temp: Path, source_sha256: str
) -> tuple[int, list[str], list[str]]:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors, dropped = collect_tensors(obj)
    if not tensors:
        raise UsageError(
            "The loaded object holds no tensors to write as safetensors; for a "
            "scikit-learn model use --to skops."
        )
    notes: list[str] = []
    owners: dict[tuple[int, int], str] = {}
    shared = 0
    prepared: dict[str, Any] = {}
    for name, tensor in tensors.items():
        value = tensor.to("cpu")
        ptr = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        if ptr in owners and value.numel() > 0:
            shared += 1
            value = value.clone()
        owners.setdefault(ptr, name)
        prepared[name] = value.contiguous()
    if shared:
        notes.append(f"{shared} tensor(s) shared storage (tied weights); written as copies")
    metadata = {"format": "pt", "converted_by": "bastion", "source_sha256": source_sha256}
    save_file(prepared, str(temp), metadata=metadata)
    _canonicalize_header(temp)
    with safe_open(str(temp), framework="pt") as reread:
        if set(reread.keys()) != set(prepared):
            raise UsageError("The written safetensors file lost entries; nothing was kept.")
        for name, value in prepared.items():
            if not torch.equal(reread.get_tensor(name), value):
                raise UsageError(f"The tensor {name} did not read back equal; nothing was kept.")
    return len(prepared), dropped, notes


def _write_skops(obj: Any, temp: Path) -> list[str]:
    import zipfile

    import skops.io as sio

    try:
        # Deflated: skops stores arrays as raw .npy members, ~10x a compressed joblib.
        sio.dump(obj, temp, compression=zipfile.ZIP_DEFLATED)
        trusted = sio.get_untrusted_types(file=temp)
        loaded = sio.load(temp, trusted=trusted)
    except Exception as err:  # skops raises many types for objects it cannot store
        raise UsageError(f"skops could not store this {type(obj).__name__}: {err}") from None
    if type(loaded) is not type(obj):
        raise UsageError("The skops file did not read back as the same type; nothing was kept.")
    return list(trusted)


def convert_artifact(
    path: Path,
    *,
    to: ConvertTarget | None = None,
    output: Path | None = None,
    overwrite: bool = False,
    select: str | None = None,
    allow: Sequence[str] = (),
) -> ConversionResult:
    """Scan, safely load and rewrite ``path`` as safetensors or skops.

    Parameters
    ----------
    path
        A pickle-based model: a ``torch.save`` file, a pickle or a joblib dump.
    to
        ``"safetensors"`` or ``"skops"``; when None, safetensors if the object holds
        tensors, skops otherwise.
    output
        Where to write (default: next to ``path`` with the new suffix).
    overwrite
        Replace an existing output file.
    select
        A dotted key choosing part of a checkpoint, e.g. ``"model_state_dict"``.
    allow
        Reviewed allowlist exceptions (``module:qualname``) passed to the scanner and
        the loader alike.

    Raises
    ------
    ConversionRefused
        The scan found issues; the file was not loaded.
    UsageError
        Bad paths, nothing convertible, or a write that did not read back equal.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} is not a file; give the model file to convert.")
    obj, source_sha256 = scan_and_load(path, allow)
    obj = select_entry(obj, select)
    if to is None:
        to = "safetensors" if collect_tensors(obj)[0] else "skops"
    return write_converted(obj, path, source_sha256, to=to, output=output, overwrite=overwrite)


def write_converted(
    obj: Any,
    source: Path,
    source_sha256: str,
    *,
    to: ConvertTarget,
    output: Path | None = None,
    overwrite: bool = False,
) -> ConversionResult:
    """Write an object loaded by :func:`scan_and_load` as safetensors or skops.

    The second half of :func:`convert_artifact`, for callers that inspect the loaded
    object first (the remedy ``supply_chain.safe_reserialisation`` picks the state
    dict that fits its model). ``source`` and ``source_sha256`` are recorded; the
    output defaults to ``source`` with the new suffix.
    """
    path = Path(source)
    if to not in _SUFFIX:
        raise UsageError(f"Cannot convert to {to!r}; choose safetensors or skops.")
    target = Path(output) if output is not None else default_output(path, to)
    if target.resolve() == path.resolve():
        raise UsageError(f"The output {target} would overwrite the input; choose --output.")
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; pass --force to replace it.")
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tensors = 0
    dropped: list[str] = []
    notes: list[str] = []
    trusted: list[str] = []
    try:
        if to == "safetensors":
            tensors, dropped, notes = _write_safetensors(obj, temp, source_sha256)
        else:
            trusted = _write_skops(obj, temp)
        temp.replace(target)
    except OSError as err:
        raise UsageError(f"Cannot write {target}: {err.strerror}.") from None
    finally:
        temp.unlink(missing_ok=True)
    digest = file_sha256(target)
    logger.info("converted %s to %s (%s)", path, target, digest)
    return ConversionResult(
        path,
        target,
        to,
        digest,
        source_sha256,
        tensors,
        tuple(dropped),
        tuple(notes),
        tuple(trusted),
    )
