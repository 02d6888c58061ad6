"""Adversarial fine-tuning of a torch target: PGD-AT and TRADES (MITRE ATLAS AML.M0003).

* **PGD-AT** -- Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning
  Models Resistant to Adversarial Attacks", ICLR 2018: minimise the cross-entropy on
  the worst-case point of the ``eps``-ball found by PGD.
* **TRADES** -- Zhang, Yu, Jiao, Xing, El Ghaoui and Jordan, "Theoretically
  Principled Trade-off between Robustness and Accuracy", ICML 2019: minimise
  ``CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x'))`` where ``x'`` maximises
  the KL term inside the ball (started at ``x`` plus 0.001-scaled Gaussian noise).

The remedy *fine-tunes* a deep copy of the target's module (the original is never
touched) on ``Dataset.x_train``/``y_train`` with Adam. ``eps`` is read in ``units``
with the same rule as the evasion probes (:mod:`bastion.attacks.evasion.units`:
``auto`` = raw input units when every feature shares one finite range, fractions of
each feature's range otherwise); left unset it is 0.1 of the range (0.1 on ``[0, 1]``,
25.5 grey levels on ``[0, 255]``). The attack respects the input spec's bounds and
frozen features through :class:`~bastion.attacks.evasion.budget.Domain`.

Defaults are sized for the demo digits CNN (about 1,400 training rows of 1×8×8):
``eps=0.1`` (L∞), ``steps=7`` with step ``2.5 * eps / steps``, ``epochs=5``,
``lr=1e-3``, ``batch_size=128``: a few seconds on one CPU core. Simplification: the
inner maximisation uses one random start and no early stop (the training-time PGD of
the paper), so the number of forward+backward passes per batch is ``steps + 1``.

A user-supplied loop may replace the built-in one: ``loop(module, x, y, perturb,
seed) -> module``, where ``perturb(module, xb, yb) -> xb_adv`` runs the configured
inner maximisation on tensors ``(b, *shape)``/``(b,)``; the loop owns optimiser,
schedule and batching.

Examples
--------
>>> import numpy as np, torch
>>> from bastion.data.dataset import Dataset
>>> from bastion.probes.context import ProbeContext
>>> from bastion.targets import InputSpec
>>> from bastion.targets.torch_target import TorchTarget
>>> rng = np.random.default_rng(0)
>>> x = rng.random((64, 4)).astype(np.float32); y = (x[:, 0] > 0.5).astype(np.int64)
>>> data = Dataset("toy", x[:48], y[:48], x[48:], y[48:], classes=["lo", "hi"])
>>> _ = torch.manual_seed(0)
>>> t = TorchTarget(torch.nn.Linear(4, 2), input_spec=InputSpec(shape=(4,), lower=0.0,
...                 upper=1.0), classes=["lo", "hi"])
>>> r = AdversarialTraining(epochs=2, steps=3).apply(t, data, ProbeContext(seed=0))
>>> r.target is not t, sorted(r.changes)[:3]
(True, ['batch_size', 'beta', 'clean_accuracy_after'])
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.units import Units
from bastion.data.dataset import Dataset
from bastion.errors import DataError, TargetError, UsageError
from bastion.findings import CatalogRefs, wilson_interval
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Capability, Target
from bastion.targets.torch_target import TorchTarget

__all__ = ["AdversarialLoop", "AdversarialTraining", "AdversarialTrainingParams", "Perturb"]

log = logging.getLogger(__name__)

#: ``perturb(module, x (b, *shape), y (b,)) -> x_adv (b, *shape)``.
Perturb = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``loop(module, x_train, y_train, perturb, seed) -> trained module``.
AdversarialLoop = Callable[[torch.nn.Module, np.ndarray, np.ndarray, Perturb, int], torch.nn.Module]


class AdversarialTrainingParams(BaseModel):
    """Parameters of :class:`AdversarialTraining` (see the module docstring for defaults)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    method: Literal["pgd", "trades"] = "pgd"
    eps: float = Field(0.1, gt=0, allow_inf_nan=False)
    units: Units = "auto"
    norm: Literal["linf", "l2"] = "linf"
    steps: int = Field(7, ge=1, le=1000)
    step_size: float | None = Field(None, gt=0, allow_inf_nan=False)
    epochs: int = Field(5, ge=1, le=1000)
    lr: float = Field(1e-3, gt=0, le=10, allow_inf_nan=False)
    batch_size: int = Field(128, ge=1, le=100_000)
    beta: float = Field(6.0, ge=0, allow_inf_nan=False)
    seed: int | None = None
    loop: Any = None


def accuracy(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device) -> float:
    """Share of rows ``x`` ``(n, *shape)`` the module labels ``y`` ``(n,)`` (0.0 if empty)."""
    if len(x) == 0:
        return 0.0
    hits = 0
    with torch.no_grad():
        for start in range(0, len(x), 512):
            xb = torch.as_tensor(
                np.asarray(x[start : start + 512], dtype=np.float32), device=device
            )
            yb = torch.as_tensor(np.asarray(y[start : start + 512], dtype=np.int64), device=device)
            hits += int((module(xb).argmax(dim=1) == yb).sum())
    return hits / len(x)


class _Inner:
    """The inner maximisation: PGD on CE (PGD-AT) or on KL to the clean output (TRADES)."""

    def __init__(self, p: AdversarialTrainingParams, domain: Domain, seed: int) -> None:
        self.p = p
        self.domain = domain
        self.alpha = p.step_size if p.step_size is not None else 2.5 * p.eps / p.steps
        self.generator = torch.Generator(device=domain.lower.device).manual_seed(seed)

    def __call__(self, module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p, dom = self.p, self.domain.to(x)
        was_training = module.training
        module.eval()
        params = [q for q in module.parameters() if q.requires_grad]
        for q in params:
            q.requires_grad_(False)
        try:
            bounds = dom.ball_box(x, p.eps) if p.norm == "linf" else dom.box(x)
            if p.method == "trades":
                with torch.no_grad():
                    target = F.softmax(module(x), dim=1)
                noise = torch.randn(x.shape, generator=self.generator, device=x.device)
                start = x + 0.001 * torch.where(dom.mutable, noise.to(x.dtype), 0.0)
            else:
                start = dom.random_start(x, p.eps, p.norm, self.generator)
            x_adv = dom.project(start, x, p.eps, p.norm, bounds).detach()
            for _ in range(p.steps):
                x_adv.requires_grad_(True)
                logits = module(x_adv)
                if p.method == "trades":
                    loss = F.kl_div(F.log_softmax(logits, dim=1), target, reduction="sum")
                else:
                    loss = F.cross_entropy(logits, y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x_adv)
                step = x_adv.detach() + self.alpha * dom.ascent(grad, p.norm)
                x_adv = dom.project(step, x, p.eps, p.norm, bounds).detach()
        finally:
            for q in params:
                q.requires_grad_(True)
            module.train(was_training)
        return x_adv


def _builtin_loop(
    p: AdversarialTrainingParams, device: torch.device
) -> Callable[[torch.nn.Module, np.ndarray, np.ndarray, Perturb, int], torch.nn.Module]:
    def loop(
        module: torch.nn.Module, x: np.ndarray, y: np.ndarray, perturb: Perturb, seed: int
    ) -> torch.nn.Module:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
        optimiser = torch.optim.Adam(module.parameters(), lr=p.lr)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for epoch in range(p.epochs):
            order = torch.randperm(len(xt), generator=generator).to(device)
            total = 0.0
            for idx in torch.split(order, p.batch_size):
                xb, yb = xt[idx], yt[idx]
                x_adv = perturb(module, xb, yb)
                module.train()
                optimiser.zero_grad(set_to_none=True)
                if p.method == "trades":
                    clean = module(xb)
                    robust = F.kl_div(
                        F.log_softmax(module(x_adv), dim=1),
                        F.softmax(clean, dim=1),
                        reduction="batchmean",
                    )
                    loss = F.cross_entropy(clean, yb) + p.beta * robust
                else:
                    loss = F.cross_entropy(module(x_adv), yb)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                total += float(loss.detach()) * len(idx)
            log.debug("adversarial epoch %d/%d: loss %.4f", epoch + 1, p.epochs, total / len(xt))
        return module

    return loop


class AdversarialTraining(Remedy):
    """Adversarial fine-tuning (PGD-AT, Madry et al. 2018; TRADES, Zhang et al. 2019).

    Fine-tunes a deep copy of a :class:`~bastion.targets.torch_target.TorchTarget`'s
    module on adversarial examples of its training data and returns it as a new
    target under the same name (so ``bastion runs diff`` matches its findings with the
    original's). ``changes`` records the method and budget, training time, and clean
    accuracy on the test split before and after (with Wilson intervals), so the cost
    of hardening is never hidden. Verified by re-running ``evasion.pgd`` and
    ``evasion.apgd``.
    """

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="evasion.adversarial_training",
        title="Adversarial fine-tuning (PGD-AT / TRADES)",
        catalog=CatalogRefs(
            owasp=["ML01"], atlas_mitigations=["AML.M0003"], cwe=["CWE-1039"], failure_modes=["FM1"]
        ),
        verified_by=("evasion.pgd", "evasion.apgd"),
        needs=frozenset({Capability.GRADIENTS}),
    )
    Params: ClassVar[type[AdversarialTrainingParams]] = AdversarialTrainingParams

    def validated(self) -> AdversarialTrainingParams:
        """The parameters, validated; :class:`UsageError` with one sentence per problem."""
        p = self.validated_params(AdversarialTrainingParams)
        if p.units == "range" and p.norm == "linf" and p.eps > 1:
            raise UsageError(
                f"The 'eps' parameter of evasion.adversarial_training is {p.eps:g}, but L∞ "
                "budgets in units 'range' are fractions of each feature's range and must lie "
                "in (0, 1]."
            )
        if p.loop is not None and not callable(p.loop):
            raise UsageError(
                "The 'loop' parameter of evasion.adversarial_training must be a callable "
                "loop(module, x, y, perturb, seed) -> module."
            )
        return p

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Return a fine-tuned copy of ``target``; ``target`` itself is left unchanged."""
        p = self.validated()
        if not isinstance(target, TorchTarget):
            raise TargetError(
                f"evasion.adversarial_training fine-tunes torch models; {target.name!r} is a "
                f"{target.kind} target. Export the model to TorchScript or train it robustly "
                "in its own framework."
            )
        if len(data.x_train) == 0:
            raise DataError(
                f"Dataset {data.name!r} has no training rows; adversarial fine-tuning needs "
                "x_train/y_train."
            )
        spec = target.input_spec
        if np.dtype(spec.dtype).kind != "f":
            raise TargetError(
                f"{target.name!r} takes {spec.dtype} inputs; adversarial training needs "
                "floating-point inputs."
            )
        spec.check(data.x_train, what="training data")
        seed = context.seed if p.seed is None else p.seed
        device = target.device
        reference = (
            np.concatenate([data.x_train, data.x_test]) if len(data.x_test) else data.x_train
        )
        who = self.meta.id
        domain = Domain.from_spec(spec, reference=reference, device=device, units=p.units, who=who)
        if not domain.any_mutable:
            raise DataError(
                f"No feature of {target.name!r} may be changed, so there is nothing to train "
                "against; check the input spec's mutable mask."
            )
        if "eps" not in p.model_fields_set:  # the default is a fraction of the range
            p = p.model_copy(update={"eps": domain.units.from_fractions([p.eps], who=who)[0]})
        domain.check_budgets([p.eps], p.norm, who, name="eps")
        try:
            module = copy.deepcopy(target.module)
        except Exception as err:  # some compiled/exported modules refuse deepcopy
            raise TargetError(
                f"The module of {target.name!r} cannot be copied ({err}); load it as a plain "
                "torch.nn.Module or TorchScript archive."
            ) from err
        before = accuracy(module, data.x_test, data.y_test, device)
        perturb = _Inner(p, domain, seed)
        loop = p.loop if p.loop is not None else _builtin_loop(p, device)
        started = time.perf_counter()
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            trained = loop(module, data.x_train, data.y_train, perturb, seed)
        seconds = time.perf_counter() - started
        if not isinstance(trained, torch.nn.Module):
            raise TargetError(
                f"The adversarial training loop returned {type(trained).__name__}; it must "
                "return the trained torch.nn.Module."
            )
        trained.eval()
        after = accuracy(trained, data.x_test, data.y_test, device)
        n = len(data.y_test)
        iv_b, iv_a = wilson_interval(round(before * n), n), wilson_interval(round(after * n), n)
        hardened = TorchTarget(
            trained,
            input_spec=spec,
            classes=target.classes,
            name=target.name,
            device=device,
            batch_size=target.batch_size,
            embedding_layer=target.embedding_layer,
            module_factory=target.module_factory,
            trainer=target.trainer,
            train_options=target.train_options,
        )
        changes: dict[str, Any] = {
            "method": p.method,
            "norm": p.norm,
            "eps": p.eps,
            "units": domain.units.kind,
            "units_meaning": domain.units.describe(),
            "steps": p.steps,
            "step_size": perturb.alpha,
            "epochs": p.epochs,
            "lr": p.lr,
            "batch_size": p.batch_size,
            "beta": p.beta if p.method == "trades" else None,
            "seed": seed,
            "loop": "user" if p.loop is not None else "built-in",
            "train_rows": len(data.x_train),
            "train_seconds": round(seconds, 3),
            "clean_accuracy_before": round(before, 4),
            "clean_accuracy_before_ci": [round(iv_b.low, 4), round(iv_b.high, 4)],
            "clean_accuracy_after": round(after, 4),
            "clean_accuracy_after_ci": [round(iv_a.low, 4), round(iv_a.high, 4)],
            "test_rows": n,
        }
        notes = (
            f"{'TRADES' if p.method == 'trades' else 'PGD-AT'} fine-tuning, {p.epochs} epoch(s) "
            f"at {domain.units.budget_text(p.norm, p.eps)} with {p.steps}-step PGD; clean test "
            f"accuracy {before:.3f} -> {after:.3f} on {n} rows."
        )
        return RemedyResult(target=hardened, changes=changes, notes=notes)
