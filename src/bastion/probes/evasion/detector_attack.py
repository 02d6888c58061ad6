"""Attacking a model and its adversarial-input detector together: the shared machinery.

A detector is only worth what it keeps against an attacker who knows it (Carlini &
Wagner, "Adversarial Examples Are Not Easily Detected: Bypassing Ten Detection
Methods", AISec 2017; Tramèr, Carlini, Brendel & Madry, "On Adaptive Attacks to
Adversarial Example Defenses", NeurIPS 2020). :class:`AdaptiveDetector` is what
``evasion.detector_adaptive`` needs from a detector -- a differentiable score and an
adaptive loss -- and :func:`adaptive_pgd` is the one PGD loop every detector is
attacked with:

* start at a random point of the ``eps``-ball, take ``steps`` steps of
  ``2.5 * eps / steps`` along the steepest ascent of the detector's adaptive loss,
  project after each step (per-sample budgets of
  :class:`~bastion.attacks.evasion.budget.Domain`);
* a row is *fooled* when some iterate is misclassified by the model, and *evaded*
  when some iterate is misclassified **and** scores at or below the threshold;
* gradients are averaged over ``detector.eot`` samples per step (Expectation over
  Transformation, Athalye, Engstrom, Ilyas & Kwok, ICML 2018) when some model is
  randomised; 1 otherwise.

:func:`static_detection` is the contrast the probe reports next to it: PGD against
the model alone, and the share of its fooling examples the detector flags.

Shapes: rows ``(n, *shape)``, labels ``(n,)``, scores and losses ``(n,)``.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion.budget import Domain
>>> from bastion.attacks.evasion.model import as_model
>>> class Margin(AdaptiveDetector):
...     label = "toy detector"
...     def score(self, x):
...         return x.abs().sum(dim=1)
...     def loss(self, x, y, lam, threshold):
...         logits = self.model(x)
...         ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
...         return ce, logits, self.score(x)
>>> _ = torch.manual_seed(0)
>>> det = Margin(as_model(torch.nn.Linear(2, 2)))
>>> x, y = torch.rand(6, 2), torch.zeros(6, dtype=torch.long)
>>> evaded, fooled = adaptive_pgd(det, x, y, eps=0.5, norm="linf", steps=5, lam=1.0,
...                               threshold=10.0, domain=Domain.unit((2,)), seed=0)
>>> bool((evaded <= fooled).all()), det.scores(x).shape
(True, torch.Size([6]))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar

import torch

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import CountedModel
from bastion.attacks.evasion.pgd import pgd
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.sanity import ZERO_GRADIENT_SHARE, SanityFlag, model_health
from bastion.findings import Metric, wilson_interval

__all__ = ["MARGIN", "AdaptiveDetector", "adaptive_pgd", "rate_metric", "static_detection", "sweep"]

#: The adaptive losses start pushing the score down once it exceeds this share of the
#: threshold, so examples land safely below it.
MARGIN = 0.9
_CHUNK = 512


class AdaptiveDetector(ABC):
    """A detector as the adaptive evaluation sees it: a score and an adaptive loss.

    Attributes
    ----------
    model : CountedModel
        The protected model (its rows are charged to the target).
    eot : int
        Gradient samples per attack step (EoT when a model is randomised).
    flags : list of SanityFlag
        Warning signs about the gradients the attack relies on.
    notes : list of str
        Sentences for the finding: how the attack got its gradients (BPDA, EoT).
    """

    label: ClassVar[str] = "detector"
    score_unit: ClassVar[str] = "score"

    def __init__(self, model: CountedModel) -> None:
        self.model = model
        self.eot = 1
        self.flags: list[SanityFlag] = []
        self.notes: list[str] = []

    @abstractmethod
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Detection scores ``(n,)``, differentiable where the detector allows it."""

    @abstractmethod
    def loss(
        self, x: torch.Tensor, y: torch.Tensor, lam: float, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss (n,) to maximise, model logits (n, K), score (n,))`` at ``x``."""

    def modules(self) -> list[torch.nn.Module]:
        """Modules besides the model whose weights the attack must not train."""
        return []

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Detection scores ``(n,)`` without gradients, in chunks."""
        with torch.no_grad():
            parts = [self.score(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)]
        return torch.cat(parts) if parts else x.new_zeros(0)

    def threshold_definition(self) -> str:
        """What the calibrated threshold is a quantile of (one sentence fragment)."""
        return f"{self.label} score"

    def inspect(self, x: torch.Tensor, y: torch.Tensor, domain: Domain, eot_samples: int) -> None:
        """Check every model's gradients and determinism on ``x``; choose EoT, record flags.

        A randomised model switches on EoT with ``eot_samples`` gradient samples per
        step. Zero or non-finite gradients cannot be repaired generically (BPDA needs
        to know the non-differentiable step), so they become flags: the probe then
        reports a "robust" result as inconclusive.
        """
        named: list[tuple[str, Any]] = [("the model", self.model)]
        named += [(f"member {i + 1}", m) for i, m in enumerate(self.modules())]
        randomised, masked = [], []
        for name, m in named:
            health = model_health(m, x, y, domain=domain)
            self.flags += [
                SanityFlag(f.code, f"{name[0].upper()}{name[1:]}: {f.message}", f.value)
                for f in health.flags()
            ]
            if health.randomised_fraction > 0:
                randomised.append(name)
            if health.zero_fraction > ZERO_GRADIENT_SHARE or health.nonfinite_fraction > 0:
                masked.append(name)
        if randomised:
            self.eot = eot_samples
            self.notes.append(
                f"{', '.join(randomised).capitalize()} gave randomised outputs, so the adaptive "
                f"attack averages its gradient over {eot_samples} samples per step (EoT)."
            )
        if masked:
            self.notes.append(
                f"{', '.join(masked).capitalize()} showed zero or non-finite input gradients; "
                "a BPDA substitute needs to know the non-differentiable step, so a result that "
                "looks robust is reported as inconclusive."
            )
        if not randomised and not masked:
            self.notes.append(
                f"All {len(named)} model(s) passed the gradient and determinism checks on "
                f"{len(x)} rows, so the attack follows their exact gradients without EoT."
            )

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """While open, no weight of the model or the other modules requires gradients."""
        params = [q for m in self.modules() for q in m.parameters() if q.requires_grad]
        with ExitStack() as stack:
            stack.enter_context(self.model.frozen())
            for q in params:
                q.requires_grad_(False)
            try:
                yield
            finally:
                for q in params:
                    q.requires_grad_(True)


def adaptive_pgd(
    detector: AdaptiveDetector,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    lam: float,
    threshold: float,
    domain: Domain,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD on the detector's adaptive loss; returns ``(evaded (n,), fooled (n,))``.

    See the module docstring. With ``lam = 0`` the loss ignores the detector, yet an
    iterate that slips under the threshold still counts as evaded.
    """
    dom = domain.to(x)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    bounds = dom.ball_box(x, eps) if norm == "linf" else dom.box(x)
    alpha = 2.5 * eps / steps
    x_adv = dom.project(dom.random_start(x, eps, norm, gen), x, eps, norm, bounds).detach()
    evaded = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    fooled = torch.zeros_like(evaded)
    with detector.frozen():
        for step in range(steps + 1):
            x_adv.requires_grad_(True)
            loss, logits, score = detector.loss(x_adv, y, lam, threshold)
            wrong = logits.argmax(1) != y
            fooled |= wrong.detach()
            evaded |= (wrong & (score <= threshold)).detach()
            if step == steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            for _ in range(detector.eot - 1):
                (more,) = torch.autograd.grad(
                    detector.loss(x_adv, y, lam, threshold)[0].sum(), x_adv
                )
                grad = grad + more
            moved = x_adv.detach() + alpha * dom.ascent(grad, norm)
            x_adv = dom.project(moved, x, eps, norm, bounds).detach()
    return evaded, fooled


def static_detection(
    detector: AdaptiveDetector,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    threshold: float,
    domain: Domain,
    seed: int,
) -> tuple[int, int]:
    """``(flagged, fooling)``: PGD against the model alone, then the detector's verdict.

    The attack does not know the detector; of its final examples that fool the model,
    how many score above the threshold. Reported for contrast only.
    """
    r = pgd(detector.model, x, y, eps=eps, norm=norm, steps=steps, domain=domain, seed=seed)
    adv = r.x_adv[r.success]
    if len(adv) == 0:
        return 0, 0
    flagged = detector.scores(adv) > threshold
    return int(flagged.sum()), len(adv)


def rate_metric(name: str, k: int, n: int, definition: str) -> Metric:
    """A rate ``k / n`` with its Wilson 95% interval (None when ``n`` is 0)."""
    return Metric(
        name=name,
        value=round(k / n, 4) if n else None,
        unit="fraction",
        interval=wilson_interval(k, n) if n else None,
        n=n,
        definition=definition + " Wilson 95% interval.",
    )


def sweep(
    detector: AdaptiveDetector,
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    threshold: float,
    domain: Domain,
    budgets: Sequence[float],
    norm: Norm,
    steps: int,
    penalties: Sequence[float],
    seed: int,
    advance: Callable[[int], object] = lambda _: None,
) -> tuple[list[Metric], dict[str, list[float]]]:
    """Adaptive (every ``lam`` in ``penalties``) and static attacks at every budget.

    ``xs``/``ys`` are correctly classified rows. Returns the per-budget metrics
    (adaptive evasion rate, adaptive and static detection rates, Wilson intervals)
    and the rates as lists for the series: ``"evasion"``, ``"adaptive"``,
    ``"static"``.
    """
    n_ok, units = len(xs), domain.units.describe()
    metrics: list[Metric] = []
    out: dict[str, list[float]] = {"static": [], "adaptive": [], "evasion": []}
    for k, eps in enumerate(budgets):
        common: dict[str, Any] = {
            "eps": eps,
            "norm": norm,
            "steps": steps,
            "threshold": threshold,
            "domain": domain,
            "seed": seed + k,
        }
        evaded = torch.zeros(n_ok, dtype=torch.bool, device=xs.device)
        fooled = torch.zeros_like(evaded)
        for lam in penalties:
            e, fo = adaptive_pgd(detector, xs, ys, lam=lam, **common)
            evaded |= e
            fooled |= fo
        flagged, fooling = static_detection(detector, xs, ys, **common)
        n_fool, n_ev = int(fooled.sum()), int(evaded.sum())
        metrics += [
            rate_metric(
                f"evasion_rate_adaptive@{eps:g}",
                n_ev,
                n_ok,
                f"Share of the {n_ok} correctly classified rows for which the adaptive attack "
                f"found an input within budget {eps:g} ({units}) that is misclassified and not "
                "flagged at the calibrated threshold.",
            ),
            rate_metric(
                f"detection_rate_adaptive@{eps:g}",
                n_fool - n_ev,
                n_fool,
                f"Share of the {n_fool} rows the adaptive attack made misclassified where no "
                "misclassified iterate escaped the detector (at the calibrated threshold).",
            ),
            rate_metric(
                f"detection_rate_static@{eps:g}",
                flagged,
                fooling,
                f"Share of the {fooling} final PGD examples (attack unaware of the detector) "
                "that fool the model and are flagged; for contrast only.",
            ),
        ]
        out["evasion"].append(n_ev / n_ok)
        out["adaptive"].append((n_fool - n_ev) / n_fool if n_fool else 1.0)
        out["static"].append(flagged / fooling if fooling else 1.0)
        advance(1)
    return metrics, out
