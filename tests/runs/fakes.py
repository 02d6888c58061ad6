"""Small probes and stores the runs tests share."""

from __future__ import annotations

import numpy as np

from bastion.data.dataset import Dataset
from bastion.errors import DataError
from bastion.findings import CatalogRefs, Finding, Severity, Status
from bastion.probes.base import Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.targets import Capability, FakeTarget, Target


class CountParams(ProbeParams):
    threshold: float = 0.5


class AccuracyProbe(Probe):
    """Test probe: vulnerable when accuracy is below ``threshold``. Not an attack."""

    meta = ProbeMeta(
        id="test.accuracy",
        title="Accuracy",
        catalog=CatalogRefs(failure_modes=["FM17"]),
    )
    Params = CountParams
    calls: list[str] = []

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        type(self).calls.append(target.name)
        params = self.validated_params()
        acc = float((target.predict(data.x_test) == data.y_test).mean())
        vulnerable = acc < params.threshold
        return [
            self.finding(
                target,
                context,
                status=Status.VULNERABLE if vulnerable else Status.NOT_VULNERABLE,
                severity=Severity.IMPORTANT,
                summary=f"accuracy {acc:.2f}",
            )
        ]


class GradientProbe(AccuracyProbe):
    """Test probe that needs gradients. Not an attack."""

    meta = ProbeMeta(
        id="test.gradient",
        title="Needs gradients",
        catalog=CatalogRefs(owasp=["ML01"]),
        needs=frozenset({Capability.GRADIENTS}),
        alternative="test.accuracy",
    )


class BrokenProbe(AccuracyProbe):
    """Test probe that fails. Not an attack."""

    meta = ProbeMeta(id="test.broken", title="Broken", catalog=CatalogRefs(owasp=["ML01"]))

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        raise DataError("the data went missing")


class CrashingProbe(AccuracyProbe):
    """Test probe with a bug. Not an attack."""

    meta = ProbeMeta(id="test.crash", title="Crash", catalog=CatalogRefs(owasp=["ML01"]))

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        return [][0]  # type: ignore[no-any-return]


class InterruptingProbe(AccuracyProbe):
    """Test probe that simulates Ctrl-C. Not an attack."""

    meta = ProbeMeta(id="test.interrupt", title="Interrupt", catalog=CatalogRefs(owasp=["ML01"]))
    armed = True

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        if type(self).armed:
            raise KeyboardInterrupt
        return super().run(target, data, context)


def toy_dataset(n: int = 40, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return Dataset(name="toy", x_train=x, y_train=y, x_test=x, y_test=y, classes=["lo", "hi"])


def threshold_target(name: str = "thr") -> FakeTarget:
    from bastion.targets import InputSpec

    def score(x: np.ndarray) -> np.ndarray:
        p = np.clip(x[:, 0], 0, 1)
        return np.stack([1 - p, p], axis=1)

    return FakeTarget(
        score,
        input_spec=InputSpec(shape=(3,), lower=0.0, upper=1.0),
        classes=["lo", "hi"],
        name=name,
    )


class MemoryStore:
    """Stands in for bastion.store in executor tests."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, list[Finding]]] = []

    def record_probe(self, run_id: str, planned_key: str, findings: list[Finding]) -> None:
        self.recorded.append((run_id, planned_key, findings))
