"""Keras 3 files written by Keras itself (torch backend) against the scanner's rules.

Each file is exported once per module: a plain model (must pass), a Lambda layer
(code execution), a custom layer from another module and a registered custom object
(unknown globals), a ``TorchModuleWrapper`` (a pickled torch module inside the config),
each in the native ``.keras`` zip and the legacy HDF5 format. Skipped without Keras.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.artifacts import Category, scan_paths

os.environ.setdefault("KERAS_BACKEND", "torch")
keras: Any = pytest.importorskip(
    "keras", reason="Keras 3 is not installed (pip install keras; the dev extra has it)"
)
pytest.importorskip("h5py", reason="h5py is not installed; Keras needs it to save models")

_MODULE = """
import keras


class Plus(keras.layers.Layer):
    def call(self, x):
        return x + 1
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    import logging

    if keras.backend.backend() != "torch":
        pytest.skip("these tests export with Keras's torch backend (KERAS_BACKEND=torch)")
    import torch

    folder = tmp_path_factory.mktemp("keras")
    (folder / "bastion_test_layers.py").write_text(textwrap.dedent(_MODULE))
    sys.path.insert(0, str(folder))
    logging.getLogger("absl").setLevel(logging.ERROR)  # Keras warns that HDF5 is legacy
    try:
        from bastion_test_layers import Plus  # type: ignore[import-not-found]

        @keras.saving.register_keras_serializable(package="bastion_test")
        class Shift(keras.layers.Layer):  # type: ignore[misc]
            def call(self, x: Any) -> Any:
                return x - 1

        layers = keras.layers
        models = {
            "plain": [
                layers.Dense(8, activation=keras.activations.relu),
                layers.BatchNormalization(),
                layers.Dropout(0.1),
                layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.L2()),
            ],
            "lambda": [layers.Lambda(lambda x: x * 2), layers.Dense(3)],
            "module": [Plus(), layers.Dense(3)],
            "registered": [Shift(), layers.Dense(3)],
        }
        out: dict[str, Path] = {}
        for name, stack in models.items():
            model = keras.Sequential([keras.Input((4,)), *stack])
            if name == "plain":
                model.compile(
                    optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.sparse_categorical_crossentropy,  # a "function" object
                    metrics=["accuracy"],
                )
            for suffix in ("keras", "h5"):
                out[f"{name}.{suffix}"] = folder / f"{name}.{suffix}"
                model.save(out[f"{name}.{suffix}"])
        wrapped = keras.Sequential(
            [keras.Input((4,)), layers.TorchModuleWrapper(torch.nn.Linear(4, 3))]
        )
        out["torch_module.keras"] = folder / "torch_module.keras"
        wrapped.save(out["torch_module.keras"])
        yield out
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("bastion_test_layers", None)


def _issues(path: Path, allow: tuple[str, ...] = ()) -> list[tuple[Category, str | None]]:
    report = scan_paths([path], allow=allow).files[0]
    return [(i.category, i.global_name) for i in report.issues]


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_a_plain_compiled_model_passes(files: dict[str, Path], suffix: str) -> None:
    report = scan_paths([files[f"plain.{suffix}"]]).files[0]
    assert report.safe, report.issues
    assert "keras-config" in report.formats and not report.pickle_based


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_a_lambda_layer_is_code_execution(files: dict[str, Path], suffix: str) -> None:
    issues = _issues(files[f"lambda.{suffix}"])
    assert issues and all(c is Category.CODE_EXECUTION for c, _ in issues)
    assert any(name is not None and name.endswith(":Lambda") for _, name in issues)


def test_a_layer_from_another_module_is_an_unknown_global(files: dict[str, Path]) -> None:
    assert _issues(files["module.keras"]) == [(Category.UNKNOWN_GLOBAL, "bastion_test_layers:Plus")]
    # The legacy format drops the module; the bare class name is not one Keras defines.
    assert _issues(files["module.h5"]) == [(Category.UNKNOWN_GLOBAL, "custom_objects:Plus")]
    assert _issues(files["module.h5"], allow=("custom_objects:Plus",)) == []


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_a_registered_custom_object_is_an_unknown_global(
    files: dict[str, Path], suffix: str
) -> None:
    path = files[f"registered.{suffix}"]
    [(category, name)] = _issues(path)
    # .keras names the defining module, legacy HDF5 the registration "bastion_test>Shift".
    assert category is Category.UNKNOWN_GLOBAL and name is not None
    assert name == (f"{__name__}:Shift" if suffix == "keras" else "bastion_test:Shift")
    report = scan_paths([path], allow=[name]).files[0]
    assert report.safe and report.allowed_by_user == [name]


def test_a_torch_module_wrapper_is_code_execution(files: dict[str, Path]) -> None:
    assert _issues(files["torch_module.keras"]) == [
        (Category.CODE_EXECUTION, "keras.layers:TorchModuleWrapper")
    ]


def test_keras_itself_refuses_what_the_scanner_calls_code(files: dict[str, Path]) -> None:
    """Agreement with the loader: safe_mode refuses the two code-carrying files."""
    for name in ("lambda.keras", "torch_module.keras"):
        with pytest.raises(ValueError, match="arbitrary code execution"):
            keras.saving.load_model(files[name])
    assert keras.saving.load_model(files["plain.keras"]) is not None
