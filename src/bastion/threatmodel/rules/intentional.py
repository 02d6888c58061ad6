"""Applicability of the intentional failure modes FM1-FM11.

Each rule states the conditions under which an attacker has the access the failure
mode needs ("Failure Modes in Machine Learning", Microsoft and Berkman Klein, 2019),
in terms of :class:`~bastion.threatmodel.facts.Facts`.

Examples
--------
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> f = Facts(minimal_description())
>>> fm1(f).applies, fm9(f).applies
(True, False)
>>> fm9(f).reasons[0].text
'the model was trained in-house from scratch'
"""

from __future__ import annotations

from bastion.threatmodel.facts import Facts
from bastion.threatmodel.results import Reason
from bastion.threatmodel.rules.base import Applicability, Rule, always, when_all, when_any

__all__ = ["INTENTIONAL"]


def fm1(f: Facts) -> Applicability:
    """Perturbation attack: someone who may be an attacker shapes the inputs."""
    result = when_all(f.any_inputs)
    if result.applies:
        return Applicability(
            True, [*result.reasons, *(x.reason for x in (f.high_stakes, f.rich_outputs) if x)]
        )
    note = Reason(text="an attacker would first have to compromise those systems (see FM11)")
    return Applicability(False, [*result.reasons, note])


def fm2(f: Facts) -> Applicability:
    """Poisoning: training data, labels or feedback come from where an attacker can reach."""
    result = when_any(f.untrusted_data, f.feedback_trains)
    if result.applies:
        return result
    note = Reason(text="poisoning would need an insider or a breach of the data store")
    return Applicability(False, [*result.reasons, note])


def fm3(f: Facts) -> Applicability:
    """Model inversion: private training data and query access by the untrusted."""
    result = when_all(f.private_data, f.untrusted_queries)
    if result.applies and f.rich_outputs:
        return Applicability(True, [*result.reasons, f.rich_outputs.reason])
    return result


def fm4(f: Facts) -> Applicability:
    """Membership inference: as inversion; the answer itself is the leak."""
    return fm3(f)


def fm5(f: Facts) -> Applicability:
    """Model stealing: outsiders can query the model or obtain its file."""
    result = when_any(f.outside_queries, f.white_box)
    if result.applies and f.rich_outputs:
        return Applicability(True, [*result.reasons, f.rich_outputs.reason])
    return result


def fm6(f: Facts) -> Applicability:
    """Reprogramming: a neural network whose queries outsiders control."""
    kind = f.desc.model.type
    why = (
        "the model is a neural network, whose inputs can be crafted to make it compute another task"
        if kind == "neural_network"
        else f"the model is a {kind.replace('_', ' ')}; adversarial reprogramming is shown "
        "for neural networks"
    )
    nn = f.fact(kind == "neural_network", why, "model.type")
    return when_all(nn, f.outside_queries)


def fm7(f: Facts) -> Applicability:
    """Adversarial example in the physical domain: sensor inputs outsiders can stage."""
    physical = f.fact(
        f.desc.inputs.physical_world,
        "inputs are captured from the physical world by a camera, scanner or sensor"
        if f.desc.inputs.physical_world
        else "inputs are digital; nothing is captured from the physical world",
        "inputs.physical_world",
    )
    return when_all(physical, f.outside_inputs)


def fm8(f: Facts) -> Applicability:
    """Malicious ML provider: a third party hosts or trains a model on private data."""
    d = f.desc
    third = d.access.hosted_by != "self" or d.model.origin == "vendor_supplied"
    provider = f.fact(
        third,
        f"a third party ({d.access.hosted_by}, origin {d.model.origin}) hosts or trained it"
        if third
        else "the organisation hosts and trains the model itself",
        "access.hosted_by",
        "model.origin",
    )
    return when_all(provider, f.private_data)


def fm9(f: Facts) -> Applicability:
    """Supply chain: the model, or what it is built from, comes from outside."""
    return when_any(f.external_model)


def fm10(f: Facts) -> Applicability:
    """Backdoor: whoever shapes training (a provider, a data source) can plant a trigger."""
    return when_any(f.external_model, f.untrusted_data, f.feedback_trains)


def fm11(f: Facts) -> Applicability:
    """Exploiting software dependencies: every system runs on software."""
    framework = Reason(
        text=f"the system runs on {f.desc.model.framework.replace('_', '-')} and its "
        "dependencies, whose bugs an attacker can exploit without touching the model",
        fields=f.refs("model.framework"),
    )
    return always(framework, f.code_on_load)


INTENTIONAL: dict[str, Rule] = {
    "FM1": fm1,
    "FM2": fm2,
    "FM3": fm3,
    "FM4": fm4,
    "FM5": fm5,
    "FM6": fm6,
    "FM7": fm7,
    "FM8": fm8,
    "FM9": fm9,
    "FM10": fm10,
    "FM11": fm11,
}
