"""One entry point from a model file or URL to a :class:`~bastion.targets.base.Target`.

:func:`load_target` decides the adapter from the file's *content*, never its
extension:

=========================================================  ==========  ==============
content                                                    adapter     format
=========================================================  ==========  ==============
``http://`` or ``https://`` URL                            http        endpoint
zip with ``code/`` + ``constants.pkl`` + ``data.pkl``      torch       TorchScript
zip with ``archive_format`` / ``models/*.json``            torch       torch.export
zip with a top-level ``schema.json``                       sklearn     skops
protobuf starting with the ``ir_version`` field            onnx        ONNX
=========================================================  ==========  ==============

Formats that can only be opened by running code are refused with a message saying
how to convert them: Python pickles (including ``torch.save`` checkpoints and
joblib files). The one exception is asked for by name: with ``kind="sklearn"`` a
scikit-learn pickle or joblib file is loaded by :func:`bastion.artifacts.safe_load`
(a clean scan, then an unpickler that imports only what the scanner's allowlist
accepts; option ``allow`` adds reviewed exceptions). Files that carry weights but no
architecture (safetensors, HDF5) are refused with a pointer to the in-memory adapters.

Examples
--------
>>> import numpy as np
>>> from bastion.targets.loading import infer_input_spec
>>> spec = infer_input_spec(np.array([[1.0, 10.0], [3.0, 20.0]]), feature_names=["a", "b"])
>>> spec.lower, spec.upper
([1.0, 10.0], [3.0, 20.0])
>>> infer_input_spec(np.random.default_rng(0).random((5, 1, 8, 8))).upper
1.0
"""

from __future__ import annotations

import inspect
import logging
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import DataError, TargetError, UsageError
from bastion.targets.base import Target
from bastion.targets.spec import InputSpec
from bastion.targets.torch_archive import is_export_archive, is_torchscript_archive

__all__ = ["KINDS", "detect_format", "infer_input_spec", "load_target"]

log = logging.getLogger(__name__)

#: Adapter kinds :func:`load_target` can build, as registered under ``bastion.targets``.
KINDS = ("torch", "sklearn", "onnx", "http")

_SUPPORTED = (
    "TorchScript and torch.export archives (torch), skops files (sklearn), ONNX models "
    "(onnx) and http(s):// JSON endpoints (http)"
)
_FORMAT_KIND = {
    "torchscript": "torch",
    "torch.export": "torch",
    "skops": "sklearn",
    "onnx": "onnx",
    "http": "http",
}
_RESERVED = {"input_spec", "classes", "name", "query_budget"}


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto field 1 (ir_version, varint) is written first: tag 0x08, then a small int.
    return len(head) >= 4 and head[0] == 0x08 and 1 <= head[1] <= 0x20


def detect_format(source: str | Path) -> str:
    """The model format of a file or URL: one of ``torchscript``, ``torch.export``,
    ``skops``, ``onnx`` or ``http``.

    Raises
    ------
    TargetError
        If the file is missing or its format is unknown or unsafe; the message names
        the supported formats or how to convert.
    """
    if _is_url(source):
        return "http"
    path = Path(source)
    if not path.exists():
        raise TargetError(f"No model file at {path}; check the path.")
    if path.is_dir():
        raise TargetError(
            f"{path} is a folder, not a model file; give the path of the file itself."
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise TargetError(f"The model file {path} cannot be read ({err.strerror}).") from err
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                raw = [n for n in zf.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, OSError) as err:
            raise TargetError(
                f"{path} looks like a zip archive but is damaged ({err}); re-save the model."
            ) from err
        names = {n.split("/", 1)[1] for n in raw if "/" in n}
        if is_export_archive(names):
            return "torch.export"
        if is_torchscript_archive(names) and any(n.startswith("code/") for n in names):
            return "torchscript"
        if "schema.json" in raw:
            return "skops"
        if "data.pkl" in names:
            raise TargetError(
                f"{path} is a pickled torch.save checkpoint, which Bastion never unpickles; "
                "save the model with torch.export.save or torch.jit.save instead."
            )
    elif head[:1] == b"\x80" or head[:2] in (b"\x78\x9c", b"\x78\xda", b"\x1f\x8b"):
        raise TargetError(
            f"{path} looks like a Python pickle (or a compressed joblib file), which Bastion "
            "never loads unasked; save scikit-learn models with skops.io.dump (or `bastion "
            "artifacts convert`) and torch models with torch.export.save, or set kind "
            "'sklearn' to load a scikit-learn pickle through bastion.artifacts.safe_load."
        )
    elif head.startswith(b"\x89HDF"):
        raise TargetError(
            f"{path} is an HDF5 (Keras) file, which Bastion does not load; export the model "
            "to ONNX (for example with tf2onnx)."
        )
    elif len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30:
        raise TargetError(
            f"{path} is a safetensors file (weights without an architecture); build the "
            "module in Python and wrap it with TorchTarget, or export it with torch.export.save."
        )
    elif _looks_like_onnx(head):
        return "onnx"
    raise TargetError(f"The format of {path} is not one Bastion recognises; it loads {_SUPPORTED}.")


def _check_options(func: Callable[..., Any], options: Mapping[str, Any], kind: str) -> None:
    reserved = sorted(set(options) & _RESERVED)
    if reserved:
        raise UsageError(
            f"Pass {', '.join(reserved)} as argument(s) of load_target, not inside 'options'."
        )
    params = inspect.signature(func).parameters
    allowed = sorted(
        p
        for p, v in params.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in _RESERVED
    )
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(
            f"The {kind} adapter has no option(s) {', '.join(map(repr, unknown))}; its options "
            f"are {', '.join(allowed)}."
        )


def load_target(
    source: str | Path,
    *,
    kind: str | None = None,
    input_spec: InputSpec,
    classes: Sequence[str],
    name: str | None = None,
    query_budget: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Target:
    """Open a model file or endpoint as a target, detecting the adapter from content.

    Parameters
    ----------
    source : str or Path
        A model file or an ``http(s)://`` URL.
    kind : {"torch", "sklearn", "onnx", "http"} or None
        Force an adapter instead of detecting it.
    input_spec : InputSpec
        What one input row looks like (model files do not record bounds).
    classes : sequence of str
        Class names in output order.
    name : str or None
        Defaults to the file name or the URL's host.
    query_budget : int or None
    options : mapping or None
        Adapter-specific keyword options, e.g. ``{"device": "auto"}`` for torch,
        ``{"trusted": [...]}`` for skops, ``{"response_path": "outputs.probs"}`` for
        http. Unknown options are refused with the list of valid ones.

    Returns
    -------
    Target
        A local model has been run once on synthetic rows (not charged) to check that
        it accepts the input spec and returns one score per class.
    """
    from bastion.targets.http_target import HttpTarget
    from bastion.targets.onnx_target import OnnxTarget
    from bastion.targets.sklearn_target import SklearnTarget
    from bastion.targets.torch_target import TorchTarget

    if kind is not None and kind not in KINDS:
        raise UsageError(f"Unknown target kind {kind!r}; choose one of {', '.join(KINDS)}.")
    opts = dict(options or {})
    fmt: str | None = None
    if kind is None:
        fmt = detect_format(source)
        kind = _FORMAT_KIND[fmt]
    elif kind == "http" and not _is_url(source):
        raise UsageError(f"The http adapter needs an http(s):// URL; got {str(source)!r}.")
    elif _is_url(source) and kind != "http":
        raise UsageError(f"{source} is a URL; load it with kind='http' (or leave kind unset).")
    common: dict[str, Any] = {
        "input_spec": input_spec,
        "classes": classes,
        "name": name,
        "query_budget": query_budget,
    }
    target: Target
    if kind == "http":
        _check_options(HttpTarget.__init__, opts, kind)
        return HttpTarget(str(source), **common, **opts)
    path = Path(source)
    if kind == "torch":
        fmt = fmt or detect_format(path)
        if fmt not in ("torchscript", "torch.export"):
            raise TargetError(
                f"{path} is a {fmt} file, not a TorchScript or torch.export archive; drop "
                "kind='torch' or convert the model."
            )
        loader = TorchTarget.from_torchscript if fmt == "torchscript" else TorchTarget.from_export
        _check_options(loader, opts, kind)
        target = loader(path, **common, **opts)
    elif kind == "sklearn" and not _is_zip(path):
        _check_options(_sklearn_from_pickle, opts, kind)
        target = _sklearn_from_pickle(path, **common, **opts)
    elif kind == "sklearn":
        _check_options(SklearnTarget.from_skops, opts, kind)
        target = SklearnTarget.from_skops(path, **common, **opts)
    else:
        _check_options(OnnxTarget.__init__, opts, kind)
        target = OnnxTarget(path, **common, **opts)
    target.source_path = path
    target.verify()
    log.info("loaded %s target %r from %s", kind, target.name, path)
    return target


def _is_zip(path: Path) -> bool:
    """True for a zip (skops) or an unreadable path, which the skops loader reports."""
    try:
        with path.open("rb") as fh:
            return fh.read(2) == b"PK"
    except OSError:
        return True


def _sklearn_from_pickle(
    path: Path,
    *,
    input_spec: InputSpec,
    classes: Sequence[str],
    name: str | None = None,
    query_budget: int | None = None,
    allow: Sequence[str] = (),
) -> Target:
    """A scikit-learn pickle or joblib file, loaded only by :func:`~bastion.artifacts.safe_load`."""
    from bastion.artifacts import safe_load
    from bastion.targets.sklearn_target import SklearnTarget

    estimator = safe_load(path, allow=list(allow))  # scans first; refuses what is not clean
    target = SklearnTarget(
        estimator,
        input_spec=input_spec,
        classes=classes,
        name=name or path.name,
        query_budget=query_budget,
    )
    target.source = str(path)
    return target


def infer_input_spec(x: np.ndarray, feature_names: Sequence[str] | None = None) -> InputSpec:
    """A fallback :class:`InputSpec` read off sample data.

    Shape comes from the rows and dtype is float32. Bounds: image-like rows (two or
    more axes) inside ``[0, 1]`` get ``0..1``, integer-valued ones inside ``[0, 255]``
    get ``0..255``; other images get the observed global minimum and maximum, and
    tabular rows the observed minimum and maximum of each feature. Observed bounds
    only describe the sample: declare the real bounds when you know them, since probes
    craft inputs anywhere inside them.

    Raises
    ------
    DataError
        If ``x`` has no rows, is not numeric or finite, or ``feature_names`` does not
        match its width.
    """
    arr = np.asarray(x)
    if arr.ndim < 2 or len(arr) == 0:
        raise DataError(
            f"Inferring an input spec needs a batch of at least one row; got shape {arr.shape}."
        )
    if arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
        raise DataError("Inferring an input spec needs finite numbers; clean the data first.")
    shape = tuple(int(d) for d in arr.shape[1:])
    lo_all, hi_all = float(arr.min()), float(arr.max())
    lower: float | list[float]
    upper: float | list[float]
    if arr.ndim >= 3:
        if lo_all >= 0.0 and hi_all <= 1.0:
            lower, upper = 0.0, 1.0
        elif lo_all >= 0.0 and hi_all <= 255.0 and bool(np.all(np.mod(arr, 1) == 0)):
            lower, upper = 0.0, 255.0
        else:
            lower, upper = lo_all, hi_all
    else:
        lower = [float(v) for v in arr.min(axis=0)]
        upper = [float(v) for v in arr.max(axis=0)]
    names = None if feature_names is None else [str(n) for n in feature_names]
    if names is not None and len(names) != int(np.prod(shape)):
        raise DataError(
            f"{len(names)} feature names were given for rows of {int(np.prod(shape))} features; "
            "give one name per feature."
        )
    log.info(
        "Input bounds were inferred from %d sample rows; declare the model's real bounds in "
        "the input spec, since probes search the whole declared range.",
        len(arr),
    )
    return InputSpec(shape=shape, dtype="float32", lower=lower, upper=upper, feature_names=names)
