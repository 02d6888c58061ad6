"""Tests for bastion.data.loaders: npz and CSV datasets, good and bad files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from bastion.data.loaders import load_csv, load_dataset, load_npz, stratified_split
from bastion.errors import DataError, UsageError

# -- stratified_split ----------------------------------------------------------------------


def test_stratified_split_is_deterministic_disjoint_and_stratified() -> None:
    y = np.array([0] * 40 + [1] * 20 + [2] * 8)
    tr1, te1 = stratified_split(y, test_size=0.25, seed=3)
    tr2, te2 = stratified_split(y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(te1, te2)
    np.testing.assert_array_equal(tr1, tr2)
    assert set(tr1.tolist()).isdisjoint(te1.tolist())
    assert sorted([*tr1.tolist(), *te1.tolist()]) == list(range(len(y)))
    counts = np.bincount(y[te1], minlength=3)
    assert counts.tolist() == [10, 5, 2]
    _, te3 = stratified_split(y, test_size=0.25, seed=4)
    assert not np.array_equal(te1, te3)


def test_stratified_split_keeps_every_class_in_train_and_test() -> None:
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    tr, te = stratified_split(y, test_size=0.1, seed=0)
    assert set(y[te].tolist()) == {0, 1}
    assert set(y[tr].tolist()) == {0, 1}


def test_stratified_split_without_any_test_row_fails() -> None:
    with pytest.raises(DataError, match="no test rows"):
        stratified_split(np.array([0, 1, 2]), test_size=0.25)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, "0.2", True])
def test_bad_test_size_is_a_usage_error(bad: object) -> None:
    with pytest.raises(UsageError, match="test_size"):
        stratified_split(np.array([0, 0, 1, 1]), test_size=bad)  # type: ignore[arg-type]


# -- npz -----------------------------------------------------------------------------------


def _xy(n: int = 40, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), np.arange(n) % 2


def test_npz_with_x_y_is_split_stratified_and_deterministic(tmp_path: Path) -> None:
    x, y = _xy()
    f = tmp_path / "two.npz"
    np.savez(f, x=x, y=y)
    ds = load_npz(f, seed=1)
    assert ds.name == "two"
    assert len(ds.x_train) == 30 and len(ds.x_test) == 10
    assert ds.x_test.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert list(ds.classes) == ["0", "1"]
    assert np.bincount(ds.y_test).tolist() == [5, 5]
    again = load_npz(f, seed=1)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    # Rows keep their labels through the split.
    rows = {tuple(r.astype(np.float32).tolist()): int(lab) for r, lab in zip(x, y, strict=True)}
    for r, lab in zip(ds.x_test, ds.y_test, strict=True):
        assert rows[tuple(r.tolist())] == lab
    assert ds.metadata["split"] == "seeded"


def test_npz_with_own_split_and_names(tmp_path: Path) -> None:
    f = tmp_path / "split.npz"
    np.savez(
        f,
        x_train=np.zeros((6, 2, 2)),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=np.ones((3, 2, 2)),
        y_test=np.array([2, 1, 0]),
        feature_names=np.array(["a", "b", "c", "d"]),
    )
    ds = load_npz(f, name="custom", classes=["x", "y", "z"])
    assert ds.name == "custom"
    assert ds.row_shape == (2, 2)
    assert list(ds.classes) == ["x", "y", "z"]
    assert ds.feature_names == ["a", "b", "c", "d"]
    assert ds.y_test.tolist() == [2, 1, 0]
    assert ds.metadata["split"] == "file"


def test_npz_string_labels_map_to_sorted_classes(tmp_path: Path) -> None:
    f = tmp_path / "s.npz"
    np.savez(f, x=np.arange(16.0).reshape(8, 2), y=np.array(["dog", "cat"] * 4))
    ds = load_npz(f, test_size=0.5)
    assert list(ds.classes) == ["cat", "dog"]
    assert set(ds.y_train.tolist()) == {0, 1}


def test_npz_integral_float_labels_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "f.npz"
    np.savez(f, x=np.zeros((8, 2)), y=np.array([0.0, 1.0] * 4))
    assert load_npz(f).y_train.dtype == np.int64


def test_npz_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    f = tmp_path / "evil.npz"
    np.savez(f, x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match="pickle"):
        load_npz(f)


def test_npz_missing_keys_lists_keys(tmp_path: Path) -> None:
    f = tmp_path / "k.npz"
    np.savez(f, features=np.zeros((4, 2)), labels=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match=r"\['features', 'labels'\].*'x' and 'y'"):
        load_npz(f)


def test_npz_row_count_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "m.npz"
    np.savez(f, x=np.zeros((5, 2)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="number of rows must match"):
        load_npz(f)


def test_npz_train_test_shape_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "m.npz"
    np.savez(
        f,
        x_train=np.zeros((4, 2)),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.zeros((2, 3)),
        y_test=np.array([0, 1]),
    )
    with pytest.raises(DataError, match="same row shape"):
        load_npz(f)


def test_npz_nan_names_the_feature(tmp_path: Path) -> None:
    x, y = _xy()
    x[3, 2] = np.nan
    f = tmp_path / "nan.npz"
    np.savez(f, x=x, y=y)
    with pytest.raises(DataError, match="NaN or infinite values in feature 2"):
        load_npz(f)
    np.savez(f, x=x, y=y, feature_names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="NaN or infinite values in c"):
        load_npz(f)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]), "features must be numbers"),
        (np.zeros(4), np.array([0, 1, 0, 1]), "row axis"),
        (np.zeros((4, 2)), np.array([0.5, 1.0, 0.0, 1.0]), "fractional"),
        (np.zeros((4, 2)), np.array([0, -1, 0, 1]), "negative labels"),
        (np.zeros((4, 2)), np.eye(4, 2), "1-D class indices"),
        (np.zeros((4, 2)), np.array([0, 0, 0, 0]), "single class"),
        (np.zeros((4, 2), dtype=complex), np.array([0, 1, 0, 1]), "complex"),
    ],
)
def test_npz_bad_arrays(tmp_path: Path, x: np.ndarray, y: np.ndarray, message: str) -> None:
    f = tmp_path / "bad.npz"
    np.savez(f, x=x, y=y)
    with pytest.raises(DataError, match=message):
        load_npz(f)


def test_npz_label_beyond_given_classes(tmp_path: Path) -> None:
    f = tmp_path / "c.npz"
    np.savez(f, x=np.zeros((6, 2)), y=np.array([0, 1, 2, 0, 1, 2]))
    with pytest.raises(DataError, match="only 2 class name"):
        load_npz(f, classes=["a", "b"])


def test_npz_missing_empty_and_not_npz(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_npz(empty)
    text = tmp_path / "text.npz"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not an npz"):
        load_npz(text)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(DataError, match=r"single \.npy"):
        load_npz(npy)
    with pytest.raises(DataError, match="not a file"):
        load_npz(tmp_path)


def test_npz_corrupt_zip(tmp_path: Path) -> None:
    f = tmp_path / "broken.npz"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("x.npy", b"not an array")
    with pytest.raises(DataError, match="not a NumPy array"):
        load_npz(f)


# -- csv -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def _csv_text(n: int = 20) -> str:
    lines = ["age,income,city_code,label"]
    for i in range(n):
        lines.append(f"{20 + i},{1000.5 * i},{i % 3},{'yes' if i % 2 else 'no'}")
    return "\n".join(lines) + "\n"


def test_csv_string_labels_feature_names_and_split(tmp_path: Path) -> None:
    ds = load_csv(_write(tmp_path, _csv_text()), label="label", seed=2)
    assert ds.name == "d"
    assert list(ds.classes) == ["no", "yes"]
    assert ds.feature_names == ["age", "income", "city_code"]
    assert ds.x_test.shape == (6, 3) and ds.x_train.shape == (14, 3)
    assert ds.x_test.dtype == np.float32
    assert np.bincount(ds.y_test).tolist() == [3, 3]
    # First row by age: age 20 is 'no' (label 0) with income 0.
    all_x = np.concatenate([ds.x_train, ds.x_test])
    all_y = np.concatenate([ds.y_train, ds.y_test])
    row = int(np.flatnonzero(all_x[:, 0] == 20)[0])
    assert all_y[row] == 0 and all_x[row, 1] == 0.0


def test_csv_integer_labels_sorted_numerically(tmp_path: Path) -> None:
    text = "f,target\n" + "".join(f"{i},{[2, 10, 1][i % 3]}\n" for i in range(12))
    ds = load_csv(_write(tmp_path, text), label="target", name="nums")
    assert ds.name == "nums"
    assert list(ds.classes) == ["1", "2", "10"]
    all_x = np.concatenate([ds.x_train, ds.x_test])[:, 0]
    all_y = np.concatenate([ds.y_train, ds.y_test])
    assert all_y[int(np.flatnonzero(all_x == 1)[0])] == 2  # value 10 -> index 2


def test_csv_feature_columns_select_and_order(tmp_path: Path) -> None:
    ds = load_csv(_write(tmp_path, _csv_text()), label="label", feature_columns=["income", "age"])
    assert ds.feature_names == ["income", "age"]
    assert ds.row_shape == (2,)


def test_csv_bom_and_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "bom.csv"
    f.write_bytes(("\ufeff" + _csv_text(8) + "\n\n").encode("utf-8"))
    ds = load_csv(f, label="label")
    assert ds.feature_names is not None and ds.feature_names[0] == "age"
    assert len(ds.x_train) + len(ds.x_test) == 8


def test_csv_non_numeric_cell_names_column_and_row(tmp_path: Path) -> None:
    text = _csv_text(6).replace("22,2001.0", "22,lots")
    with pytest.raises(DataError, match=r"'income'.*'lots'.*data row 3 \(line 4\)"):
        load_csv(_write(tmp_path, text), label="label")


@pytest.mark.parametrize(("cell", "message"), [("nan", "NaN"), ("", "is empty"), ("inf", "inf")])
def test_csv_missing_values_name_the_column(tmp_path: Path, cell: str, message: str) -> None:
    text = _csv_text(6).replace("21,1000.5,", f"21,{cell},")
    with pytest.raises(DataError, match=f"'income'.*{message}|{message}.*'income'"):
        load_csv(_write(tmp_path, text), label="label")


def test_csv_missing_label_column_lists_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no label column 'class'.*\['age', 'income'"):
        load_csv(_write(tmp_path, _csv_text()), label="class")


def test_csv_unknown_feature_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no feature column\(s\) \['height'\]"):
        load_csv(_write(tmp_path, _csv_text()), label="label", feature_columns=["height"])
    with pytest.raises(DataError, match="cannot also be a feature"):
        load_csv(_write(tmp_path, _csv_text()), label="label", feature_columns=["label"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n", "no data rows"),
        ("\n\n", "no rows"),
        ("a,b,y\n1,2,0\n3,4\n", "has 2 field"),
        ("a,a,y\n1,2,0\n3,4,1\n", "repeats the column"),
        ("y\n0\n1\n", "only the label column"),
        ("a,y\n1,0\n2,0\n3,0\n", "single value"),
        ("a,y\n1,0\n2,\n3,1\n", "empty in data row 2"),
    ],
)
def test_csv_malformed(tmp_path: Path, text: str, message: str) -> None:
    label = "b" if text.startswith("a,b\n") else "y"
    with pytest.raises(DataError, match=message):
        load_csv(_write(tmp_path, text), label=label)


def test_csv_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_csv(tmp_path / "nope.csv", label="y")
    with pytest.raises(DataError, match="is empty"):
        load_csv(_write(tmp_path, ""), label="y")


def test_csv_non_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin.csv"
    f.write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_csv(f, label="y")


# -- dispatch ------------------------------------------------------------------------------


def test_load_dataset_dispatches_on_content_not_suffix(tmp_path: Path) -> None:
    npz_named_csv = tmp_path / "looks_like.csv"
    with npz_named_csv.open("wb") as fh:
        np.savez(fh, x=np.zeros((8, 2)), y=np.array([0, 1] * 4))
    assert load_dataset(npz_named_csv).metadata["format"] == "npz"
    csv_named_npz = _write(tmp_path, _csv_text(), name="looks_like.npz")
    ds = load_dataset(csv_named_npz, label="label", test_size=0.5, seed=1)
    assert ds.metadata["format"] == "csv" and len(ds.x_test) == 10


def test_load_dataset_option_errors(tmp_path: Path) -> None:
    f = _write(tmp_path, _csv_text())
    with pytest.raises(UsageError, match="needs label="):
        load_dataset(f)
    with pytest.raises(UsageError, match=r"no option\(s\) \['classes'\]"):
        load_dataset(f, label="label", classes=["a", "b"])
    g = tmp_path / "d.npz"
    np.savez(g, x=np.zeros((8, 2)), y=np.array([0, 1] * 4))
    with pytest.raises(UsageError, match=r"no option\(s\) \['label'\]"):
        load_dataset(g, label="y")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing")
