"""Load a :class:`~bastion.data.Dataset` from a NumPy ``.npz`` archive or a CSV file.

Both loaders are strict: a file that cannot be turned into a clean, labelled,
finite, numeric dataset fails with a :class:`~bastion.errors.DataError` that says
what was wrong and where (which key, column or row). Nothing here can execute code
from the file: ``.npz`` archives are opened with ``allow_pickle=False`` and an
archive that holds Python objects is refused.

Accepted layouts
----------------
``.npz``
    Either ``x`` and ``y`` (split here, stratified and seeded) or ``x_train``,
    ``y_train``, ``x_test`` and ``y_test`` (used as they are). Optional string
    arrays ``classes`` and ``feature_names`` name the labels and features. Labels
    are integer class indices ``0..K-1`` or strings (mapped to the sorted unique
    values).
CSV
    A header row, one numeric column per feature and one label column; labels are
    strings or integers, mapped to indices in sorted order of their values.

Features are returned as ``float32`` in the file's own scale (the model's raw
input space); labels as ``int64``.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from bastion.data.loaders import load_dataset
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "toy.csv").write_text("a,b,kind\\n0,1,cat\\n1,0,dog\\n0,0,cat\\n1,1,dog\\n")
>>> ds = load_dataset(folder / "toy.csv", label="kind", test_size=0.5)
>>> list(ds.classes), list(ds.feature_names), len(ds.x_train), len(ds.x_test)
(['cat', 'dog'], ['a', 'b'], 2, 2)
>>> np.savez(folder / "toy.npz", x=np.eye(4, dtype=np.float32), y=np.array([0, 1, 0, 1]))
>>> load_dataset(folder / "toy.npz", test_size=0.5).n_classes
2
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.data.dataset import Dataset
from bastion.errors import DataError, UsageError

__all__ = ["load_csv", "load_dataset", "load_npz", "stratified_split"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
_MAX_REPORTED = 5  # how many offending positions an error message lists

PathLike = str | os.PathLike[str]


# -- shared helpers -----------------------------------------------------------------------
def _existing_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"Dataset file {str(p)!r} does not exist; check the path.")
    if not p.is_file():
        raise DataError(f"Dataset path {str(p)!r} is not a file; give the path of an npz or CSV.")
    if p.stat().st_size == 0:
        raise DataError(f"Dataset file {str(p)!r} is empty; write the data to it first.")
    return p


def _check_test_size(test_size: float) -> None:
    if isinstance(test_size, bool) or not isinstance(test_size, int | float):
        raise UsageError(f"test_size must be a number in (0, 1); got {test_size!r}.")
    if not 0.0 < float(test_size) < 1.0:
        raise UsageError(f"test_size must be a fraction in (0, 1), e.g. 0.25; got {test_size!r}.")


def stratified_split(
    y: np.ndarray, *, test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a deterministic stratified train/test split.

    Each class contributes ``test_size * n_c`` rows (rounded half up) to the test part, kept
    between 1 and ``n_c - 1`` when the class has two or more rows; a class with a
    single row goes to training. The same ``y``, ``test_size`` and ``seed`` always
    give the same split.

    Parameters
    ----------
    y : numpy.ndarray
        Integer labels, shape ``(n,)``.
    test_size : float
        Fraction of rows for the test part, in (0, 1).
    seed : int
        Seed of the shuffle within each class.

    Returns
    -------
    train_idx, test_idx : numpy.ndarray
        Sorted row indices, disjoint, together covering ``0..n-1``.

    Raises
    ------
    DataError
        If the split would leave the test part empty.

    Examples
    --------
    >>> import numpy as np
    >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), test_size=0.25)
    >>> len(tr), len(te), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[te].tolist())
    (6, 2, [0, 1])
    """
    _check_test_size(test_size)
    labels = np.asarray(y)
    rng = np.random.default_rng(seed)
    test_parts: list[np.ndarray] = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        n_c = len(members)
        if n_c < 2:
            continue
        k = min(max(math.floor(test_size * n_c + 0.5), 1), n_c - 1)
        test_parts.append(rng.permutation(members)[:k])
    if not test_parts:
        raise DataError(
            f"A stratified split of {len(labels)} row(s) leaves no test rows; every class "
            "needs at least two rows, so add data or give a separate test set."
        )
    test_idx = np.sort(np.concatenate(test_parts))
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx


def _labels_to_indices(
    raw: np.ndarray, *, where: str, classes: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    """Map raw labels (integers or strings) to ``0..K-1`` and return the class names."""
    if raw.dtype.kind in "US":
        values = raw.astype(str)
        if classes is not None:
            position = {str(c): i for i, c in enumerate(classes)}
            unknown = sorted(set(values.tolist()) - set(position))
            if unknown:
                raise DataError(
                    f"{where} has label(s) {unknown[:_MAX_REPORTED]} that are not in the given "
                    f"classes {list(classes)}; fix the labels or the class list."
                )
            return np.array([position[v] for v in values], dtype=np.int64), [
                str(c) for c in classes
            ]
        names, idx = np.unique(values, return_inverse=True)
        return idx.astype(np.int64).reshape(-1), [str(n) for n in names]
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            raise DataError(f"{where} has NaN or infinite labels; labels must be class indices.")
        if not np.equal(np.floor(raw), raw).all():
            raise DataError(
                f"{where} holds fractional values; labels must be integer class indices or "
                "strings, not regression targets."
            )
        raw = raw.astype(np.int64)
    if raw.dtype.kind not in "iub":
        raise DataError(
            f"{where} has dtype {raw.dtype}; labels must be integer class indices or strings."
        )
    ints = raw.astype(np.int64)
    if len(ints) and ints.min() < 0:
        raise DataError(
            f"{where} has negative labels (smallest {int(ints.min())}); labels must be class "
            "indices 0..K-1."
        )
    top = int(ints.max()) if len(ints) else 0
    if classes is None:
        return ints, [str(i) for i in range(top + 1)]
    if top >= len(classes):
        raise DataError(
            f"{where} has label {top} but only {len(classes)} class name(s) were given; "
            "give one name per class index."
        )
    return ints, [str(c) for c in classes]


def _check_features(
    x: np.ndarray, *, where: str, feature_names: Sequence[str] | None = None
) -> np.ndarray:
    """Numeric, at least 2-D, finite features as float32."""
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"{where} has dtype {x.dtype}; features must be numbers (bool, int or float)."
        )
    if x.ndim < 2:
        raise DataError(
            f"{where} has shape {x.shape}; features need a row axis and at least one feature "
            "axis, e.g. (n, d) or (n, 1, 28, 28)."
        )
    flat = x.reshape(len(x), -1)
    if flat.dtype.kind == "f":
        bad = ~np.isfinite(flat)
        if bad.any():
            cols = np.flatnonzero(bad.any(axis=0))
            rows = int(bad.any(axis=1).sum())
            names = (
                [feature_names[c] for c in cols[:_MAX_REPORTED]]
                if feature_names is not None
                else [f"feature {int(c)}" for c in cols[:_MAX_REPORTED]]
            )
            raise DataError(
                f"{where} has NaN or infinite values in {', '.join(map(str, names))}"
                f"{' and more' if len(cols) > _MAX_REPORTED else ''} ({rows} row(s)); "
                "clean or drop them first."
            )
    out = x.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{where} has values too large for float32; rescale the features.")
    return out


def _string_list(arr: np.ndarray | None, *, key: str) -> list[str] | None:
    if arr is None:
        return None
    if arr.dtype.kind not in "US" or arr.ndim != 1:
        raise DataError(
            f"The npz key {key!r} must be a 1-D array of strings; got shape {arr.shape} and "
            f"dtype {arr.dtype}."
        )
    return [str(v) for v in arr.tolist()]


# -- npz ----------------------------------------------------------------------------------
def _read_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        with p.open("rb") as fh:
            magic = fh.read(6)
    except OSError as err:
        raise DataError(f"Dataset file {str(p)!r} cannot be read ({err.strerror}).") from None
    if magic.startswith(_NPY_MAGIC):
        raise DataError(
            f"{str(p)!r} is a single .npy array; save features and labels together with "
            "numpy.savez(path, x=..., y=...)."
        )
    if not magic.startswith(_ZIP_MAGIC):
        raise DataError(f"{str(p)!r} is not an npz archive; save it with numpy.savez.")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    value = archive[key]
                except ValueError as err:
                    if "allow_pickle" in str(err) or "Object arrays" in str(err):
                        raise DataError(
                            f"The npz key {key!r} in {str(p)!r} holds Python objects, which "
                            "would need pickle to load and can run code; Bastion never unpickles"
                            " data, so save numeric and string arrays only."
                        ) from None
                    raise
                if not isinstance(value, np.ndarray):
                    raise DataError(
                        f"The member {key!r} of {str(p)!r} is not a NumPy array; save the "
                        "archive with numpy.savez."
                    )
                arrays[key] = value
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{str(p)!r} is not a readable npz archive ({err}).") from None
    return arrays


def load_npz(
    path: PathLike,
    *,
    name: str | None = None,
    classes: Sequence[str] | None = None,
    test_size: float = 0.25,
    seed: int = 0,
) -> Dataset:
    """Load a dataset from a NumPy ``.npz`` archive, never unpickling anything.

    Parameters
    ----------
    path : str or path-like
        The archive, with keys ``x`` and ``y`` or ``x_train``, ``y_train``,
        ``x_test`` and ``y_test`` (optionally ``classes`` and ``feature_names``).
    name : str or None
        Dataset name; defaults to the file name without its suffix.
    classes : sequence of str or None
        Class names for integer labels (label ``i`` is ``classes[i]``), or the
        allowed values and their order for string labels. Defaults to the archive's
        ``classes`` key, else ``"0".."K-1"`` (integers) or the sorted unique values
        (strings).
    test_size : float
        Test fraction for the stratified split of ``x``/``y``; ignored when the
        archive holds its own split.
    seed : int
        Seed of that split.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If the file is missing, empty, not an npz, holds object arrays, lacks the
        keys, or has mismatched, non-numeric or non-finite arrays.
    UsageError
        If ``test_size`` is not in (0, 1).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(f, x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
    ...          x_test=np.ones((2, 3)), y_test=np.array([1, 0]),
    ...          classes=np.array(["neg", "pos"]))
    >>> ds = load_npz(f)
    >>> ds.name, list(ds.classes), ds.x_test.dtype.name
    ('d', ['neg', 'pos'], 'float32')
    """
    _check_test_size(test_size)
    p = _existing_file(path)
    arrays = _read_npz(p)
    dataset_name = name if name is not None else p.stem
    feature_names = _string_list(arrays.get("feature_names"), key="feature_names")
    if classes is None:
        classes = _string_list(arrays.get("classes"), key="classes")
    keys = sorted(arrays)
    has_split = all(k in arrays for k in _SPLIT_KEYS)
    if not has_split and not ("x" in arrays and "y" in arrays):
        raise DataError(
            f"{str(p)!r} has keys {keys}; an npz dataset needs 'x' and 'y', or 'x_train', "
            "'y_train', 'x_test' and 'y_test'."
        )
    where = f"{str(p)!r}"
    parts = ("train", "test") if has_split else ("",)
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    for part in parts:
        xk, yk = (f"x_{part}", f"y_{part}") if part else ("x", "y")
        x, y = arrays[xk], arrays[yk]
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise DataError(
                f"{where}: {yk!r} has shape {y.shape}; labels must be 1-D class indices (not "
                "one-hot)."
            )
        if x.ndim == 0 or len(x) != len(y):
            raise DataError(
                f"{where}: {xk!r} has shape {x.shape} but {yk!r} has {len(y)} labels; the "
                "number of rows must match."
            )
        xs[part] = _check_features(x, where=f"{where} key {xk!r}", feature_names=feature_names)
        ys[part] = y
    if has_split:
        if xs["train"].shape[1:] != xs["test"].shape[1:]:
            raise DataError(
                f"{where}: train rows have shape {xs['train'].shape[1:]} but test rows "
                f"{xs['test'].shape[1:]}; both parts must have the same row shape."
            )
        # Map labels of both parts together so string labels share one class list.
        joint = np.concatenate([ys["train"], ys["test"]])
        labels, class_names = _labels_to_indices(joint, where=f"{where} labels", classes=classes)
        n_train = len(ys["train"])
        x_train, x_test = xs["train"], xs["test"]
        y_train, y_test = labels[:n_train], labels[n_train:]
    else:
        labels, class_names = _labels_to_indices(ys[""], where=f"{where} key 'y'", classes=classes)
        train_idx, test_idx = stratified_split(labels, test_size=test_size, seed=seed)
        x_train, x_test = xs[""][train_idx], xs[""][test_idx]
        y_train, y_test = labels[train_idx], labels[test_idx]
    if len(class_names) < 2:
        raise DataError(f"{where} has a single class; a classifier dataset needs two or more.")
    n_feat = int(np.prod(x_test.shape[1:]))
    if feature_names is not None and len(feature_names) != n_feat:
        raise DataError(
            f"{where}: 'feature_names' has {len(feature_names)} names but rows have {n_feat} "
            "features; give one name per feature."
        )
    return Dataset(
        name=dataset_name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=class_names,
        feature_names=feature_names,
        description=f"Loaded from {p.name}.",
        metadata={"source": str(p), "format": "npz", "split": "file" if has_split else "seeded"},
    )


# -- csv ----------------------------------------------------------------------------------
def _parse_float(cell: str, *, column: str, row: int) -> float:
    text = cell.strip()
    if text == "":
        raise DataError(
            f"Column {column!r} is empty in data row {row} (line {row + 1}); fill or drop "
            "missing values first."
        )
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"Column {column!r} has the non-numeric value {text[:40]!r} in data row {row} "
            f"(line {row + 1}); features must be numbers, so encode or drop that column."
        ) from None
    if math.isnan(value):
        raise DataError(
            f"Column {column!r} has NaN in data row {row} (line {row + 1}); clean or drop "
            "missing values first."
        )
    if math.isinf(value):
        raise DataError(
            f"Column {column!r} has an infinite value in data row {row} (line {row + 1}); "
            "clean it first."
        )
    return value


def _csv_labels(raw: list[str], *, label: str) -> tuple[np.ndarray, list[str]]:
    """String or integer labels to indices; class names are the sorted unique values."""
    for i, v in enumerate(raw, start=1):
        if v == "":
            raise DataError(
                f"Label column {label!r} is empty in data row {i} (line {i + 1}); every row "
                "needs a label."
            )
    try:
        ints = [int(v) for v in raw]
    except ValueError:
        names, idx = np.unique(np.array(raw), return_inverse=True)
        return idx.astype(np.int64).reshape(-1), [str(n) for n in names]
    uniq = sorted(set(ints))
    position = {v: i for i, v in enumerate(uniq)}
    return np.array([position[v] for v in ints], dtype=np.int64), [str(v) for v in uniq]


def load_csv(
    path: PathLike,
    *,
    label: str,
    name: str | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    feature_columns: Sequence[str] | None = None,
) -> Dataset:
    """Load a tabular dataset from a CSV file with a header row.

    Parameters
    ----------
    path : str or path-like
        Comma-separated file, UTF-8 (a byte-order mark is accepted).
    label : str
        Name of the label column. String labels and integer labels are both mapped
        to indices; the class names are the sorted unique values (integers sorted
        numerically).
    name : str or None
        Dataset name; defaults to the file name without its suffix.
    test_size : float
        Test fraction of the stratified, seeded split.
    seed : int
        Seed of the split.
    feature_columns : sequence of str or None
        Feature columns in the order the model expects; default every column but
        the label, in file order.

    Returns
    -------
    Dataset
        Features ``(n, d)`` as float32 and ``feature_names`` set.

    Raises
    ------
    DataError
        If the file is missing or empty, the label or a feature column is absent
        (the message lists the columns), a row has the wrong number of fields, or a
        feature cell is empty, NaN, infinite or not a number (the message names the
        column and the row).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "flows.csv"
    >>> _ = f.write_text("port,bytes,y\\n80,10,1\\n443,20,0\\n22,5,1\\n8080,7,0\\n")
    >>> ds = load_csv(f, label="y", feature_columns=["bytes"], test_size=0.5)
    >>> ds.row_shape, list(ds.classes)
    ((1,), ['0', '1'])
    """
    _check_test_size(test_size)
    p = _existing_file(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise DataError(
            f"{str(p)!r} is not UTF-8 text; if it is an npz archive use load_npz, otherwise "
            "re-save the CSV as UTF-8."
        ) from None
    except csv.Error as err:
        raise DataError(f"{str(p)!r} is not valid CSV ({err}).") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]  # skip blank lines
    if not rows:
        raise DataError(f"Dataset file {str(p)!r} has no rows; it needs a header and data.")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{str(p)!r} repeats the column name(s) {dupes}; rename them.")
    if label not in header:
        raise DataError(
            f"{str(p)!r} has no label column {label!r}; its columns are {header}. Pass one of "
            "them as label."
        )
    if feature_columns is None:
        features = [h for h in header if h != label]
    else:
        features = [str(c) for c in feature_columns]
        missing = [c for c in features if c not in header]
        if missing:
            raise DataError(
                f"{str(p)!r} has no feature column(s) {missing}; its columns are {header}."
            )
        if label in features:
            raise DataError(f"The label column {label!r} cannot also be a feature column.")
    if not features:
        raise DataError(f"{str(p)!r} has only the label column; it needs feature columns too.")
    if not body:
        raise DataError(f"{str(p)!r} has a header but no data rows.")
    col = {h: i for i, h in enumerate(header)}
    x = np.empty((len(body), len(features)), dtype=np.float64)
    raw_labels: list[str] = []
    for r, row in enumerate(body, start=1):
        if len(row) != len(header):
            raise DataError(
                f"Data row {r} of {str(p)!r} has {len(row)} field(s) but the header has "
                f"{len(header)}; fix that row."
            )
        for j, feat in enumerate(features):
            x[r - 1, j] = _parse_float(row[col[feat]], column=feat, row=r)
        raw_labels.append(row[col[label]].strip())
    y, class_names = _csv_labels(raw_labels, label=label)
    if len(class_names) < 2:
        raise DataError(
            f"Label column {label!r} has the single value {class_names[0]!r}; a classifier "
            "dataset needs two or more classes."
        )
    xf = _check_features(x, where=f"{str(p)!r}", feature_names=features)
    train_idx, test_idx = stratified_split(y, test_size=test_size, seed=seed)
    return Dataset(
        name=name if name is not None else p.stem,
        x_train=xf[train_idx],
        y_train=y[train_idx],
        x_test=xf[test_idx],
        y_test=y[test_idx],
        classes=class_names,
        feature_names=features,
        description=f"Loaded from {p.name} (label column {label!r}).",
        metadata={"source": str(p), "format": "csv", "label": label, "split": "seeded"},
    )


# -- dispatch -----------------------------------------------------------------------------
_NPZ_KW = frozenset({"name", "classes", "test_size", "seed"})
_CSV_KW = frozenset({"label", "name", "test_size", "seed", "feature_columns"})


def _only(kind: str, allowed: frozenset[str], kw: Mapping[str, Any]) -> None:
    extra = sorted(set(kw) - allowed)
    if extra:
        raise UsageError(
            f"Loading a {kind} dataset takes no option(s) {extra}; allowed: {sorted(allowed)}."
        )


def load_dataset(path: PathLike, **kw: Any) -> Dataset:
    """Load an npz or CSV dataset, choosing the loader from the file's content.

    A file that starts with the zip signature is read by :func:`load_npz`; anything
    else is read as CSV by :func:`load_csv`, which needs ``label=``. The file name's
    suffix is not trusted.

    Parameters
    ----------
    path : str or path-like
    **kw
        Options of the chosen loader.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If the file is missing, empty or unreadable (see the loaders).
    UsageError
        If an option does not belong to the detected format, or a CSV has no
        ``label``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "data.bin"
    >>> with f.open("wb") as fh:
    ...     np.savez(fh, x=np.arange(8.0).reshape(4, 2), y=np.array([0, 1, 1, 0]))
    >>> load_dataset(f, test_size=0.5).metadata["format"]
    'npz'
    """
    p = _existing_file(path)
    with p.open("rb") as fh:
        head = fh.read(6)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_NPY_MAGIC):
        _only("npz", _NPZ_KW, kw)
        return load_npz(p, **kw)
    _only("CSV", _CSV_KW, kw)
    if "label" not in kw:
        raise UsageError(
            f"{str(p)!r} is read as CSV, which needs label=<name of the label column>."
        )
    return load_csv(p, **kw)
