"""Keras model configs (``.keras`` ``config.json``, HDF5 ``model_config``), checked.

A Keras config names the classes to build. Loading one imports each ``module`` it
names (Keras 3 before 3.9 imported any module), rebuilds Python functions from
marshalled bytecode for ``Lambda`` layers (Keras 2 and ``tf.keras`` by default, Keras 3
only outside ``safe_mode``), and a few Keras 3 layers load more than the config. So:

* a ``Lambda`` layer (or any ``__lambda__``, ``TFOpLambda`` object) is ``code_execution``,
  and so are ``TorchModuleWrapper`` (its config holds a pickled torch module for
  ``torch.load(weights_only=False)``) and ``TFSMLayer`` (it loads a SavedModel from a
  path); a lookup layer whose ``vocabulary`` is a path reads a file outside the model
  (``file_or_network``);
* a ``module`` outside ``keras`` is classified like a pickle global (``os`` is code
  execution, ``mylib.layers:Plus`` an unknown global);
* a custom object (``registered_name`` or a legacy ``class_name`` of the form
  ``package>Name``) and, in legacy configs without modules, any ``class_name`` Keras
  does not define (:mod:`.keras_names`) are unknown globals: code outside the file must
  supply them. ``Custom>Adam`` and the like are how ``tf.keras`` 2.11+ names its own
  optimizers, so ``Custom>`` followed by a Keras class name is not reported;
* ``function`` objects are looked up *by name* among Keras's built-ins (losses,
  activations, metrics) and registered functions, so only a foreign module or a custom
  registered name is reported.

Reviewed exceptions (``--allow``) apply: ``mylib.layers:Plus`` for a module,
``package:Name`` for ``package>Name``, ``custom_objects:Plus`` for a legacy bare name.

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
>>> ctx = ScanContext(file="m.h5")
>>> legacy = {"class_name": "Sequential", "config": {"layers": [
...     {"class_name": "Dense", "config": {}}, {"class_name": "Plus", "config": {}}]}}
>>> scan_config(ctx, legacy, (), "model_config")
>>> [(i.category.value, i.global_name) for i in ctx.report.issues]
[('unknown_global', 'custom_objects:Plus')]
"""

from __future__ import annotations

import json
from typing import Any

from bastion.artifacts.allow_data import classify
from bastion.artifacts.context import ScanContext
from bastion.artifacts.formats.keras_names import KERAS_CLASS_NAMES, KERAS_DATA_CLASSES
from bastion.artifacts.issues import Category

__all__ = ["scan_config", "scan_config_bytes"]

_KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
_CODE_CLASSES = {"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"}
_LOADS_MORE = {
    "TorchModuleWrapper": "a pickled torch module that torch.load(weights_only=False) runs",
    "TFSMLayer": "a TensorFlow SavedModel loaded from a path, with the code in its graph",
}
_LOOKUPS = {"StringLookup", "IntegerLookup", "TextVectorization", "IndexLookup"}
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
        _check_node(ctx, node, member, what)


def _report(
    ctx: ScanContext,
    category: Category,
    message: str,
    member: tuple[str, ...],
    global_name: str,
) -> None:
    """An issue, unless the user reviewed and allowed ``global_name`` (``module:Name``)."""
    module, _, name = global_name.partition(":")
    decision = ctx.allowlist.check(module, name)
    if decision.allowed and decision.user:
        if global_name not in ctx.report.allowed_by_user:
            ctx.report.allowed_by_user.append(global_name)
        return
    ctx.issue(category, message, member, global_name=global_name)


def _check_node(ctx: ScanContext, node: dict[str, Any], member: tuple[str, ...], what: str) -> None:
    """The rules of the module docstring, for one object of the config."""
    cls, module = node.get("class_name"), node.get("module")
    registered = node.get("registered_name")
    if not isinstance(cls, str):
        return
    if cls in _CODE_CLASSES:
        ctx.issue(
            Category.CODE_EXECUTION,
            f"{what} has a {cls} object: Python code (often "
            "marshalled bytecode) that runs when the model is loaded",
            member,
            global_name=f"{module or 'keras'}:{cls}",
        )
        return
    if cls in _LOADS_MORE:
        ctx.issue(
            Category.CODE_EXECUTION,
            f"{what} has a {cls} layer: {_LOADS_MORE[cls]}",
            member,
            global_name=f"{module or 'keras.layers'}:{cls}",
        )
    config = node.get("config")
    if cls in _LOOKUPS and isinstance(config, dict) and isinstance(config.get("vocabulary"), str):
        ctx.issue(
            Category.FILE_OR_NETWORK,
            f"{what} has a {cls} layer whose vocabulary is read from the path "
            f"{config['vocabulary'][:200]!r}, outside the model",
            member,
            global_name=f"{module or 'keras.layers'}:{cls}",
        )
    if cls == "function":
        name = config if isinstance(config, str) else "?"
        if isinstance(module, str) and module not in ("builtins", "") and not _keras(module):
            _foreign(ctx, module, name, member, what)
        elif isinstance(registered, str) and ">" in registered:
            _custom(ctx, registered, member, what)
        return
    if isinstance(module, str) and module and not _keras(module):
        _foreign(ctx, module, cls, member, what)
    elif isinstance(registered, str) and ">" in registered:
        _custom(ctx, registered, member, what)
    elif ">" in cls:
        _custom(ctx, cls, member, what)
    elif (
        module is None
        and "config" in node
        and cls not in KERAS_CLASS_NAMES
        and cls not in KERAS_DATA_CLASSES
    ):
        _report(
            ctx,
            Category.UNKNOWN_GLOBAL,
            f"{what} needs the class {cls!r}, which Keras does not define: code outside "
            "the model file must supply it (custom_objects or a registration)",
            member,
            f"custom_objects:{cls}",
        )


def _foreign(ctx: ScanContext, module: str, name: str, member: tuple[str, ...], what: str) -> None:
    category = classify(module, name)
    if category is Category.UNKNOWN_GLOBAL and module in ("builtins", "__main__"):
        category = Category.CODE_EXECUTION
    _report(
        ctx,
        category,
        f"{what} names the module {module!r}, outside Keras; loading imports it",
        member,
        f"{module}:{name}",
    )


def _custom(ctx: ScanContext, registered: str, member: tuple[str, ...], what: str) -> None:
    package, _, name = registered.rpartition(">")
    if package == "Custom" and name in KERAS_CLASS_NAMES:
        return  # tf.keras 2.11+ registers its own optimizers so ("Custom>Adam")
    _report(
        ctx,
        Category.UNKNOWN_GLOBAL,
        f"{what} needs the custom object {registered!r}, registered by code outside the model file",
        member,
        f"{package or 'Custom'}:{name}",
    )
