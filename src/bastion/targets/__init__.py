"""Targets: models behind one interface, with capabilities and query budgets."""

import importlib
from typing import Any

from bastion.targets.base import (
    Capability,
    SupportsEmbeddings,
    SupportsEndpoint,
    SupportsGradients,
    SupportsLogits,
    SupportsTraining,
    Target,
)
from bastion.targets.budget import QueryBudget
from bastion.targets.fake import FakeTarget
from bastion.targets.spec import InputSpec

# Adapters pull in torch, onnxruntime or httpx: import them only when first used.
_LAZY = {
    "TorchTarget": "bastion.targets.torch_target",
    "TrainOptions": "bastion.targets.torch_training",
    "SklearnTarget": "bastion.targets.sklearn_target",
    "OnnxTarget": "bastion.targets.onnx_target",
    "HttpTarget": "bastion.targets.http_target",
    "load_target": "bastion.targets.loading",
    "detect_format": "bastion.targets.loading",
    "infer_input_spec": "bastion.targets.loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bastion.targets' has no attribute {name!r}")


__all__ = [
    "Capability",
    "FakeTarget",
    "HttpTarget",
    "InputSpec",
    "OnnxTarget",
    "QueryBudget",
    "SklearnTarget",
    "SupportsEmbeddings",
    "SupportsEndpoint",
    "SupportsGradients",
    "SupportsLogits",
    "SupportsTraining",
    "Target",
    "TorchTarget",
    "TrainOptions",
    "detect_format",
    "infer_input_spec",
    "load_target",
]
