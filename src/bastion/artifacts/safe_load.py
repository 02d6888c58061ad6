"""``safe_load``: load a pickle-based artifact only if it is proven safe, and even then
through an unpickler that refuses every global the allowlist refuses.

The file is opened once. Its SHA-256, the scan and the load all read that one open
file (so a file swapped after the scan is not what gets loaded); the hash can be pinned
(``expected_sha256``, compared in constant time). The scan must find nothing; then the
loader's ``find_class`` asks the *same* :class:`~bastion.artifacts.allowlist.Allowlist`
object the scanner used, so scanning and loading can never disagree, and a refused
global raises :class:`RefusedGlobalError` naming it.

=====================  ===============================================================
format                 loader
=====================  ===============================================================
pickle                 :class:`RestrictedUnpickler` (Python's pure-Python unpickler)
joblib (any codec)     joblib's ``NumpyUnpickler`` with the restricted ``find_class``
torch.save (zip or     ``torch.load(pickle_module=...)`` with the restricted unpickler
legacy)
.npy / .npz            ``numpy.load(allow_pickle=False)``; object arrays through the
                       restricted unpickler
=====================  ===============================================================

Examples
--------
>>> import pickle, tempfile, pathlib
>>> from bastion.artifacts.safe_load import safe_load
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pkl"
>>> _ = path.write_bytes(pickle.dumps({"coef": [0.5, -1.0]}))
>>> safe_load(path)
{'coef': [0.5, -1.0]}
"""

from __future__ import annotations

import hmac
import io
import mmap
import os
import pickle
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST, Allowlist, resolve
from bastion.artifacts.context import ScanContext
from bastion.artifacts.issues import FileReport
from bastion.artifacts.limits import Limits
from bastion.artifacts.scanner import _scan_buffer
from bastion.errors import TargetError, UsageError

__all__ = [
    "RefusedGlobalError",
    "RestrictedUnpickler",
    "UnsafeArtifactError",
    "restricted_unpickler",
    "safe_load",
]


class RefusedGlobalError(TargetError, pickle.UnpicklingError):
    """The loader met a global the allowlist refuses; nothing was imported."""

    def __init__(self, module: str, name: str, reason: str) -> None:
        super().__init__(
            f"Refused to import {module}:{name} while loading ({reason}); if you reviewed "
            f"it and trust it, pass allow=['{module}:{name}']."
        )
        self.global_name = f"{module}:{name}"


class UnsafeArtifactError(TargetError):
    """The scan found something in the artifact; it was not loaded."""

    def __init__(self, message: str, report: FileReport) -> None:
        super().__init__(message)
        self.report = report


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Python's unpickler whose ``find_class`` enforces an :class:`Allowlist`."""

    allowlist: Allowlist = DEFAULT_ALLOWLIST

    def find_class(self, module: str, name: str) -> Any:
        proto, fix = getattr(self, "proto", 0), getattr(self, "fix_imports", True)
        mod, nm = resolve(module, name, proto, fix_imports=fix)
        decision = self.allowlist.check(mod, nm)
        if not decision.allowed:
            raise RefusedGlobalError(mod, nm, decision.reason)
        sys.audit("pickle.find_class", mod, nm)
        __import__(mod, level=0)
        return getattr(sys.modules[mod], nm)


def restricted_unpickler(allowlist: Allowlist) -> type[RestrictedUnpickler]:
    """A :class:`RestrictedUnpickler` subclass bound to ``allowlist``."""
    return type("BoundRestrictedUnpickler", (RestrictedUnpickler,), {"allowlist": allowlist})


def _joblib_load(fh: IO[bytes], name: str, allowlist: Allowlist) -> Any:
    from joblib import numpy_pickle

    class _Restricted(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        find_class = RestrictedUnpickler.find_class

    _Restricted.allowlist = allowlist  # type: ignore[attr-defined]
    with numpy_pickle._validate_fileobject_and_memmap(fh, name, None) as (fobj, _):
        unpickler = _Restricted(name, fobj, ensure_native_byte_order=True)
        return unpickler.load()


def _torch_load(fh: IO[bytes], allowlist: Allowlist) -> Any:
    import torch

    cls = restricted_unpickler(allowlist)

    def load(f: IO[bytes], **kwargs: Any) -> Any:
        return cls(f, **kwargs).load()

    module = types.SimpleNamespace(Unpickler=cls, load=load, __name__="bastion_restricted")
    return torch.load(fh, map_location="cpu", pickle_module=module, weights_only=False)


def _npy_load(data: bytes, allowlist: Allowlist) -> Any:
    import numpy as np
    from numpy.lib import format as npformat

    buf = io.BytesIO(data)
    version = npformat.read_magic(buf)
    read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
    shape, _, dtype = read(buf)
    if not dtype.hasobject:
        buf.seek(0)
        return np.load(buf, allow_pickle=False)
    array = restricted_unpickler(allowlist)(buf).load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise TargetError("An object array's pickle did not rebuild the declared array.")
    return array


def _npz_load(fh: IO[bytes], allowlist: Allowlist) -> dict[str, Any]:
    import zipfile

    out: dict[str, Any] = {}
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".npy"):
                out[info.filename[:-4]] = _npy_load(zf.read(info), allowlist)
    return out


def _dispatch(fh: IO[bytes], report: FileReport, name: str, allowlist: Allowlist) -> Any:
    formats = report.formats
    fh.seek(0)
    if "torch" in formats or "torch-legacy" in formats:
        return _torch_load(fh, allowlist)
    if formats[:1] == ["npy"]:
        return _npy_load(fh.read(), allowlist)
    if formats[:2] == ["zip", "npz"]:
        return _npz_load(fh, allowlist)
    joblib_like = any("NumpyArrayWrapper" in g for g in report.globals_seen)
    codecs = {"gzip", "bz2", "xz", "lzma", "zlib", "joblib-zfile", "lz4"}
    if formats and (formats[0] in codecs or (formats[0] == "pickle" and joblib_like)):
        return _joblib_load(fh, name, allowlist)
    if formats[:1] == ["pickle"]:
        return restricted_unpickler(allowlist)(fh).load()
    raise UsageError(
        f"{name} holds {' > '.join(formats) or 'unrecognised'} data, not a pickle-based "
        "artifact; open it with its own loader (safetensors.safe_open, onnx, h5py)."
    )


def safe_load(
    path: str | Path,
    *,
    allow: Iterable[str] = (),
    expected_sha256: str | None = None,
    allowlist: Allowlist | None = None,
    limits: Limits | None = None,
) -> Any:
    """Scan, then load, a pickle-based artifact with the scanner's own allowlist.

    Parameters
    ----------
    path : str or Path
    allow : iterable of str
        Reviewed exceptions, ``"module:qualname"`` each (the same as ``--allow``).
    expected_sha256 : str or None
        Refuse the file unless its SHA-256 (hex) is this one.
    allowlist : Allowlist or None
        Defaults to :data:`~bastion.artifacts.allowlist.DEFAULT_ALLOWLIST`.
    limits : Limits or None

    Raises
    ------
    UsageError
        If the file cannot be read or is not pickle-based.
    TargetError
        If the hash does not match (:class:`TargetError`), the scan found issues
        (:class:`UnsafeArtifactError`) or the loader met a refused global
        (:class:`RefusedGlobalError`).
    """
    al = (allowlist or DEFAULT_ALLOWLIST).extend(allow)
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as err:
        raise UsageError(f"{p} cannot be opened ({err.strerror or err}).") from err
    with fh:
        ctx = ScanContext(file=str(p), path=p, allowlist=al, limits=limits)
        try:
            if os.fstat(fh.fileno()).st_size == 0:
                raise UsageError(f"{p} is empty; there is nothing to load.")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                report = _scan_buffer(ctx, mapped)
        finally:
            ctx.close()
        if expected_sha256 is not None and not hmac.compare_digest(
            report.sha256, expected_sha256.strip().lower()
        ):
            raise TargetError(
                f"{p} has SHA-256 {report.sha256}, not the pinned {expected_sha256}; the file "
                "changed since it was approved, so it was not loaded."
            )
        if not report.safe:
            first = report.issues[0]
            raise UnsafeArtifactError(
                f"{p} was not loaded: the scan found {len(report.issues)} issue(s), first "
                f"{first.location.describe()}: {first.message}. Run `bastion artifacts scan "
                f"{p}` for all of them.",
                report,
            )
        return _dispatch(fh, report, str(p), al)
