"""The model as white-box attacks see it: a tensor function that counts its rows.

An attack takes either a :class:`~bastion.targets.torch_target.TorchTarget` or any
callable ``(n, *shape) tensor -> (n, K) logits``. :func:`as_model` wraps it in a
:class:`CountedModel`, which

* calls :meth:`TorchTarget.forward` (so every row is charged to the target's query
  budget by the target itself, and the autograd graph is kept);
* counts the rows it sent, so an attack result says how many queries it cost;
* refuses outputs that are not ``(n, K)`` or not finite with a
  :class:`~bastion.errors.TargetError`, instead of letting NaN flow into gradients
  and out as a silently wrong "adversarial example".

Examples
--------
>>> import torch
>>> net = torch.nn.Linear(3, 2)
>>> model = as_model(net)
>>> model(torch.zeros(4, 3)).shape, model.rows
(torch.Size([4, 2]), 4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from bastion.errors import DataError, TargetError, UsageError

__all__ = ["CountedModel", "ModelLike", "as_model", "check_labels", "torch_threads"]

#: What attacks accept as a model: a torch target, a module or any logits function.
ModelLike = Any


class CountedModel:
    """A logits function that counts rows and checks outputs.

    Parameters
    ----------
    forward : callable
        ``(n, *shape) -> (n, K)`` logits, differentiable.
    name : str
        Used in error messages.
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        name: str,
        module: torch.nn.Module | None = None,
    ) -> None:
        self._forward = forward
        self._module = module
        self.name = name
        self.rows = 0
        self.n_classes: int | None = None

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """While open, the module's parameters do not require gradients.

        Attacks differentiate with respect to the *input* only; with the weights
        frozen, autograd neither builds nor runs their part of the backward pass
        (about 10% of a small CNN's step). The previous flags are restored on exit.
        """
        params = (
            []
            if self._module is None
            else [p for p in self._module.parameters() if p.requires_grad]
        )
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for ``x``; counts ``len(x)`` rows."""
        out = self._forward(x)
        self.rows += len(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x):
            raise TargetError(
                f"Model {self.name!r} returned {tuple(getattr(out, 'shape', ()))} for a batch of "
                f"{len(x)}; an attack needs logits of shape (n, n_classes)."
            )
        if self.n_classes is None:
            self.n_classes = int(out.shape[1])
        if not bool(torch.isfinite(out).all()):
            raise TargetError(
                f"Model {self.name!r} returned NaN or infinite logits during the attack; the "
                "model is numerically broken for these inputs, so no attack result can be trusted."
            )
        return out


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` intra-op CPU threads, then restore the previous number.

    ``None`` leaves PyTorch's setting alone. The setting is process-wide while the
    block runs. For small models the choice matters: on idle cores more threads cut
    the wall time of a batch at some extra CPU time, but on cores that other
    processes hold, the threads of one operation wait for each other and a small
    convolution can take several times longer than on one thread.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_model(model: ModelLike) -> CountedModel:
    """Wrap a :class:`TorchTarget`, a ``torch.nn.Module`` or a logits callable."""
    if isinstance(model, CountedModel):
        return model
    forward = getattr(model, "forward", None)
    if hasattr(model, "budget") and callable(forward):  # a TorchTarget: charges its budget
        module = getattr(model, "module", None)
        return CountedModel(
            forward,
            str(getattr(model, "name", "target")),
            module if isinstance(module, torch.nn.Module) else None,
        )
    if isinstance(model, torch.nn.Module):
        return CountedModel(model, type(model).__name__, model)
    if callable(model):
        return CountedModel(model, getattr(model, "__name__", "model"))
    raise UsageError(
        f"An attack needs a TorchTarget, a torch.nn.Module or a function returning logits; "
        f"got {type(model).__name__}."
    )


def check_labels(x: torch.Tensor, y: object, who: str) -> torch.Tensor:
    """``y`` as int64 ``(n,)`` on ``x``'s device, or a :class:`DataError`."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"{who} needs a non-empty batch tensor x of shape (n, *row); got "
            f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}."
        )
    if (
        not isinstance(y, torch.Tensor)
        or tuple(y.shape) != (len(x),)
        or y.dtype.is_floating_point
        or y.dtype == torch.bool
    ):
        raise DataError(
            f"{who} needs one integer label per row, shape ({len(x)},); got "
            f"{type(y).__name__} {tuple(getattr(y, 'shape', ()))}."
        )
    return y.to(device=x.device, dtype=torch.int64)
