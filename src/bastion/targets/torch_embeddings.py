"""Reading the output of an inner layer of a torch model (embeddings).

Two strategies, chosen by what the module allows:

* an ordinary ``nn.Module`` (including an unflattened ``torch.export`` program) gets a
  temporary forward hook on the named submodule while the whole model runs;
* a TorchScript module refuses hooks, so when the path to the layer runs through
  ``Sequential`` containers only, the children before the layer are run in order and
  the layer's output is returned (the rest of the model is skipped).

Examples
--------
>>> import torch
>>> from bastion.targets.torch_embeddings import layer_reader
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
>>> read = layer_reader(net, "1", net, model_name="demo")
>>> tuple(read(torch.ones(3, 4)).shape)
(3, 6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bastion.errors import TargetError

__all__ = ["layer_reader"]

Reader = Callable[[torch.Tensor], torch.Tensor]


def _is_sequential(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Sequential) or (
        isinstance(module, torch.jit.ScriptModule)
        and getattr(module, "original_name", None) == "Sequential"
    )


def layer_reader(
    module: torch.nn.Module,
    layer: str,
    run: Callable[[torch.Tensor], Any],
    *,
    model_name: str,
) -> Reader:
    """A function from an input batch to the output of submodule ``layer``.

    Parameters
    ----------
    module : torch.nn.Module
        The model.
    layer : str
        Dotted submodule name, as in ``module.named_modules()``.
    run : callable
        Runs the whole model on a batch (used with the hook strategy).
    model_name : str
        For error messages.

    Raises
    ------
    TargetError
        If there is no such submodule, or the module is TorchScript and the layer is
        not reachable through ``Sequential`` containers.
    """
    modules = dict(module.named_modules())
    if not layer or layer not in modules:
        known = [n for n in modules if n][:20]
        raise TargetError(
            f"Model {model_name!r} has no submodule {layer!r} for embeddings; choose one of "
            f"{', '.join(known) or 'none'}."
        )
    if isinstance(module, torch.jit.ScriptModule):
        return _sequential_prefix(module, layer, model_name)
    return _hooked(modules[layer], layer, run, model_name)


def _hooked(
    sub: torch.nn.Module, layer: str, run: Callable[[torch.Tensor], Any], name: str
) -> Reader:
    def read(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def grab(_m: torch.nn.Module, _i: Any, out: Any) -> None:
            first = out[0] if isinstance(out, tuple | list) else out
            if not captured and isinstance(first, torch.Tensor):
                captured.append(first)

        handle = sub.register_forward_hook(grab)
        try:
            run(x)
        finally:
            handle.remove()
        if not captured:
            raise TargetError(
                f"Submodule {layer!r} of model {name!r} was not called during forward; pick a "
                "layer the model actually runs (for torch.export archives, load with "
                "embedding_layer set so the program is unflattened)."
            )
        return captured[0]

    return read


def _sequential_prefix(module: torch.nn.Module, layer: str, name: str) -> Reader:
    path = layer.split(".")
    container = module
    for part in path:
        if not _is_sequential(container):
            raise TargetError(
                f"TorchScript model {name!r} refuses forward hooks and the container of "
                f"{layer!r} is not a Sequential, so its embeddings cannot be read; load it in "
                "memory or as a torch.export archive instead."
            )
        container = dict(container.named_children())[part]

    def read(x: torch.Tensor) -> torch.Tensor:
        current, out = module, x
        for depth, part in enumerate(path):
            for child_name, child in current.named_children():
                if child_name == part:
                    if depth == len(path) - 1:
                        return torch.as_tensor(child(out))
                    current = child
                    break
                out = child(out)
        raise AssertionError("unreachable: the layer path was checked")

    return read
