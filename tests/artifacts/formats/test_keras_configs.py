"""Keras config rules on hand-written configs (Keras 2 / tf.keras spellings; no Keras needed)."""

from __future__ import annotations

from typing import Any

from bastion.artifacts import Category
from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST
from bastion.artifacts.context import ScanContext
from bastion.artifacts.formats.keras_config import scan_config


def _issues(config: Any, allow: tuple[str, ...] = ()) -> list[tuple[Category, str | None]]:
    ctx = ScanContext(file="m.h5", allowlist=DEFAULT_ALLOWLIST.extend(allow))
    scan_config(ctx, config, (), "model_config")
    return [(i.category, i.global_name) for i in ctx.report.issues]


def _layer(class_name: str, **config: Any) -> dict[str, Any]:
    return {"class_name": class_name, "config": {"name": "x", **config}}


def _model(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"layers": list(layers)}}


def test_a_tf_keras_model_with_its_own_optimizer_passes() -> None:
    training = {
        "optimizer_config": {"class_name": "Custom>Adam", "config": {"learning_rate": 0.001}},
        "loss": {"class_name": "SparseCategoricalCrossentropy", "config": {}},
    }
    shape = {"class_name": "__tuple__", "items": [None, 4]}
    model = _model(
        _layer("InputLayer", batch_input_shape=shape),
        _layer("Conv2D", kernel_initializer=_layer("GlorotUniform")),
        _layer("CuDNNLSTM"),
        _layer("Dense", dtype=_layer("Policy")),
    )
    assert _issues([model, training]) == []


def test_custom_and_unknown_legacy_classes_are_unknown_globals() -> None:
    model = _model(_layer("Custom>Evil"), _layer("mypkg>Block"), _layer("Plus"))
    assert _issues(model) == [
        (Category.UNKNOWN_GLOBAL, "custom_objects:Plus"),
        (Category.UNKNOWN_GLOBAL, "mypkg:Block"),
        (Category.UNKNOWN_GLOBAL, "Custom:Evil"),
    ]
    assert _issues(model, allow=("custom_objects:Plus", "mypkg:Block", "Custom:Evil")) == []


def test_functions_are_looked_up_by_name_unless_they_name_a_module() -> None:
    def fn(module: str, name: str, registered: str | None = None) -> dict[str, Any]:
        return {"module": module, "class_name": "function", "config": name,
                "registered_name": registered or "function"}  # fmt: skip

    assert _issues([fn("builtins", "relu"), fn("keras.losses", "mean_squared_error")]) == []
    assert _issues(fn("os", "system")) == [(Category.CODE_EXECUTION, "os:system")]
    assert _issues(fn("builtins", "my_loss", "mypkg>my_loss")) == [
        (Category.UNKNOWN_GLOBAL, "mypkg:my_loss")
    ]


def test_layers_that_load_more_than_their_config() -> None:
    assert _issues(_layer("TFSMLayer", filepath="/models/saved")) == [
        (Category.CODE_EXECUTION, "keras.layers:TFSMLayer")
    ]
    assert _issues(_layer("StringLookup", vocabulary="/etc/passwd")) == [
        (Category.FILE_OR_NETWORK, "keras.layers:StringLookup")
    ]
    assert _issues(_layer("StringLookup", vocabulary=["a", "b"])) == []
