"""Keras model configs (``.keras`` ``config.json``, HDF5 ``model_config``), checked.

A Keras config names the classes to build. Loading one imports each ``module`` it
names and, for ``Lambda`` layers, rebuilds Python functions from marshalled bytecode
(Keras 2 and ``tf.keras`` did so by default; Keras 3 only outside ``safe_mode``). So:

* a ``Lambda`` layer (or any ``__lambda__`` / ``function`` object) is ``code_execution``;
* a ``module`` outside ``keras`` (and ``registered_name`` of a custom package) is an
  unknown global, classified like a pickle global (``os`` is code execution).

Examples
--------
>>> import json
>>> from bastion.artifacts.context import ScanContext
>>> cfg = {"class_name": "Sequential", "config": {"layers": [
...     {"class_name": "Lambda", "module": "keras.layers",
...      "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEA"}}}}]}}
>>> ctx = ScanContext(file="m.keras")
>>> scan_config_bytes(ctx, json.dumps(cfg).encode(), (), "config.json")
>>> [(i.category.value, i.global_name) for i in ctx.report.issues]
[('code_execution', 'keras.layers:Lambda'), ('code_execution', 'keras:__lambda__')]
"""

from __future__ import annotations

import json
from typing import Any

from bastion.artifacts.allow_data import classify
from bastion.artifacts.context import ScanContext
from bastion.artifacts.issues import Category

__all__ = ["scan_config", "scan_config_bytes"]

_KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
_CODE_CLASSES = {"Lambda", "__lambda__", "function", "TFOpLambda", "SlicingOpLambda"}
_MAX_NODES = 1_000_000


def _keras(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _KERAS_MODULES)


def scan_config_bytes(ctx: ScanContext, data: bytes, member: tuple[str, ...], what: str) -> None:
    """Parse a JSON config (bounded) and check it."""
    if len(data) > ctx.limits.max_header_bytes:
        ctx.issue(
            Category.UNPROVABLE,
            f"{what} is larger than max_header_bytes; could not be proven safe",
            member,
        )
        return
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"{what} is not valid JSON ({err}); could not be proven safe",
            member,
        )
        return
    scan_config(ctx, config, member, what)


def scan_config(ctx: ScanContext, config: Any, member: tuple[str, ...], what: str) -> None:
    """Walk a parsed config iteratively and report code and foreign modules."""
    ctx.format("keras-config")
    todo: list[Any] = [config]
    nodes = 0
    while todo:
        node = todo.pop()
        nodes += 1
        if nodes > _MAX_NODES:
            ctx.issue(
                Category.UNPROVABLE,
                f"{what} has more than {_MAX_NODES} nodes; could not be proven safe",
                member,
            )
            return
        if isinstance(node, list):
            todo.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        todo.extend(node.values())
        cls, module = node.get("class_name"), node.get("module")
        if isinstance(cls, str) and cls in _CODE_CLASSES:
            ctx.issue(
                Category.CODE_EXECUTION,
                f"{what} has a {cls} object: Python code (often "
                "marshalled bytecode) that runs when the model is loaded",
                member,
                global_name=f"{module or 'keras'}:{cls}",
            )
        if isinstance(module, str) and module and not _keras(module):
            name = cls if isinstance(cls, str) else "?"
            category = classify(module, name)
            if category is Category.UNKNOWN_GLOBAL and module in ("builtins", "__main__"):
                category = Category.CODE_EXECUTION
            ctx.issue(
                category,
                f"{what} names the module {module!r}, outside Keras; loading imports it",
                member,
                global_name=f"{module}:{name}",
            )
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            ctx.issue(
                Category.UNKNOWN_GLOBAL,
                f"{what} needs the custom object {registered!r}, "
                "registered by code outside the model file",
                member,
                global_name=registered,
            )
