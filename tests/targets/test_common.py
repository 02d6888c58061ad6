from __future__ import annotations

import email.utils
import time

import numpy as np
import pytest

from bastion.errors import TargetError, UsageError
from bastion.targets import InputSpec
from bastion.targets._common import LabelMapper, looks_like_probabilities, synthetic_rows
from bastion.targets._http_util import get_path, retry_after_seconds, set_path


def test_label_mapper_prefers_names_then_indices():
    m = LabelMapper(["0", "1", "cat"])
    assert m.to_indices(["cat", "1", 0, np.int64(2), 1.0, b"cat"]).tolist() == [2, 1, 0, 2, 1, 2]
    for bad in ("dog", 3, -1, True, 1.5, None):
        with pytest.raises(TargetError, match="neither a class name"):
            m.index(bad)


def test_synthetic_rows_respect_bounds_and_shape():
    spec = InputSpec(shape=(2, 2), lower=[0, -1, 5, 0], upper=[1, 1, 10, 0])
    rows = synthetic_rows(spec, n=3)
    assert rows.shape == (3, 2, 2) and rows.dtype == np.float32
    spec.check(rows)
    unbounded = synthetic_rows(InputSpec(shape=(3,)))
    assert np.isfinite(unbounded).all()


def test_probability_heuristic():
    assert looks_like_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
    assert not looks_like_probabilities(np.array([[2.0, -1.0]]))
    assert not looks_like_probabilities(np.array([[0.2, 0.2]]))


def test_json_paths():
    doc: dict = {"meta": "x"}
    set_path(doc, "a.b", [1])
    assert doc == {"meta": "x", "a": {"b": [1]}}
    assert get_path({"r": [[1, 2], [3, 4]]}, "r.-1") == [3, 4]
    with pytest.raises(TargetError, match="no 'z'"):
        get_path(doc, "a.z")
    with pytest.raises(UsageError, match="non-object"):
        set_path(doc, "meta.inner", 1)


def test_retry_after_numbers_dates_and_caps():
    assert retry_after_seconds("3", 10) == 3.0
    assert retry_after_seconds("300", 10) == 10.0
    assert retry_after_seconds(None, 10) is None
    assert retry_after_seconds("soon", 10) is None
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= (retry_after_seconds(future, 10) or 0) <= 5.0
