"""One budget-unit rule for every evasion probe and remedy (``units``: auto, raw, range)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.units import BudgetUnits
from bastion.data import Dataset
from bastion.errors import UsageError
from bastion.findings import Finding
from bastion.probes import ProbeContext
from bastion.probes.evasion.auto import AutoAttackProbe
from bastion.probes.evasion.gradient import PGDProbe
from bastion.probes.evasion.square import SquareProbe
from bastion.probes.evasion.tabular import TabularEvasionProbe
from bastion.remedies.adversarial_training import AdversarialTraining
from bastion.targets import InputSpec
from bastion.targets.torch_target import TorchTarget
from tests.attacks.whitebox_models import digits, digits_target, one_thread, tabular_target
from tests.attacks.whitebox_models import tabular as tabular_data

PIXELS = InputSpec(shape=(1, 8, 8), lower=0.0, upper=255.0)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


class Over255(torch.nn.Module):
    """The [0, 1] CNN with the ``/255`` folded in: a model of pixels in [0, 255]."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x / 255.0)
        return out


@cache
def _pixels() -> tuple[Dataset, torch.nn.Module]:
    data, cnn = digits()
    scaled = replace(data, x_train=data.x_train * 255.0, x_test=data.x_test * 255.0)
    return scaled, Over255(cnn)


def _pixel_target() -> TorchTarget:
    data, model = _pixels()
    return TorchTarget(model, input_spec=PIXELS, classes=list(data.classes), name="digits-255")


def _value(f: Finding, name: str) -> float:
    m = f.metric(name)
    assert m is not None, name
    return float(m.value)  # type: ignore[arg-type]


def _units(f: Finding) -> dict[str, object]:
    found = [e.data for e in f.evidence if e.data and "units" in e.data]
    assert len(found) == 1
    return found[0]


def test_a_255_image_model_at_eps_8_matches_its_01_twin_at_8_over_255() -> None:
    data01, _ = digits()
    data255, _ = _pixels()
    common = {"n_samples": 60, "steps": 10, "sanity_samples": 0}
    [raw] = PGDProbe(budgets=[8.0], **common).run(_pixel_target(), data255, ProbeContext(seed=3))
    [twin] = PGDProbe(budgets=[8 / 255], **common).run(
        digits_target(), data01, ProbeContext(seed=3)
    )
    [frac] = PGDProbe(budgets=[8 / 255], units="range", **common).run(
        _pixel_target(), data255, ProbeContext(seed=3)
    )
    robust = _value(raw, "robust_accuracy@8")
    assert robust == pytest.approx(_value(twin, f"robust_accuracy@{8 / 255:g}"), abs=1 / 60 + 1e-9)
    assert robust == pytest.approx(_value(frac, f"robust_accuracy@{8 / 255:g}"), abs=1 / 60 + 1e-9)
    assert robust < _value(raw, "clean_accuracy")  # the budget is a real one, not 8/255 of a level
    assert "raw units, pixels in [0, 255]" in raw.summary
    assert _units(raw) == {
        "units": "raw",
        "requested": "auto",
        "shared_range": [0.0, 255.0],
        "meaning": "raw units, pixels in [0, 255]",
    }
    assert _units(frac)["units"] == "range" and "fractions of each" in frac.summary
    assert raw.series[0].x_label == "L∞ budget (raw units, pixels in [0, 255])"


def test_black_box_and_white_box_read_budgets_the_same_way() -> None:
    data01, _ = digits()
    data255, _ = _pixels()
    probe = {"n_samples": 20, "n_queries": 60}
    [raw] = SquareProbe(budgets=[20.0], **probe).run(_pixel_target(), data255, ProbeContext(seed=1))
    [twin] = SquareProbe(budgets=[20 / 255], **probe).run(
        digits_target(), data01, ProbeContext(seed=1)
    )
    assert _value(raw, "robust_accuracy@20") == pytest.approx(
        _value(twin, f"robust_accuracy@{20 / 255:g}"), abs=0.05 + 1e-9
    )
    assert _units(raw)["units"] == "raw" and "pixels in [0, 255]" in raw.summary


def test_defaults_are_fractions_of_the_shared_range() -> None:
    units = Domain.from_spec(PIXELS).units
    assert PGDProbe().validated_params().resolved_budgets(units)[-1] == pytest.approx(76.5)  # type: ignore[attr-defined]
    assert AutoAttackProbe().validated_params().resolved_budgets(units) == [25.5]  # type: ignore[attr-defined]
    assert SquareProbe().resolved_budgets(units) == pytest.approx([12.75, 25.5, 51.0])


def test_tabular_data_with_mixed_ranges_reads_fractions() -> None:
    data, _, spec = tabular_data()
    dom = Domain.from_spec(spec, reference=data.x_test)
    lo, hi = spec.bounds()
    n_mutable = int(dom.mutable.sum())
    assert dom.units.kind == "range" and dom.reach == pytest.approx((1.0, np.sqrt(n_mutable)))
    assert dom.scale.numpy() == pytest.approx((hi - lo).astype(np.float32))
    [f] = PGDProbe(n_samples=30, budgets=[0.05], tolerance_budget=0.05, steps=5).run(
        tabular_target(), data, ProbeContext(seed=0)
    )
    assert _units(f)["units"] == "range" and "fractions of each feature's range" in f.summary


def test_explicit_units_override_auto() -> None:
    mixed = InputSpec(shape=(2,), lower=[0.0, 0.0], upper=[1.0, 100.0])
    raw = Domain.from_spec(mixed, units="raw")
    assert raw.units.kind == "raw" and raw.scale.tolist() == [1.0, 1.0]
    assert raw.reach == pytest.approx((100.0, np.hypot(1.0, 100.0)))
    assert raw.units.describe() == "raw units of each feature"
    fractions = Domain.from_spec(PIXELS, units="range")
    assert fractions.units.kind == "range" and float(fractions.scale.max()) == 255.0
    assert not fractions.simple and Domain.from_spec(PIXELS).simple
    one_range = InputSpec(shape=(3,), lower=0.0, upper=10.0)
    assert BudgetUnits.resolve(one_range).describe() == "raw units, every feature in [0, 10]"
    unbounded = InputSpec(shape=(2,), lower=0.0)  # no finite shared range: fractions
    assert BudgetUnits.resolve(unbounded).kind == "range"


def test_bad_combinations_are_one_sentence_usage_errors() -> None:
    data255, _ = _pixels()
    target = _pixel_target()
    with pytest.raises(
        UsageError, match="L∞ budget of 300 \\(raw units, pixels in \\[0, 255\\]\\)"
    ):
        PGDProbe(budgets=[8.0, 300.0], n_samples=10).run(target, data255, ProbeContext())
    with pytest.raises(UsageError, match="at or below tolerance_budget"):
        PGDProbe(budgets=[30.0], n_samples=10).run(target, data255, ProbeContext())  # tol 25.5
    assert target.queries_used == 0
    with pytest.raises(UsageError, match="must lie in \\(0, 1\\]"):
        PGDProbe(budgets=[8.0], units="range").validated_params()
    with pytest.raises(UsageError, match="'units'"):
        SquareProbe(units="grey levels").validated_params()
    data, _, _ = tabular_data()
    with pytest.raises(UsageError, match="no default in raw units"):
        PGDProbe(units="raw", n_samples=10).run(tabular_target(), data, ProbeContext())
    with pytest.raises(UsageError, match="no default in raw units"):
        SquareProbe(units="raw", n_samples=5).run(tabular_target(), data, ProbeContext())
    with pytest.raises(UsageError, match="must lie in \\(0, 1\\]"):
        TabularEvasionProbe(budgets=[2.0], units="range").validated_params()
    with pytest.raises(UsageError, match="L∞ budget of 2 \\(fractions"):
        TabularEvasionProbe(budgets=[2.0]).run(tabular_target(), data, ProbeContext())
    with pytest.raises(UsageError, match="'eps' parameter of evasion.adversarial_training"):
        AdversarialTraining(eps=300.0).apply(target, data255, ProbeContext())


def test_adversarial_training_reads_eps_with_the_same_rule() -> None:
    data255, _ = _pixels()
    small = replace(data255, x_train=data255.x_train[:64], y_train=data255.y_train[:64])
    module = Over255(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    target = TorchTarget(module, input_spec=PIXELS, classes=list(small.classes))
    r = AdversarialTraining(epochs=1, steps=1).apply(target, small, ProbeContext(seed=0))
    assert r.changes["eps"] == pytest.approx(25.5) and r.changes["units"] == "raw"
    assert "L∞ 25.5 (raw units, pixels in [0, 255])" in r.notes
    explicit = AdversarialTraining(epochs=1, steps=1, eps=0.1, units="range")
    assert explicit.apply(target, small, ProbeContext(seed=0)).changes["eps"] == 0.1
