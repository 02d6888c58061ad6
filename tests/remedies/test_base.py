"""Remedy.validated_params: one helper builds every remedy's parameters."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from bastion.data.dataset import Dataset
from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.probes.base import format_validation_error
from bastion.probes.context import ProbeContext
from bastion.remedies.adversarial_training import AdversarialTraining
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.remedies.input_restoration import InputRestoration, InputRestorationParams
from bastion.remedies.randomized_smoothing import RandomizedSmoothing
from bastion.remedies.safe_reserialisation import SafeReserialisation
from bastion.remedies.sign_artifact import SignArtifact, SignArtifactParams
from bastion.targets.base import Target

SECRET = "hunter2-do-not-echo"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eps: float = Field(0.1, gt=0)
    steps: int = 3


class _Demo(Remedy):
    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="remedy.demo", title="Demo", catalog=CatalogRefs(), verified_by=()
    )

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        raise NotImplementedError


def test_good_parameters_build_the_model_with_its_type() -> None:
    p = _Demo(eps=0.5).validated_params(_Params)
    assert isinstance(p, _Params) and (p.eps, p.steps) == (0.5, 3)
    p2 = InputRestoration(bits=8).validated_params(InputRestorationParams)
    assert (p2.bits, p2.median) == (8, 2)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"eps": -1}, "The 'eps' parameter of remedy.demo input should be greater than 0"),
        ({"epz": 1}, "remedy.demo has no parameter 'epz'"),
    ],
)
def test_bad_parameter_is_a_usage_error_naming_the_field_and_the_remedy(
    params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(UsageError) as err:
        _Demo(**params).validated_params(_Params)
    assert str(err.value).startswith(expected)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_every_problem_is_reported_in_one_message() -> None:
    with pytest.raises(UsageError) as err:
        _Demo(eps=0, steps="many").validated_params(_Params)
    assert "'eps'" in str(err.value) and "'steps'" in str(err.value)


def test_a_custom_formatter_receives_the_remedy_id() -> None:
    seen: list[str] = []

    def formatter(owner: str, err: Any) -> str:
        seen.append(owner)
        return "custom"

    with pytest.raises(UsageError, match="^custom$"):
        _Demo(eps=0).validated_params(_Params, formatter=formatter)
    assert seen == ["remedy.demo"]


@pytest.mark.parametrize(
    ("remedy", "field"),
    [
        (AdversarialTraining(eps=0), "eps"),
        (RandomizedSmoothing(sigma=-1), "sigma"),
        (SafeReserialisation(atol=-1), "atol"),
        (InputRestoration(bits=0), "bits"),
    ],
)
def test_each_remedy_names_its_id_and_the_field(remedy: Remedy, field: str) -> None:
    params = remedy.Params  # type: ignore[attr-defined]
    with pytest.raises(UsageError) as err:
        remedy.validated_params(params)
    assert f"The '{field}' parameter of {remedy.meta.id} " in str(err.value)


def test_sign_artifact_never_echoes_a_secret() -> None:
    # A passphrase given as a parameter: refused, value not repeated.
    with pytest.raises(UsageError, match="passphrase_env") as err:
        SignArtifact(private_key="k.pem", passphrase=SECRET).validated()
    assert SECRET not in str(err.value)
    # A secret in a field of the wrong type: the generic formatter would echo it ...
    bad = {"private_key": "k.pem", "passphrase_env": [SECRET]}
    generic = SignArtifact(**bad)
    with pytest.raises(UsageError) as echoed:
        generic.validated_params(SignArtifactParams, formatter=format_validation_error)
    assert SECRET in str(echoed.value)
    # ... sign_artifact's own formatter names the field but not the value.
    with pytest.raises(UsageError, match="'passphrase_env' parameter of supply_chain") as err:
        SignArtifact(**bad).validated()
    assert SECRET not in str(err.value)
    with pytest.raises(UsageError, match="needs the 'private_key' parameter"):
        SignArtifact().validated()
