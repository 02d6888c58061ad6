"""Applicability of the unintentional failure modes FM12-FM17.

Reward hacking (FM12) and side effects (FM13) are failures of reinforcement-learning
agents; for any other system they are not applicable, and the reason says so. The
others concern every deployed model to a degree; the reasons name what makes them
sharper for this system.

Examples
--------
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> r = fm12(Facts(minimal_description()))
>>> r.applies, r.reasons[0].text[:29]
(False, 'model.learning is supervised:')
"""

from __future__ import annotations

from bastion.threatmodel.facts import Facts
from bastion.threatmodel.results import Reason
from bastion.threatmodel.rules.base import Applicability, Rule, always

__all__ = ["UNINTENTIONAL"]

_PERCEPTUAL = ("image", "audio", "video", "time_series", "multimodal")
_DISCRIMINATIVE = ("classification", "detection", "ranking", "regression")


def _rl(f: Facts, failure: str) -> Applicability:
    learning = f.desc.model.learning
    if learning == "reinforcement":
        return Applicability(
            True,
            [
                Reason(
                    text=f"the model is a reinforcement-learning agent, so {failure}",
                    fields=f.refs("model.learning"),
                )
            ],
        )
    return Applicability(
        False,
        [
            Reason(
                text=f"model.learning is {learning}: the system is not a reinforcement-"
                f"learning agent, and {failure} only for agents that act to earn a reward",
                fields=f.refs("model.learning"),
            )
        ],
    )


def fm12(f: Facts) -> Applicability:
    """Reward hacking: RL agents only."""
    return _rl(f, "reward hacking arises")


def fm13(f: Facts) -> Applicability:
    """Side effects: RL agents only."""
    return _rl(f, "side effects on its environment arise")


def fm14(f: Facts) -> Applicability:
    """Distributional shift: every deployed model; worse without retraining."""
    retraining = f.desc.feedback.retraining
    base = Reason(
        text="the data a deployed model meets drifts away from its training data"
        + (", and this model is never retrained" if retraining == "never" else ""),
        fields=f.refs("feedback.retraining"),
    )
    return always(base, f.outside_inputs, f.high_stakes)


def fm15(f: Facts) -> Applicability:
    """Natural adversarial examples: discriminative models on natural inputs."""
    task = f.desc.model.task
    if task in _DISCRIMINATIVE:
        reason = Reason(
            text=f"a {task} model meets hard, naturally occurring inputs it gets wrong",
            fields=f.refs("model.task"),
        )
        return always(reason, f.high_stakes)
    reason = Reason(
        text=f"model.task is {task}: natural adversarial examples are defined for "
        "discriminative models (classification, detection, ranking, regression)",
        fields=f.refs("model.task"),
    )
    return Applicability(False, [reason])


def fm16(f: Facts) -> Applicability:
    """Common corruption: sensor-like inputs (noise, blur, tilt, zoom, brightness)."""
    inputs = f.desc.inputs
    if inputs.modality in _PERCEPTUAL or inputs.physical_world:
        why = (
            "inputs are captured from the physical world"
            if inputs.physical_world
            else f"inputs are {inputs.modality.replace('_', ' ')} signals"
        )
        reason = Reason(
            text=f"{why}, which noise, blur, tilt or other everyday corruptions degrade",
            fields=f.refs("inputs.modality", "inputs.physical_world"),
        )
        return always(reason, f.high_stakes)
    reason = Reason(
        text=f"inputs are {inputs.modality.replace('_', ' ')} records, not sensor signals: "
        "corruptions such as noise, blur or tilt do not arise (drift in the records is FM14)",
        fields=f.refs("inputs.modality", "inputs.physical_world"),
    )
    return Applicability(False, [reason])


def fm17(f: Facts) -> Applicability:
    """Incomplete testing: every deployed model; the stakes decide how much it matters."""
    task = f.desc.model.task
    base = Reason(
        text=f"a {task} model tested only on held-out data meets conditions in operation "
        "that no test covered",
        fields=f.refs("model.task"),
    )
    return always(base, f.high_stakes)


UNINTENTIONAL: dict[str, Rule] = {
    "FM12": fm12,
    "FM13": fm13,
    "FM14": fm14,
    "FM15": fm15,
    "FM16": fm16,
    "FM17": fm17,
}
