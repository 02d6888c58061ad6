from __future__ import annotations

import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from bastion.errors import DataError, MissingCapabilityError, QueryBudgetExceeded, TargetError
from bastion.targets import Capability, InputSpec
from bastion.targets.sklearn_target import SklearnTarget

from .conftest import tabular_spec

CLASSES = ["malignant", "benign"]


@pytest.fixture(scope="module")
def pipeline(cancer):
    x, y, _ = cancer
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))]).fit(
        x, y
    )


def test_pipeline_probabilities_match_the_estimator(pipeline, cancer):
    x, y, names = cancer
    t = SklearnTarget(pipeline, input_spec=tabular_spec(x, names), classes=CLASSES)
    assert t.capabilities == {Capability.LABELS, Capability.PROBABILITIES, Capability.TRAINING}
    np.testing.assert_allclose(t.predict_proba(x[:20]), pipeline.predict_proba(x[:20]))
    assert (t.predict(x) == y).mean() > 0.95
    assert t.queries_used == 20 + len(x)


def test_string_classes_are_mapped_by_name():
    x = np.array([[0.0], [0.1], [0.9], [1.0]], dtype=np.float32)
    est = LogisticRegression().fit(x, ["low", "low", "high", "high"])  # classes_: high, low
    spec = InputSpec(shape=(1,), lower=0.0, upper=1.0)
    t = SklearnTarget(est, input_spec=spec, classes=["low", "high"])
    assert t.column_index_.tolist() == [1, 0]
    proba = t.predict_proba(np.array([[1.0]], dtype=np.float32))
    assert proba[0, 1] > 0.5  # "high" is Bastion class 1
    with pytest.raises(TargetError, match="neither a class name"):
        SklearnTarget(est, input_spec=spec, classes=["up", "down"])


def test_a_class_the_model_never_saw_gets_probability_zero():
    x = np.array([[0.0], [1.0]], dtype=np.float32)
    est = LogisticRegression().fit(x, [0, 2])
    t = SklearnTarget(est, input_spec=InputSpec(shape=(1,)), classes=["a", "b", "c"])
    proba = t.predict_proba(x)
    assert proba.shape == (2, 3) and (proba[:, 1] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_decision_function_only_gives_labels_and_logits(cancer):
    x, y, _ = cancer
    svm = Pipeline([("s", StandardScaler()), ("svm", LinearSVC())]).fit(x, y)
    t = SklearnTarget(svm, input_spec=tabular_spec(x), classes=CLASSES)
    assert t.capabilities == {Capability.LABELS, Capability.LOGITS, Capability.TRAINING}
    logits = t.logits(x[:10])
    margin = svm.decision_function(x[:10])
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], margin)
    np.testing.assert_array_equal(t.predict(x[:10]), svm.predict(x[:10]))
    with pytest.raises(MissingCapabilityError, match="probabilities"):
        t.predict_proba(x[:1])


class OnlyPredict(ClassifierMixin, BaseEstimator):
    """A label-only classifier: predicts 1 when the first feature is above a threshold."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def fit(self, x: np.ndarray, y: np.ndarray) -> OnlyPredict:
        self.classes_ = np.unique(y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(x)[:, 0] > self.threshold, 1, 0)


def test_label_only_estimator():
    est = OnlyPredict().fit(np.zeros((2, 2)), np.array([0, 1]))
    t = SklearnTarget(est, input_spec=InputSpec(shape=(2,)), classes=["no", "yes"])
    assert t.capabilities == {Capability.LABELS, Capability.TRAINING}
    x = np.array([[0.9, 0.0], [0.1, 0.0]], dtype=np.float32)
    assert t.predict(x).tolist() == [1, 0]
    assert t.queries_used == 2
    with pytest.raises(MissingCapabilityError):
        t.predict_proba(x)


def test_unfitted_or_non_classifier_is_refused():
    with pytest.raises(TargetError, match="not fitted"):
        SklearnTarget(LogisticRegression(), input_spec=InputSpec(shape=(2,)), classes=["a", "b"])
    with pytest.raises(TargetError, match="no predict method"):
        SklearnTarget(StandardScaler(), input_spec=InputSpec(shape=(2,)), classes=["a", "b"])


def test_feature_count_mismatch_is_a_target_error(pipeline):
    t = SklearnTarget(pipeline, input_spec=InputSpec(shape=(5,)), classes=CLASSES)
    with pytest.raises(TargetError, match="5 features"):
        t.verify()


def test_budget_counts_every_entry_point(pipeline, cancer):
    x, _, _ = cancer
    t = SklearnTarget(pipeline, input_spec=tabular_spec(x), classes=CLASSES, query_budget=30)
    t.predict(x[:10])
    t.predict_proba(x[:20])
    with pytest.raises(QueryBudgetExceeded):
        t.predict(x[:1])


def test_train_copy_clones_fits_and_seeds(cancer):
    x, y, _ = cancer
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    t = SklearnTarget(forest, input_spec=tabular_spec(x), classes=CLASSES, query_budget=1)
    a = t.train_copy(x[:300], y[:300], seed=5)
    b = t.train_copy(x[:300], y[:300], seed=5)
    assert a.estimator is not forest and a.estimator.random_state == 5
    np.testing.assert_array_equal(a.predict_proba(x[300:]), b.predict_proba(x[300:]))
    assert t.queries_used == 0
    with pytest.raises(DataError, match="integer label"):
        t.train_copy(x[:3], np.array([0.5, 1.0, 0.0]), seed=0)


# -- skops files ------------------------------------------------------------------------
def test_skops_round_trip(pipeline, cancer, tmp_path):
    x, _, names = cancer
    path = tmp_path / "model.skops"
    skops.io.dump(pipeline, path)
    t = SklearnTarget.from_skops(path, input_spec=tabular_spec(x, names), classes=CLASSES)
    np.testing.assert_allclose(t.predict_proba(x), pipeline.predict_proba(x))
    assert t.name == "model.skops" and t.describe()["source"] == str(path)


def test_skops_refuses_untrusted_types_until_named(cancer, tmp_path):
    x, y, _ = cancer
    hgb = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
    path = tmp_path / "hgb.skops"
    skops.io.dump(hgb, path)
    untrusted = skops.io.get_untrusted_types(file=path)
    assert untrusted
    with pytest.raises(TargetError, match=r"not trusted by default: .*TreePredictor.*trusted="):
        SklearnTarget.from_skops(path, input_spec=tabular_spec(x), classes=CLASSES)
    t = SklearnTarget.from_skops(
        path, input_spec=tabular_spec(x), classes=CLASSES, trusted=untrusted
    )
    np.testing.assert_allclose(t.predict_proba(x[:5]), hgb.predict_proba(x[:5]))


def test_skops_missing_and_corrupt_files(tmp_path):
    spec = InputSpec(shape=(2,))
    with pytest.raises(TargetError, match="No model file at"):
        SklearnTarget.from_skops(tmp_path / "none.skops", input_spec=spec, classes=CLASSES)
    bad = tmp_path / "bad.skops"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(TargetError, match="not a readable skops file"):
        SklearnTarget.from_skops(bad, input_spec=spec, classes=CLASSES)
