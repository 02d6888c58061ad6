"""Signs that an evasion result is not trustworthy: gradient masking and its kin.

A defence can make gradient attacks *fail* without making the model *robust*
("obfuscated gradients", Athalye, Carlini and Wagner, ICML 2018; the checklist of
Carlini et al., "On Evaluating Adversarial Robustness", arXiv:1902.06705, 2019).
A high robust accuracy is only worth reporting if none of these show:

``zero_gradients``
    the input gradient of the margin loss is exactly zero for many rows (a
    non-differentiable step such as quantisation or thresholding). The margin loss
    is used because its gradient does not vanish when a softmax saturates.
``nonfinite_gradients``
    NaN or infinite gradients.
``randomised_outputs``
    the same input gives different logits on two calls (noise injection, dropout at
    test time); gradients of one call then say little about the next.
``flat_budget_curve``
    robust accuracy does not fall as the budget grows severalfold.
``single_step_beats_iterative``
    FGSM breaks rows that PGD, with the same budget, could not.
``black_box_beats_white_box``
    a black-box attack breaks rows that the white-box attacks could not.
``min_norm_failures``
    an unbounded minimum-norm attack finds no adversarial example for many rows.

Each check returns :class:`SanityFlag` objects; probes list them in the finding and
treat a "robust" result with flags as inconclusive.

Examples
--------
>>> import torch
>>> net = torch.nn.Linear(4, 3)
>>> health = model_health(net, torch.rand(8, 4), torch.zeros(8, dtype=torch.long))
>>> health.zero_fraction, health.nonfinite_fraction, health.randomised_fraction
(0.0, 0.0, 0.0)
>>> health.flags()
[]
>>> [f.code for f in budget_curve_flags([0.01, 0.1], [40, 40], n_correct=50)]
['flat_budget_curve']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.losses import margin
from bastion.attacks.evasion.model import ModelLike, as_model, check_labels

__all__ = [
    "ModelHealth",
    "SanityFlag",
    "black_box_flags",
    "budget_curve_flags",
    "min_norm_flags",
    "model_health",
    "single_step_flags",
]

#: Share of rows with an all-zero gradient above which masking is suspected.
ZERO_GRADIENT_SHARE = 0.05
#: Share of extra rows a weaker attack must break to be flagged (and at least 2 rows).
EXTRA_BREAK_SHARE = 0.05


@dataclass(frozen=True)
class SanityFlag:
    """One warning sign, with a sentence for the report.

    Attributes
    ----------
    code : str
        Stable machine name, e.g. ``"zero_gradients"``.
    message : str
        One sentence: what was seen and why it matters.
    value : float
        The measured quantity (a share of rows, a count).
    """

    code: str
    message: str
    value: float


@dataclass(frozen=True)
class ModelHealth:
    """Gradient and determinism measurements on a sample of rows."""

    n: int
    zero_fraction: float
    nonfinite_fraction: float
    randomised_fraction: float
    max_logit_change: float

    def flags(self) -> list[SanityFlag]:
        """The warning signs these measurements raise."""
        found = []
        if self.zero_fraction > ZERO_GRADIENT_SHARE:
            found.append(
                SanityFlag(
                    "zero_gradients",
                    f"{self.zero_fraction:.0%} of {self.n} rows have an exactly zero input "
                    "gradient of the margin loss; a non-differentiable step (quantisation, "
                    "thresholding) may be hiding the model from gradient attacks.",
                    self.zero_fraction,
                )
            )
        if self.nonfinite_fraction > 0:
            found.append(
                SanityFlag(
                    "nonfinite_gradients",
                    f"{self.nonfinite_fraction:.0%} of {self.n} rows have NaN or infinite input "
                    "gradients; gradient attacks cannot follow them.",
                    self.nonfinite_fraction,
                )
            )
        if self.randomised_fraction > 0:
            found.append(
                SanityFlag(
                    "randomised_outputs",
                    f"The same input gave different logits on two calls for "
                    f"{self.randomised_fraction:.0%} of {self.n} rows (largest change "
                    f"{self.max_logit_change:.3g}); a randomised model needs attacks that "
                    "average over its randomness (EoT), so these results may overstate "
                    "robustness.",
                    self.randomised_fraction,
                )
            )
        return found


def model_health(
    model: ModelLike, x: torch.Tensor, y: torch.Tensor, *, domain: Domain | None = None
) -> ModelHealth:
    """Measure input gradients and output determinism on ``x`` ``(n, *shape)``.

    Two forward passes (``2 n`` queries): one with the gradient of the margin loss,
    one without, on the same inputs. Only mutable features of ``domain`` count.
    """
    y = check_labels(x, y, "The sanity check")
    f = as_model(model)
    xa = x.detach().clone().requires_grad_(True)
    first = f(xa)
    grad = torch.autograd.grad(margin(first, y).sum(), xa)[0]
    if domain is not None:
        grad = torch.where(domain.to(x).mutable, grad, 0.0)
    flat = grad.reshape(len(grad), -1)
    finite = torch.isfinite(flat).all(dim=1)
    zero = finite & (flat == 0).all(dim=1)
    with torch.no_grad():
        second = f(x.detach())
    change = (first.detach() - second).abs().amax(dim=1)
    tolerance = 1e-4 + 1e-3 * first.detach().abs().amax(dim=1)
    n = len(x)
    return ModelHealth(
        n=n,
        zero_fraction=float(zero.sum()) / n,
        nonfinite_fraction=float((~finite).sum()) / n,
        randomised_fraction=float((change > tolerance).sum()) / n,
        max_logit_change=float(change.max()),
    )


def budget_curve_flags(
    budgets: Sequence[float], robust: Sequence[int], *, n_correct: int
) -> list[SanityFlag]:
    """Flag a robust-accuracy curve that does not fall as the budget grows.

    ``robust[i]`` is the number of rows still robust at ``budgets[i]`` (ascending).
    Flagged when the largest budget is at least twice the smallest and no more rows
    were broken there than at the smallest, while some were still standing.
    """
    if len(budgets) < 2 or budgets[-1] < 2 * budgets[0] or robust[0] == 0 or n_correct == 0:
        return []
    if robust[-1] < robust[0]:
        return []
    return [
        SanityFlag(
            "flat_budget_curve",
            f"Robust accuracy did not fall from budget {budgets[0]:g} to {budgets[-1]:g} "
            f"({robust[0]} of {n_correct} rows robust at both); a real model loses accuracy as "
            "the budget grows, so the attacks are probably failing rather than the model "
            "resisting.",
            float(robust[-1]) / n_correct,
        )
    ]


def _extra(weak: int, pool: int) -> bool:
    return weak >= 2 and weak > EXTRA_BREAK_SHARE * max(pool, 1)


def single_step_flags(eps: float, fgsm_only: int, n_attacked: int) -> list[SanityFlag]:
    """Flag FGSM breaking ``fgsm_only`` rows that PGD left standing at ``eps``."""
    if not _extra(fgsm_only, n_attacked):
        return []
    return [
        SanityFlag(
            "single_step_beats_iterative",
            f"At budget {eps:g}, one FGSM step broke {fgsm_only} of {n_attacked} rows that "
            "PGD could not; an iterative attack should be at least as strong, so its "
            "gradients are probably misleading it.",
            float(fgsm_only),
        )
    ]


def black_box_flags(attack: str, extra: int, survivors: int) -> list[SanityFlag]:
    """Flag a black-box attack breaking ``extra`` of the white-box ``survivors``."""
    if not _extra(extra, survivors):
        return []
    return [
        SanityFlag(
            "black_box_beats_white_box",
            f"The black-box {attack} attack broke {extra} of the {survivors} rows the "
            "white-box attacks could not; with honest gradients white-box attacks are "
            "stronger, so the gradients are probably masked.",
            float(extra),
        )
    ]


def min_norm_flags(attack: str, not_found: int, n_attacked: int) -> list[SanityFlag]:
    """Flag an unbounded minimum-norm attack that found nothing for many rows."""
    if not _extra(not_found, n_attacked):
        return []
    return [
        SanityFlag(
            "min_norm_failures",
            f"The unbounded {attack} attack found no adversarial example at all for "
            f"{not_found} of {n_attacked} rows; any classifier can be fooled by a large "
            "enough change, so the attack is probably stuck on flat or misleading gradients.",
            float(not_found),
        )
    ]
