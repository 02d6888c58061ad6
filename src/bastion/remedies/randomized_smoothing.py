"""Randomized smoothing with Gaussian-noise fine-tuning (MITRE ATLAS AML.M0003).

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019: replace the model ``f`` by the smoothed classifier
``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, whose prediction provably
does not change within an L2 radius that CERTIFY estimates (see
:mod:`bastion.certification`). ``g`` is only as good as ``f`` is under noise, so, as
Cohen et al. do, the remedy first trains ``f`` with Gaussian noise augmentation at the
same ``sigma``: it *fine-tunes* a deep copy of a
:class:`~bastion.targets.torch_target.TorchTarget`'s module (the original is never
touched) on ``Dataset.x_train``/``y_train`` with the loss ``CE(f(x + e), y)`` and Adam,
drawing the noise with exactly the clipped, mutable-features-only sampler the
certification uses (:mod:`bastion.certification.noise`). ``epochs=0`` skips training
and smooths the model as it is -- which works for any target, not only torch ones.

It returns a :class:`~bastion.certification.target.SmoothedTarget` (same name as the
original, so ``bastion runs diff`` matches findings) that answers with PREDICT (``n``
noisy copies per query, test level ``alpha``, abstentions as an extra class).
Verified by ``evasion.certified_radius``, which certifies the base model at the
target's ``sigma``.

Defaults are sized for the demo digits CNN (about 1,350 training rows of 1×8×8):
``sigma=0.25`` (raw units; inputs in ``[0, 1]``), ``epochs=10``, ``lr=1e-3``,
``batch_size=128``: a few seconds on one CPU core.

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
>>> r = RandomizedSmoothing(epochs=2, n=50).apply(t, data, ProbeContext(seed=0))
>>> r.target.kind, r.target.sigma, r.target.classes
('smoothed', 0.25, ('lo', 'hi', '<abstain>'))
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from bastion.certification.noise import GaussianNoise
from bastion.certification.sampling import BaseClassifier
from bastion.certification.target import SmoothedTarget
from bastion.data.dataset import Dataset
from bastion.errors import DataError, TargetError
from bastion.findings import CatalogRefs, wilson_interval
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Target
from bastion.targets.torch_target import TorchTarget

__all__ = ["RandomizedSmoothing", "RandomizedSmoothingParams"]

_ID = "evasion.randomized_smoothing"


class RandomizedSmoothingParams(BaseModel):
    """Parameters of :class:`RandomizedSmoothing` (see the module docstring for defaults)."""

    model_config = ConfigDict(extra="forbid")

    sigma: float = Field(0.25, gt=0, allow_inf_nan=False)
    units: Literal["raw", "range"] = "raw"
    epochs: int = Field(10, ge=0, le=1000)
    lr: float = Field(1e-3, gt=0, le=10, allow_inf_nan=False)
    batch_size: int = Field(128, ge=1, le=100_000)
    seed: int | None = None
    n: int = Field(100, ge=1, le=10_000_000)
    alpha: float = Field(0.001, gt=0, lt=1)
    noise_batch_size: int = Field(1000, ge=1, le=1_000_000)


def _accuracy(
    classify: Callable[[torch.Tensor], torch.Tensor],
    noise: GaussianNoise | None,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
) -> tuple[float, list[float]]:
    """Share of rows classified as ``y``, clean (``noise`` None) or on one noisy copy."""
    if len(x) == 0:
        return 0.0, [0.0, 1.0]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    hits = 0
    with torch.no_grad():
        for start in range(0, len(x), 512):
            xb = x[start : start + 512]
            if noise is not None:
                xb = noise.sample(xb, generator)
            hits += int((classify(xb) == y[start : start + 512]).sum())
    iv = wilson_interval(hits, len(x))
    return hits / len(x), [round(iv.low, 4), round(iv.high, 4)]


def _train(
    module: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    noise: GaussianNoise,
    p: RandomizedSmoothingParams,
    seed: int,
) -> None:
    optimiser = torch.optim.Adam(module.parameters(), lr=p.lr)
    order_gen = torch.Generator(device="cpu").manual_seed(seed)
    noise_gen = torch.Generator(device=x.device).manual_seed(seed + 1)
    module.train()
    for _ in range(p.epochs):
        order = torch.randperm(len(x), generator=order_gen).to(x.device)
        for idx in torch.split(order, p.batch_size):
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(module(noise.sample(x[idx], noise_gen)), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    module.eval()


class RandomizedSmoothing(Remedy):
    """Randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019), noise-trained first.

    Fine-tunes a deep copy of a torch target's module with Gaussian noise augmentation
    at ``sigma`` (``epochs=0`` skips this and works for any target), then returns the
    smoothed classifier as a :class:`~bastion.certification.target.SmoothedTarget`.
    ``changes`` records the noise and PREDICT parameters, training time, and the base
    model's test accuracy before and after, clean and on one noisy copy per row (Wilson
    intervals), so the accuracy cost of the noise is never hidden. Verified by
    ``evasion.certified_radius``.
    """

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id=_ID,
        title="Randomized smoothing with Gaussian-noise fine-tuning",
        catalog=CatalogRefs(
            owasp=["ML01"], atlas_mitigations=["AML.M0003"], cwe=["CWE-1039"], failure_modes=["FM1"]
        ),
        verified_by=("evasion.certified_radius",),
    )
    Params: ClassVar[type[RandomizedSmoothingParams]] = RandomizedSmoothingParams

    def validated(self) -> RandomizedSmoothingParams:
        """The parameters, validated; :class:`UsageError` with one sentence per problem."""
        return self.validated_params(RandomizedSmoothingParams)

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Return the smoothed (and, with ``epochs > 0``, noise-trained) copy of ``target``."""
        p = self.validated()
        seed = context.seed if p.seed is None else p.seed
        if p.epochs > 0 and not isinstance(target, TorchTarget):
            raise TargetError(
                f"{_ID} fine-tunes torch models with noise; {target.name!r} is a {target.kind} "
                "target. Pass epochs=0 to smooth it as it is, or train it with Gaussian noise "
                "augmentation in its own framework."
            )
        if p.epochs > 0 and len(data.x_train) == 0:
            raise DataError(
                f"Dataset {data.name!r} has no training rows; noise fine-tuning needs "
                "x_train/y_train (or pass epochs=0)."
            )
        spec = target.input_spec
        parts = [a for a in (data.x_train, data.x_test) if len(a)]
        reference = np.concatenate(parts) if parts else None
        base = BaseClassifier(target, _ID)  # also checks for floating-point inputs
        noise = GaussianNoise.from_spec(
            spec,
            p.sigma,
            units=p.units,
            reference=reference,
            device=base.device,
            dtype=base.dtype,
            who=_ID,
        )
        spec.check(data.x_test, what="test data")
        x_test = torch.from_numpy(np.ascontiguousarray(data.x_test)).to(base.device, base.dtype)
        y_test = torch.from_numpy(np.asarray(data.y_test, dtype=np.int64)).to(base.device)
        before = self._measure(target, base, noise, x_test, y_test, seed)
        seconds = 0.0
        hardened_base: Target = target
        if p.epochs > 0:
            assert isinstance(target, TorchTarget)
            spec.check(data.x_train, what="training data")
            try:
                module = copy.deepcopy(target.module)
            except Exception as err:  # some compiled/exported modules refuse deepcopy
                raise TargetError(
                    f"The module of {target.name!r} cannot be copied ({err}); load it as a "
                    "plain torch.nn.Module or TorchScript archive."
                ) from err
            x_train = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(
                base.device, base.dtype
            )
            y_train = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64)).to(base.device)
            started = time.perf_counter()
            cuda = [base.device.index or 0] if base.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(seed)
                _train(module, x_train, y_train, noise, p, seed)
            seconds = time.perf_counter() - started
            hardened_base = TorchTarget(
                module,
                input_spec=spec,
                classes=target.classes,
                name=target.name,
                device=target.device,
                batch_size=target.batch_size,
                embedding_layer=target.embedding_layer,
                module_factory=target.module_factory,
                trainer=target.trainer,
                train_options=target.train_options,
            )
        after = self._measure(hardened_base, base, noise, x_test, y_test, seed)
        smoothed = SmoothedTarget(
            hardened_base,
            sigma=p.sigma,
            n=p.n,
            alpha=p.alpha,
            units=p.units,
            reference=reference,
            batch_size=p.noise_batch_size,
            seed=seed,
            name=target.name,
        )
        n_test = len(data.y_test)
        changes: dict[str, Any] = {
            "sigma": p.sigma,
            "units": p.units,
            "noise": f"Gaussian, sigma {p.sigma:g} {noise.describe()}, on mutable features, "
            "clipped to the input bounds",
            "epochs": p.epochs,
            "lr": p.lr,
            "batch_size": p.batch_size,
            "seed": seed,
            "train_rows": len(data.x_train) if p.epochs else 0,
            "train_seconds": round(seconds, 3),
            "predict_n": p.n,
            "predict_alpha": p.alpha,
            "noise_batch_size": p.noise_batch_size,
            "test_rows": n_test,
            **{f"{k}_before": v for k, v in before.items()},
            **{f"{k}_after": v for k, v in after.items()},
        }
        trained = f"fine-tuned {p.epochs} epoch(s) with Gaussian noise, then " if p.epochs else ""
        notes = (
            f"Base model {trained}smoothed at sigma {p.sigma:g} ({p.units} units); PREDICT uses "
            f"{p.n} noisy copies at alpha {p.alpha:g}. Base test accuracy clean "
            f"{before['clean_accuracy']:.3f} -> {after['clean_accuracy']:.3f}, under noise "
            f"{before['noisy_accuracy']:.3f} -> {after['noisy_accuracy']:.3f} on {n_test} rows."
        )
        return RemedyResult(target=smoothed, changes=changes, notes=notes)

    @staticmethod
    def _measure(
        target: Target,
        base: BaseClassifier,
        noise: GaussianNoise,
        x: torch.Tensor,
        y: torch.Tensor,
        seed: int,
    ) -> dict[str, Any]:
        """Clean and one-noisy-copy test accuracy of a base model, with Wilson intervals.

        Torch modules are evaluated directly (no queries charged); other targets go
        through ``predict`` and pay one query per row.
        """
        classify: Callable[[torch.Tensor], torch.Tensor] = base
        if isinstance(target, TorchTarget):
            module = target.module

            def classify(t: torch.Tensor) -> torch.Tensor:
                out: torch.Tensor = module(t)
                return out.argmax(dim=1)

        clean, clean_ci = _accuracy(classify, None, x, y, seed)
        noisy, noisy_ci = _accuracy(classify, noise, x, y, seed)
        return {
            "clean_accuracy": round(clean, 4),
            "clean_accuracy_ci": clean_ci,
            "noisy_accuracy": round(noisy, 4),
            "noisy_accuracy_ci": noisy_ci,
        }
