"""Query oracles: any :class:`~bastion.targets.base.Target` as a tensor function.

Black-box attacks (Square, HopSkipJump, the constrained fallback) see a model only
through its answers. This module turns a target into the two oracles they need and
keeps the attack loops tensor-native:

``score_oracle(target)``
    ``(n, *shape)`` tensor -> ``(n, K)`` float tensor of *log-scores*: logits for a
    torch target (run under ``torch.inference_mode`` on the target's device through
    :meth:`TorchTarget.forward`, so nothing leaves the device), and
    ``log(max(p, 1e-12))`` of :meth:`Target.predict_proba` for every other target
    (sklearn, ONNX, HTTP), one NumPy round-trip per batch -- there is no other way to
    talk to such a model. Log-probabilities differ from logits by a per-row constant,
    so margins (``z_y - max_{k != y} z_k``) are the same either way.
``label_oracle(target)``
    ``(n, *shape)`` tensor -> ``(n,)`` int64 labels (argmax of the logits for torch,
    :meth:`Target.predict` otherwise); works on label-only targets.

Every row sent is charged to the target's query budget by the target itself; the
attacks additionally cap their own spending with ``max_total_queries`` and stop
cleanly when :class:`~bastion.errors.QueryBudgetExceeded` is raised.

Examples
--------
>>> import torch
>>> from bastion.targets import FakeTarget
>>> t = FakeTarget.linear(n_features=3, n_classes=2, seed=0)
>>> scores = score_oracle(t)(torch.full((4, 3), 0.5))
>>> tuple(scores.shape), t.queries_used
((4, 2), 4)
>>> label_oracle(t)(torch.zeros(2, 3)).dtype
torch.int64
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bastion.targets.base import Capability, Target

__all__ = [
    "LabelFn",
    "ScoreFn",
    "bounds_tensors",
    "label_oracle",
    "margins",
    "score_oracle",
    "target_device",
]

#: ``(n, *shape)`` inputs -> ``(n, K)`` log-scores (logits or log-probabilities).
ScoreFn = Callable[[torch.Tensor], torch.Tensor]
#: ``(n, *shape)`` inputs -> ``(n,)`` int64 predicted labels.
LabelFn = Callable[[torch.Tensor], torch.Tensor]

_FLOOR = 1e-12


def _is_torch(target: Target) -> bool:
    return Capability.GRADIENTS in target.capabilities and isinstance(
        getattr(target, "module", None), torch.nn.Module
    )


def target_device(target: Target) -> torch.device:
    """The device attacks should keep tensors on: the torch target's, else the CPU."""
    if _is_torch(target):
        return torch.device(target.device)  # type: ignore[attr-defined]
    return torch.device("cpu")


def score_oracle(target: Target) -> ScoreFn:
    """Log-scores of ``target`` as a tensor function (see the module docstring).

    Raises
    ------
    MissingCapabilityError
        If the target answers with labels only.
    """
    target.require(Capability.PROBABILITIES, who="A score-based attack")
    if _is_torch(target):
        forward = target.forward  # type: ignore[attr-defined]

        def torch_scores(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # a query: no autograd bookkeeping at all
                out: torch.Tensor = forward(x)
            return out.clone()  # an ordinary tensor again, safe to modify in place

        return torch_scores
    dtype = np.dtype(target.input_spec.dtype)

    def remote_scores(x: torch.Tensor) -> torch.Tensor:
        rows = x.detach().to("cpu").numpy().astype(dtype, copy=False)
        proba = target.predict_proba(rows)
        return torch.from_numpy(np.log(np.maximum(proba, _FLOOR))).to(x.device)

    return remote_scores


def label_oracle(target: Target) -> LabelFn:
    """Predicted labels of ``target`` as a tensor function; works on label-only targets."""
    if _is_torch(target):
        forward = target.forward  # type: ignore[attr-defined]

        def torch_labels(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                labels: torch.Tensor = forward(x).argmax(dim=1)
            return labels.clone()

        return torch_labels
    dtype = np.dtype(target.input_spec.dtype)

    def remote_labels(x: torch.Tensor) -> torch.Tensor:
        rows = x.detach().to("cpu").numpy().astype(dtype, copy=False)
        return torch.from_numpy(np.asarray(target.predict(rows), dtype=np.int64)).to(x.device)

    return remote_labels


def margins(scores: torch.Tensor, labels: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """Margin loss per row, negative exactly when the attack goal is met.

    Untargeted: ``z_y - max_{k != y} z_k`` (``y`` the true label). Targeted:
    ``max_{k != t} z_k - z_t`` (``t`` the target label).

    Parameters
    ----------
    scores : Tensor
        ``(n, K)`` logits or log-probabilities.
    labels : Tensor
        ``(n,)`` int64 true labels (untargeted) or target labels (targeted).
    targeted : bool
    """
    picked = scores.gather(1, labels[:, None])[:, 0]
    others = scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return others - picked if targeted else picked - others


def bounds_tensors(
    target: Target, *, device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's declared bounds as row-shaped tensors (``-inf``/``inf`` where unset)."""
    lo, hi = target.input_spec.bounds()
    shape = tuple(target.input_spec.shape)
    return (
        torch.as_tensor(lo.reshape(shape), dtype=dtype, device=device),
        torch.as_tensor(hi.reshape(shape), dtype=dtype, device=device),
    )
