"""Constrained evasion of tabular models: every adversarial row is a valid row.

White-box: projected gradient descent (Madry, Makelov, Schmidt, Tsipras and Vladu,
"Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018) in a
constrained feature space, in the spirit of Simonetto, Dyrmishi, Ghamizi, Cordy and
Le Traon, "A Unified Framework for Adversarial Attack and Defense in Constrained
Feature Space", IJCAI 2022. Each iteration

1. *repairs* the continuous iterate ``z`` into a valid row ``v`` with
   :meth:`FeatureConstraints.repair <bastion.attacks.evasion.constraints.FeatureConstraints.repair>`
   (immutable features reset, bounds and the L∞ ε-ball in units of each feature's
   range, integers rounded, one-hot groups re-hot);
2. queries the model on ``v`` -- the row that would really be sent -- for the margin
   loss and its gradient (one forward and one backward per still-robust row);
3. steps ``z`` against the gradient's sign, scaled per feature, and projects ``z``
   back into the box.

The gradient is taken at the repaired row and applied to the continuous iterate (a
straight-through treatment of rounding and re-hotting). Success is judged on ``v``
only, samples stop at their first success, and the best valid row per sample is kept.

Black-box fallback. Targets without gradients (scikit-learn, ONNX, HTTP) are attacked
by the Square attack's L∞ random search (:mod:`bastion.attacks.evasion.square`) on
the mutable features, with the same repair applied to every proposal before it is
queried. :func:`constrained_attack` picks the method and says which it used.

Either way a final :meth:`~bastion.attacks.evasion.constraints.FeatureConstraints.validate`
checks every constraint on every returned row; a row that failed it (none should)
would be replaced by its original and counted in ``fallback_rows``.

Shapes: ``x`` is ``(n, d)``, labels ``(n,)``.

Examples
--------
>>> import torch
>>> from bastion.targets.spec import InputSpec
>>> spec = InputSpec(shape=(3,), lower=0.0, upper=10.0, feature_names=["a", "b", "c"],
...                  immutable=["a"], integer=["b"])
>>> fc = FeatureConstraints.from_spec(spec)
>>> logits = lambda v: torch.stack([v[:, 0] - v[:, 1], v[:, 1] - v[:, 0]], dim=1)
>>> x = torch.tensor([[5.0, 3.0, 1.0]])
>>> r = constrained_pgd(logits, x, torch.tensor([0]), fc, eps=0.3, steps=20)
>>> r.success.tolist(), r.x_adv[0, :2].tolist(), r.validity.all_valid  # "a" immutable
([True], [5.0, 6.0], True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from bastion.attacks.evasion.constraints import ConstraintReport, FeatureConstraints
from bastion.attacks.evasion.geometry import check_attack_inputs
from bastion.attacks.evasion.queries import margins, score_oracle, target_device
from bastion.attacks.evasion.square import square_attack
from bastion.errors import QueryBudgetExceeded, UsageError
from bastion.targets.base import Capability, Target

__all__ = ["ConstrainedResult", "constrained_attack", "constrained_pgd"]

log = logging.getLogger(__name__)

Method = Literal["constrained-pgd", "constrained-square"]


@dataclass(frozen=True)
class ConstrainedResult:
    """Outcome of a constrained attack, per row.

    Attributes
    ----------
    x_adv : Tensor
        ``(n, d)`` valid rows (the original where no adversarial row was found).
    success : Tensor
        ``(n,)`` bool: ``x_adv`` meets the goal (including rows misclassified clean).
    clean_correct : Tensor
        ``(n,)`` bool.
    queries : Tensor
        ``(n,)`` int64 model evaluations per row (a forward+backward counts once).
    method : {"constrained-pgd", "constrained-square"}
        ``constrained-square`` is the black-box fallback for targets without gradients.
    validity : ConstraintReport
        The final check of every constraint on ``x_adv``.
    fallback_rows : int
        Rows replaced by their original because they failed the final check.
    stopped : {"finished", "query_budget"}
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    clean_correct: torch.Tensor
    queries: torch.Tensor
    method: Method
    validity: ConstraintReport
    fallback_rows: int
    stopped: Literal["finished", "query_budget"]


def _check(eps: float, steps: int) -> None:
    if not (isinstance(eps, int | float) and eps > 0 and not math.isnan(eps)):
        raise UsageError(f"The 'eps' of a constrained attack must be a float > 0; got {eps!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise UsageError(
            f"The 'steps' of a constrained attack must be an integer >= 1; got {steps!r}."
        )


def constrained_pgd(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    constraints: FeatureConstraints,
    *,
    eps: float,
    steps: int = 50,
    step_size: float | None = None,
    restarts: int = 1,
    seed: int = 0,
    y_target: torch.Tensor | None = None,
    max_total_queries: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConstrainedResult:
    """Constrained PGD (L∞ in units of each feature's range) on a differentiable model.

    Parameters
    ----------
    logits_fn : callable
        ``(m, d)`` tensor -> ``(m, K)`` logits with autograd (``TorchTarget.forward``).
    x, y : Tensor
        ``(n, d)`` valid clean rows and ``(n,)`` true labels.
    constraints : FeatureConstraints
    eps : float
        Largest change of each continuous feature as a fraction of its range
        (``math.inf``: anything inside the bounds).
    steps : int
        Iterations per restart.
    step_size : float or None
        Step in units of ``eps`` times range; default ``eps / 8`` (``1/8`` of the range
        when ``eps`` is infinite). Free one-hot members step at least 0.1.
    restarts : int
        Random starts; each later one attacks only the rows still robust.
    seed : int
    y_target : Tensor or None
        ``(n,)`` target labels (e.g. "benign" for an intrusion detector).
    max_total_queries : int or None
    progress : callable or None
        Called after each step with the number of rows still attacked.
    """
    _check(eps, steps)
    labels = check_attack_inputs(x, y if y_target is None else y_target, what="y_target")
    targeted = y_target is not None
    fc, x0 = constraints, x.detach()
    n = len(x0)
    reach = min(eps, 1.0) if math.isfinite(eps) else 1.0
    alpha = (step_size if step_size is not None else reach / 8) * fc.scale
    alpha = torch.where(fc.free_categorical, alpha.clamp_min(0.1), alpha)
    low, high = fc.box(x0, eps)
    free = fc.continuous | fc.free_categorical
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))
    queries = torch.zeros(n, dtype=torch.int64, device=x0.device)
    best = x0.clone()
    best_margin = torch.full((n,), math.inf, dtype=torch.float64, device=x0.device)
    clean_correct: torch.Tensor | None = None
    stopped: Literal["finished", "query_budget"] = "finished"

    def evaluate(idx: torch.Tensor, v: torch.Tensor, grad: bool) -> torch.Tensor | None:
        if max_total_queries is not None and int(queries.sum()) + len(idx) > max_total_queries:
            return None
        v = v.detach().requires_grad_(grad)
        gradient: torch.Tensor | None = None
        try:
            with torch.enable_grad() if grad else torch.no_grad():
                m = margins(logits_fn(v), labels[idx], targeted=targeted)
                if grad:
                    (gradient,) = torch.autograd.grad(m.sum(), v)
        except QueryBudgetExceeded:
            return None
        queries[idx] += 1
        md = m.detach().to(torch.float64)
        better = md < best_margin[idx]
        best_margin[idx] = torch.where(better, md, best_margin[idx])
        best[idx] = torch.where(better[:, None], v.detach(), best[idx])
        return gradient if grad else md

    everyone = torch.arange(n, device=x0.device)
    clean = evaluate(everyone, x0, grad=False)
    if clean is None:
        raise QueryBudgetExceeded(
            f"The constrained attack cannot afford the clean check of {n} rows; raise the query "
            "budget or attack fewer rows."
        )
    clean_correct = clean >= 0
    for _ in range(max(1, restarts)):
        idx = everyone[best_margin >= 0]
        if len(idx) == 0 or stopped != "finished":
            break
        noise = torch.rand(x0[idx].shape, generator=gen, device=x0.device, dtype=x0.dtype) * 2 - 1
        z = torch.clamp(x0[idx] + noise * alpha * free, low[idx], high[idx])
        for _ in range(steps):
            keep = best_margin[idx] >= 0
            idx, z = idx[keep], z[keep]
            if len(idx) == 0:
                break
            v = fc.repair(z, x0[idx], eps)
            g = evaluate(idx, v, grad=True)
            if g is None:
                stopped = "query_budget"
                break
            z = z - alpha * torch.sign(g) * free
            z = torch.where(fc.continuous, torch.clamp(z, low[idx], high[idx]), z.clamp(0, 1))
            if progress is not None:
                progress(int((best_margin >= 0).sum()))
        else:
            keep = best_margin[idx] >= 0
            idx, z = idx[keep], z[keep]
            if len(idx) and evaluate(idx, fc.repair(z, x0[idx], eps), grad=False) is None:
                stopped = "query_budget"
    return _finish(
        fc, x0, best, best_margin, clean_correct, queries, "constrained-pgd", eps, stopped
    )


def _finish(
    fc: FeatureConstraints,
    x0: torch.Tensor,
    best: torch.Tensor,
    margin: torch.Tensor,
    clean_correct: torch.Tensor,
    queries: torch.Tensor,
    method: Method,
    eps: float,
    stopped: Literal["finished", "query_budget"],
) -> ConstrainedResult:
    report = fc.validate(best, x0, None if math.isinf(eps) else eps)
    broken = ~report.valid
    fallback = int(broken.sum())
    if fallback:
        log.error("%d constrained rows failed validation and were reset to the original", fallback)
        best = torch.where(broken[:, None], x0, best)
        margin = torch.where(broken, torch.full_like(margin, math.inf), margin)
        report = fc.validate(best, x0, None if math.isinf(eps) else eps)
    success = (margin < 0) | ~clean_correct
    return ConstrainedResult(
        best, success, clean_correct, queries, method, report, fallback, stopped
    )


def constrained_attack(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    constraints: FeatureConstraints,
    *,
    eps: float,
    steps: int = 50,
    n_queries: int = 1000,
    restarts: int = 1,
    seed: int = 0,
    y_target: torch.Tensor | None = None,
    max_total_queries: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConstrainedResult:
    """Constrained PGD where the target has gradients, else the constrained Square fallback.

    ``steps`` and ``restarts`` apply to PGD, ``n_queries`` (per row) to the fallback.

    Raises
    ------
    MissingCapabilityError
        If the target answers with labels only (no scores to search on).
    """
    _check(eps, steps)
    device = target_device(target)
    x = x.to(device)
    y = y.to(device)
    y_target = None if y_target is None else y_target.to(device)
    if Capability.GRADIENTS in target.capabilities and hasattr(target, "forward"):
        return constrained_pgd(
            target.forward,
            x,
            y,
            constraints,
            eps=eps,
            steps=steps,
            restarts=restarts,
            seed=seed,
            y_target=y_target,
            max_total_queries=max_total_queries,
            progress=progress,
        )
    target.require(Capability.PROBABILITIES, who="The constrained black-box attack")
    fc = constraints
    radius = min(eps, 1.0) if math.isfinite(eps) else 1.0
    scale = torch.where(fc.free_categorical, 1.0 / radius, fc.scale)
    mask = fc.continuous | fc.free_categorical
    result = square_attack(
        score_oracle(target),
        x,
        y,
        norm="linf",
        eps=radius,
        n_queries=n_queries,
        lower=fc.lower,
        upper=fc.upper,
        seed=seed,
        y_target=y_target,
        scale=scale,
        mask=mask,
        project=lambda cand, orig: fc.repair(cand, orig, eps),
        max_total_queries=max_total_queries,
        progress=progress,
    )
    return _finish(
        fc,
        x,
        result.x_adv,
        result.margin,
        result.clean_correct,
        result.queries,
        "constrained-square",
        eps,
        result.stopped,
    )
