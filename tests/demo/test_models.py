from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from bastion.data.demo import load_breast_cancer_dataset, load_digits_dataset
from bastion.demo import (
    DEMO_MODELS,
    MANIFEST,
    load_demo_models,
    save_demo_models,
    train_breast_cancer_model,
    train_digits_cnn,
)
from bastion.errors import DataError, TargetError
from bastion.targets import Capability
from bastion.targets.loading import load_target
from bastion.targets.sklearn_target import SklearnTarget
from bastion.targets.spec import InputSpec
from bastion.targets.torch_target import TorchTarget


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


@pytest.fixture(scope="module")
def cancer():
    return load_breast_cancer_dataset()


@pytest.fixture(scope="module")
def cnn(digits):
    return train_digits_cnn(digits)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits, cancer):
    folder = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    paths = save_demo_models(folder, digits=digits, breast_cancer=cancer)
    return folder, paths, time.perf_counter() - start


def accuracy(target, data) -> float:
    return float((target.predict(data.x_test) == data.y_test).mean())


def test_digits_cnn_is_accurate_and_white_box(cnn, digits):
    assert isinstance(cnn, TorchTarget)
    assert accuracy(cnn, digits) >= 0.95
    assert cnn.input_spec.shape == (1, 8, 8)
    assert (cnn.input_spec.lower, cnn.input_spec.upper) == (0.0, 1.0)
    assert cnn.classes == tuple(str(i) for i in range(10))
    assert {Capability.GRADIENTS, Capability.EMBEDDINGS, Capability.TRAINING} <= cnn.capabilities
    assert cnn.embeddings(digits.x_test[:4]).shape == (4, 64)


def test_digits_cnn_training_is_deterministic(cnn, digits):
    again = train_digits_cnn(digits, seed=0)
    for name, tensor in cnn.module.state_dict().items():
        assert torch.equal(tensor, again.module.state_dict()[name]), name


def test_digits_cnn_train_copy_builds_a_fresh_model(cnn, digits):
    copy = cnn.train_copy(digits.x_train[:400], digits.y_train[:400], seed=1)
    assert copy.module is not cnn.module and accuracy(copy, digits) > 0.8


def test_breast_cancer_pipeline(cancer):
    t = train_breast_cancer_model(cancer)
    assert isinstance(t, SklearnTarget)
    assert accuracy(t, cancer) >= 0.95
    assert t.input_spec.feature_names == list(cancer.feature_names)
    lo, hi = t.input_spec.bounds()
    np.testing.assert_allclose(lo, np.minimum(cancer.x_train.min(0), cancer.x_test.min(0)))
    np.testing.assert_allclose(hi, np.maximum(cancer.x_train.max(0), cancer.x_test.max(0)))
    assert t.capabilities == {Capability.LABELS, Capability.PROBABILITIES, Capability.TRAINING}
    steps = [name for name, _ in t.estimator.steps]
    assert steps == ["scale", "classify"]  # scaling lives inside the model
    copy = t.train_copy(cancer.x_train, cancer.y_train, seed=3)
    assert accuracy(copy, cancer) >= 0.95


def test_wrong_datasets_are_refused(digits, cancer):
    with pytest.raises(DataError, match=r"\(1, 8, 8\)"):
        train_digits_cnn(cancer)
    with pytest.raises(DataError, match="tabular"):
        train_breast_cancer_model(digits)


def test_saved_models_round_trip_through_load_target(saved, cnn, digits, cancer):
    folder, paths, _ = saved
    assert set(paths) == set(DEMO_MODELS) and all(p.exists() for p in paths.values())
    manifest = json.loads((folder / MANIFEST).read_text())
    entry = manifest["digits_cnn"]
    loaded = load_target(
        paths["digits_cnn"],
        input_spec=InputSpec.model_validate(entry["input_spec"]),
        classes=entry["classes"],
    )
    assert isinstance(loaded, TorchTarget) and loaded.format == "torchscript"
    np.testing.assert_allclose(
        loaded.predict_proba(digits.x_test), cnn.predict_proba(digits.x_test), atol=1e-6
    )
    tab = load_target(
        paths["breast_cancer"],
        input_spec=InputSpec.model_validate(manifest["breast_cancer"]["input_spec"]),
        classes=manifest["breast_cancer"]["classes"],
    )
    original = train_breast_cancer_model(cancer)
    np.testing.assert_allclose(
        tab.predict_proba(cancer.x_test), original.predict_proba(cancer.x_test)
    )


def test_load_demo_models_restores_specs_and_options(saved, cnn, digits):
    folder, _, _ = saved
    targets = load_demo_models(folder, query_budget=50)
    assert set(targets) == {"digits_cnn", "breast_cancer"}
    t = targets["digits_cnn"]
    assert t.input_spec == cnn.input_spec and t.budget.limit == 50
    assert Capability.EMBEDDINGS in t.capabilities
    np.testing.assert_allclose(
        t.embeddings(digits.x_test[:5]), cnn.embeddings(digits.x_test[:5]), atol=1e-5
    )
    assert targets["breast_cancer"].input_spec.feature_names is not None


def test_saving_is_fast(saved):
    _, _, seconds = saved
    assert seconds < 20


def test_missing_manifest(tmp_path):
    with pytest.raises(TargetError, match="save_demo_models first"):
        load_demo_models(tmp_path)
