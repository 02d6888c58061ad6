"""Applicability of the OWASP ML Top 10 (2023) entries ML01-ML10.

Where an OWASP entry and a failure mode describe the same attack (ML01 and FM1/FM7,
ML05 and FM5, ...) the rules agree by construction: they read the same facts.

Examples
--------
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> f = Facts(minimal_description())
>>> [k for k, rule in OWASP.items() if rule(f).applies]
['ML01', 'ML05', 'ML06', 'ML10']
"""

from __future__ import annotations

from bastion.threatmodel.facts import Facts
from bastion.threatmodel.results import Reason
from bastion.threatmodel.rules import intentional as fm
from bastion.threatmodel.rules.base import Applicability, Rule, always, when_any

__all__ = ["OWASP"]


def _union(*results: Applicability) -> Applicability:
    """Applies when any part applies; reasons of the applying parts (or all), each set of
    cited fields once."""
    chosen = [r for r in results if r.applies] or list(results)
    reasons: list[Reason] = []
    seen: set[tuple[str, ...]] = set()
    for r in chosen:
        for x in r.reasons:
            key = tuple(f.path for f in x.fields) or (x.text,)
            if key not in seen:
                seen.add(key)
                reasons.append(x)
    return Applicability(any(r.applies for r in results), reasons)


def ml01(f: Facts) -> Applicability:
    """Adversarial attack: crafted inputs, digital (FM1) or physical (FM7)."""
    return _union(fm.fm1(f), fm.fm7(f))


def ml02(f: Facts) -> Applicability:
    """Data poisoning: as FM2."""
    return fm.fm2(f)


def ml03(f: Facts) -> Applicability:
    """Model inversion: through queries (FM3) or by the model's provider (FM8)."""
    return _union(fm.fm3(f), fm.fm8(f))


def ml04(f: Facts) -> Applicability:
    """Membership inference: as FM4."""
    return fm.fm4(f)


def ml05(f: Facts) -> Applicability:
    """Model stealing: as FM5."""
    return fm.fm5(f)


def ml06(f: Facts) -> Applicability:
    """Corrupted packages: every system installs packages; code-on-load files make it worse."""
    packages = Reason(
        text=f"the system installs {f.desc.model.framework.replace('_', '-')} and other "
        "packages, any of which can be replaced by a tampered copy",
        fields=f.refs("model.framework"),
    )
    return always(packages, f.code_on_load, f.external_model)


def ml07(f: Facts) -> Applicability:
    """Transfer learning attack: the model starts from someone else's pre-trained model."""
    origin = f.desc.model.origin
    pretrained = f.fact(
        origin in ("fine_tuned", "downloaded"),
        f.external_model.reason.text
        if origin in ("fine_tuned", "downloaded")
        else f"model.origin is {origin}: no pre-trained model is carried over into it",
        "model.origin",
    )
    return when_any(pretrained)


def ml08(f: Facts) -> Applicability:
    """Model skewing: a feedback loop retrains the model."""
    result = when_any(f.feedback_trains)
    if result.applies:
        return result
    note = Reason(text="without a feedback loop there is nothing to skew after deployment")
    return Applicability(False, [*result.reasons, note])


def ml09(f: Facts) -> Applicability:
    """Output integrity: answers cross other systems before they are acted on."""
    result = when_any(f.outputs_travel)
    if result.applies and f.high_stakes:
        return Applicability(True, [*result.reasons, f.high_stakes.reason])
    return result


def ml10(f: Facts) -> Applicability:
    """Neural net reprogramming: parameters someone could change, or reprogramming by queries."""
    return _union(fm.fm6(f), when_any(f.mutable_parameters))


OWASP: dict[str, Rule] = {
    "ML01": ml01,
    "ML02": ml02,
    "ML03": ml03,
    "ML04": ml04,
    "ML05": ml05,
    "ML06": ml06,
    "ML07": ml07,
    "ML08": ml08,
    "ML09": ml09,
    "ML10": ml10,
}
