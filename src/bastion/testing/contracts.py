"""Contract checks for plugins: probes, guards, remedies and target adapters.

Each ``check_*`` function inspects one plugin class and returns the problems it
finds, one sentence each (an empty list means the plugin keeps its contract). The
checks only read metadata and build parameter models; none of them runs a probe or
queries a model. :func:`assert_plugin_contracts` runs them over every plugin in a
:class:`~bastion.plugins.Registry` and fails with the full list, so a third-party
package can put one line in its test suite::

    from bastion.testing import assert_plugin_contracts

    def test_my_plugins_keep_bastions_contracts():
        assert_plugin_contracts()

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.probes.robustness.noise import NoiseRobustnessProbe
>>> check_probe(NoiseRobustnessProbe, load_catalog())
[]
>>> from bastion.targets import FakeTarget
>>> check_target_adapter(FakeTarget)
[]
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection, Iterable

from pydantic import ValidationError

from bastion.catalog import Catalog, load_catalog
from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Guard, GuardMeta
from bastion.plugins import Registry, default_registry
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.remedies.base import Remedy, RemedyMeta
from bastion.targets.base import Capability, Target

__all__ = [
    "assert_plugin_contracts",
    "check_guard",
    "check_probe",
    "check_remedy",
    "check_target_adapter",
    "plugin_contract_problems",
]

_ID = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_KIND = re.compile(r"[a-z][a-z0-9_]*")
# A citation: "et al.", a year, an arXiv id, a DOI or a link.
_CITATION = re.compile(r"\bet al\.|\b(19|20)\d\d\b|arxiv|\bdoi\b|https?://", re.IGNORECASE)
_NOT_AN_ATTACK = re.compile(r"not an attack", re.IGNORECASE)
_UNKNOWN_PARAM = "__bastion_contract_check_unknown_parameter__"

# Methods a target must define for each capability it declares (the Supports* protocols).
_CAPABILITY_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.LOGITS: ("logits",),
    Capability.GRADIENTS: ("forward",),
    Capability.EMBEDDINGS: ("embeddings",),
    Capability.TRAINING: ("train_copy",),
    Capability.ENDPOINT: ("send_raw",),
}


def _own_doc(cls: type) -> str:
    """The class's own docstring (not one inherited from a base class)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _check_id(label: str, value: object) -> list[str]:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return [
            f"{label} id {value!r} must be dotted lower case, 'family.name' "
            "(letters, digits, underscores)."
        ]
    return []


def _check_title(label: str, title: object) -> list[str]:
    if not isinstance(title, str) or not title.strip():
        return [f"{label} has no title; give it one line for tables and report headings."]
    if "\n" in title:
        return [f"{label} title must be one line."]
    return []


def _check_refs(label: str, refs: object, catalog: Catalog, *, required: bool) -> list[str]:
    if not isinstance(refs, CatalogRefs):
        return [f"{label} meta.catalog must be a CatalogRefs; got {type(refs).__name__}."]
    problems = []
    if required and not refs.all_ids():
        problems.append(
            f"{label} names no catalog id; list the OWASP, failure-mode, ATLAS or CWE ids "
            "it deals with in meta.catalog."
        )
    unknown = catalog.unknown_ids(refs)
    if unknown:
        problems.append(
            f"{label} names catalog id(s) {unknown} that are not in the catalog; run "
            "`bastion catalog` to list the ids."
        )
    misfiled = catalog.misfiled_ids(refs)
    if misfiled:
        problems.append(f"{label} files catalog ids under the wrong field: {misfiled}.")
    return problems


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


def check_probe(
    cls: type, catalog: Catalog, *, remedy_ids: Collection[str] | None = None
) -> list[str]:
    """Problems with a probe class; empty when it keeps the probe contract.

    Checks that ``cls`` is a concrete :class:`~bastion.probes.base.Probe` subclass
    with complete :class:`~bastion.probes.base.ProbeMeta` (dotted lower-case id,
    title, at least one catalog id, every id in the catalog and under the right
    field, valid knowledge, needs and cost), that ``Params`` is a
    :class:`~bastion.probes.base.ProbeParams` subclass whose defaults validate and
    which refuses an unknown parameter with :class:`~bastion.errors.UsageError`,
    and that the class docstring cites a paper or reference or says "Not an attack".

    Parameters
    ----------
    cls : type
        The probe class.
    catalog : Catalog
    remedy_ids : collection of str or None
        Ids of installed remedies; when given, every ``meta.remedies`` entry must be
        one of them or an ATLAS mitigation in the catalog.

    Returns
    -------
    list of str
        One sentence per problem.

    Examples
    --------
    >>> from bastion.catalog import load_catalog
    >>> from bastion.probes.exposure.output_granularity import OutputGranularityProbe
    >>> check_probe(OutputGranularityProbe, load_catalog())
    []
    """
    name = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        return [f"{name} is not a subclass of bastion.probes.Probe."]
    problems: list[str] = []
    if inspect.isabstract(cls):
        problems.append(f"Probe {name} is abstract; implement run(target, data, context).")
    meta = cls.__dict__.get("meta", getattr(cls, "meta", None))
    if not isinstance(meta, ProbeMeta):
        return [*problems, f"Probe {name} has no ProbeMeta in its 'meta' class attribute."]
    label = f"Probe {meta.id!r} ({name})"
    problems += _check_id(label, meta.id)
    problems += _check_title(label, meta.title)
    problems += _check_refs(label, meta.catalog, catalog, required=True)
    if not isinstance(meta.knowledge, Knowledge):
        problems.append(f"{label} meta.knowledge must be a Knowledge value.")
    if not isinstance(meta.cost, Cost):
        problems.append(f"{label} meta.cost must be a Cost value.")
    if not isinstance(meta.needs, frozenset) or not all(
        isinstance(c, Capability) for c in meta.needs
    ):
        problems.append(f"{label} meta.needs must be a frozenset of Capability values.")
    for remedy in meta.remedies:
        known = catalog.exists(remedy) or (remedy_ids is not None and remedy in remedy_ids)
        checkable = remedy.upper().startswith("AML.") or remedy_ids is not None
        if checkable and not known:
            problems.append(
                f"{label} recommends remedy {remedy!r}, which is neither an installed "
                "remedy nor a catalog mitigation."
            )
    problems += _check_params(label, cls)
    doc = _own_doc(cls)
    if not doc:
        problems.append(
            f"{label} has no docstring; say what it measures and cite its paper (or say "
            "'Not an attack')."
        )
    elif not (_CITATION.search(doc) or _NOT_AN_ATTACK.search(doc)):
        problems.append(
            f"{label} docstring cites no paper or reference; name the source (authors, "
            "year) or say 'Not an attack'."
        )
    return problems


def _check_params(label: str, cls: type[Probe]) -> list[str]:
    params_cls = getattr(cls, "Params", None)
    if not (isinstance(params_cls, type) and issubclass(params_cls, ProbeParams)):
        return [f"{label} Params must be a subclass of bastion.probes.ProbeParams."]
    problems: list[str] = []
    try:
        # pydantic does not validate defaults on its own: round-trip them to check.
        params_cls.model_validate(params_cls().model_dump())
    except ValidationError as err:
        problems.append(f"{label} default parameters do not validate: {err.errors()[0]['msg']}.")
    try:
        cls().validated_params()
    except UsageError as err:
        problems.append(f"{label} cannot be built with default parameters: {err}")
    except Exception as err:  # a broken constructor is exactly what this check reports
        problems.append(
            f"{label} raises {type(err).__name__} when built with default parameters: {err}."
        )
    try:
        cls(**{_UNKNOWN_PARAM: 1}).validated_params()
    except UsageError:
        pass
    except Exception as err:
        problems.append(
            f"{label} answers an unknown parameter with {type(err).__name__}, not UsageError."
        )
    else:
        problems.append(
            f"{label} accepts an unknown parameter; keep ProbeParams' extra='forbid' so typos fail."
        )
    return problems


def check_guard(cls: type, catalog: Catalog) -> list[str]:
    """Problems with a guard class; empty when it keeps the guard contract.

    Checks the :class:`~bastion.guards.base.GuardMeta` (dotted lower-case id, title,
    at least one catalog id, all ids known, integer order), that the class
    overrides ``before`` or ``after``, and that it has a docstring.

    Examples
    --------
    >>> from bastion.catalog import load_catalog
    >>> from bastion.guards.base import Guard
    >>> check_guard(Guard, load_catalog())[0]
    "Guard has no GuardMeta in its 'meta' class attribute."
    """
    name = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Guard)):
        return [f"{name} is not a subclass of bastion.guards.Guard."]
    meta = getattr(cls, "meta", None)
    if not isinstance(meta, GuardMeta):
        return [f"{name} has no GuardMeta in its 'meta' class attribute."]
    label = f"Guard {meta.id!r} ({name})"
    problems = _check_id(label, meta.id)
    problems += _check_title(label, meta.title)
    problems += _check_refs(label, meta.catalog, catalog, required=True)
    if isinstance(meta.order, bool) or not isinstance(meta.order, int):
        problems.append(f"{label} meta.order must be an integer.")
    if inspect.isabstract(cls):
        problems.append(f"{label} is abstract; implement its abstract methods.")
    if not (_overrides(cls, Guard, "before") or _overrides(cls, Guard, "after")):
        problems.append(f"{label} overrides neither before() nor after(), so it does nothing.")
    if not _own_doc(cls):
        problems.append(f"{label} has no docstring; say what it checks and what it decides.")
    return problems


def check_remedy(
    cls: type, catalog: Catalog, *, probe_ids: Collection[str] | None = None
) -> list[str]:
    """Problems with a remedy class; empty when it keeps the remedy contract.

    Checks the :class:`~bastion.remedies.base.RemedyMeta` (dotted lower-case id,
    title, known catalog ids, capability set) and that ``verified_by`` names at
    least one probe, each of them registered.

    Parameters
    ----------
    cls : type
    catalog : Catalog
    probe_ids : collection of str or None
        Registered probe ids; defaults to those of :func:`~bastion.plugins.default_registry`.

    Examples
    --------
    >>> from bastion.catalog import load_catalog
    >>> from bastion.remedies.base import Remedy
    >>> check_remedy(Remedy, load_catalog(), probe_ids=[])[0]
    "Remedy has no RemedyMeta in its 'meta' class attribute."
    """
    name = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Remedy)):
        return [f"{name} is not a subclass of bastion.remedies.Remedy."]
    meta = getattr(cls, "meta", None)
    if not isinstance(meta, RemedyMeta):
        return [f"{name} has no RemedyMeta in its 'meta' class attribute."]
    label = f"Remedy {meta.id!r} ({name})"
    problems = _check_id(label, meta.id)
    problems += _check_title(label, meta.title)
    problems += _check_refs(label, meta.catalog, catalog, required=False)
    if inspect.isabstract(cls):
        problems.append(f"{label} is abstract; implement apply(target, data, context).")
    if not isinstance(meta.needs, frozenset) or not all(
        isinstance(c, Capability) for c in meta.needs
    ):
        problems.append(f"{label} meta.needs must be a frozenset of Capability values.")
    known = set(default_registry().probes if probe_ids is None else probe_ids)
    if not meta.verified_by:
        problems.append(
            f"{label} names no probe in verified_by; name the probes that show it works."
        )
    missing = [p for p in meta.verified_by if p not in known]
    if missing:
        problems.append(
            f"{label} is verified by {missing}, which are not registered probes; known "
            f"probes: {sorted(known)}."
        )
    if not _own_doc(cls):
        problems.append(f"{label} has no docstring; say what it changes and cite its source.")
    return problems


def check_target_adapter(cls: type) -> list[str]:
    """Problems with a target adapter class; empty when it keeps the target contract.

    Checks that ``cls`` is a concrete :class:`~bastion.targets.base.Target`
    subclass with its own lower-case ``kind``, that ``provides`` is a frozenset of
    :class:`~bastion.targets.base.Capability` including labels, that every declared
    capability has the method its protocol needs (``logits``, ``forward``,
    ``embeddings``, ``train_copy``, ``send_raw``), and that it has a docstring.

    Examples
    --------
    >>> from bastion.targets.base import Target
    >>> check_target_adapter(Target)[0]
    "Target adapter Target declares no kind of its own; set kind = '<entry point name>'."
    """
    name = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        return [f"{name} is not a subclass of bastion.targets.Target."]
    label = f"Target adapter {name}"
    problems: list[str] = []
    kind = getattr(cls, "kind", None)
    if kind == Target.kind:
        problems.append(f"{label} declares no kind of its own; set kind = '<entry point name>'.")
    elif not isinstance(kind, str) or not _KIND.fullmatch(kind):
        problems.append(f"{label} kind {kind!r} must be a lower-case word.")
    if inspect.isabstract(cls):
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        problems.append(f"{label} is abstract; implement {', '.join(missing)}.")
    provides = getattr(cls, "provides", None)
    if not isinstance(provides, frozenset) or not all(isinstance(c, Capability) for c in provides):
        problems.append(f"{label} provides must be a frozenset of Capability values.")
    else:
        if Capability.LABELS not in provides:
            problems.append(f"{label} must provide labels; every target answers predict().")
        for capability in sorted(provides, key=str):
            for method in _CAPABILITY_METHODS.get(capability, ()):
                if not callable(getattr(cls, method, None)):
                    problems.append(
                        f"{label} declares {capability.value} but has no {method}() method."
                    )
    if not _own_doc(cls):
        problems.append(f"{label} has no docstring; say what models it wraps and how.")
    return problems


def _named(group: str, name: str, cls: type, attr: str) -> list[str]:
    """The entry-point name must equal the plugin's id (or kind, for targets)."""
    meta = getattr(cls, "meta", None)
    value = getattr(cls, "kind", None) if attr == "kind" else getattr(meta, "id", None)
    if value is not None and value != name:
        return [
            f"{group} entry point {name!r} loads a plugin whose {attr} is {value!r}; register "
            "it under its own name."
        ]
    return []


def plugin_contract_problems(
    registry: Registry | None = None, catalog: Catalog | None = None
) -> dict[str, list[str]]:
    """Every contract problem of every plugin, keyed ``"<group>:<name>"``.

    Only plugins with problems appear in the result.

    Examples
    --------
    >>> plugin_contract_problems(Registry())
    {}
    """
    reg = default_registry() if registry is None else registry
    cat = load_catalog() if catalog is None else catalog
    remedy_ids = set(reg.remedies)
    probe_ids = set(reg.probes)
    found: dict[str, list[str]] = {}

    def add(key: str, problems: Iterable[str]) -> None:
        listed = list(problems)
        if listed:
            found[key] = listed

    for name, probe in reg.probes.items():
        add(
            f"probes:{name}",
            [*check_probe(probe, cat, remedy_ids=remedy_ids), *_named("probes", name, probe, "id")],
        )
    for name, guard in reg.guards.items():
        add(f"guards:{name}", [*check_guard(guard, cat), *_named("guards", name, guard, "id")])
    for name, remedy in reg.remedies.items():
        add(
            f"remedies:{name}",
            [
                *check_remedy(remedy, cat, probe_ids=probe_ids),
                *_named("remedies", name, remedy, "id"),
            ],
        )
    for name, target in reg.targets.items():
        add(
            f"targets:{name}",
            [*check_target_adapter(target), *_named("targets", name, target, "kind")],
        )
    return found


def assert_plugin_contracts(
    registry: Registry | None = None, catalog: Catalog | None = None
) -> None:
    """Fail with every problem found when any registered plugin breaks its contract.

    Parameters
    ----------
    registry : Registry or None
        Plugins to check; defaults to every installed plugin.
    catalog : Catalog or None
        Catalog the ids must exist in; defaults to Bastion's own.

    Raises
    ------
    AssertionError
        Listing each plugin and its problems (an ``AssertionError`` so that test
        runners report it as a failed test).

    Examples
    --------
    >>> from bastion.plugins import Registry
    >>> from bastion.probes.robustness.noise import NoiseRobustnessProbe
    >>> assert_plugin_contracts(Registry(probes={"robustness.noise": NoiseRobustnessProbe}))
    """
    found = plugin_contract_problems(registry, catalog)
    if found:
        lines = [f"{len(found)} plugin(s) break Bastion's plugin contracts:"]
        for key, problems in found.items():
            lines.append(f"- {key}")
            lines.extend(f"    {p}" for p in problems)
        raise AssertionError("\n".join(lines))
