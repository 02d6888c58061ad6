"""Building guards by id: the one-line way to add any registered guard to a pipeline.

Every guard class registered under the ``bastion.guards`` entry-point group — the
built-in ones and those of other packages, such as adversarial-input detectors —
can be built from its id and keyword parameters, in code or from a config file::

    guards = build_guards([
        {"id": "input.validation", "spec": target.input_spec},
        {"id": "mycompany.squeeze_detector", "threshold": 0.05},
    ])

Guards whose constructor needs objects (a key store, a fitted detector) take them as
parameters like any other; a gateway config resolves those before calling this.

Examples
--------
>>> from bastion.plugins import Registry
>>> from bastion.guards.obfuscation import ObfuscationGuard, ObfuscationPolicy
>>> reg = Registry(guards={"output.obfuscation": ObfuscationGuard})
>>> guard = build_guard({"id": "output.obfuscation", "default": ObfuscationPolicy(top_k=1)},
...                     registry=reg)
>>> guard.default.top_k
1
>>> build_guard("no.such_guard", registry=reg)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.errors.UsageError: No guard 'no.such_guard' is installed; known guards: output.obfuscation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bastion.errors import BastionError, UsageError
from bastion.guards.base import Guard
from bastion.plugins import Registry, default_registry

__all__ = ["GuardSpec", "build_guard", "build_guards"]

GuardSpec = str | Mapping[str, Any]


def build_guard(spec: GuardSpec, *, registry: Registry | None = None) -> Guard:
    """Instantiate the registered guard named by ``spec`` (an id, or ``{"id": ..., **params}``)."""
    if isinstance(spec, str):
        guard_id, params = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("id"), str):
        guard_id = spec["id"]
        params = {k: v for k, v in spec.items() if k != "id"}
    else:
        raise UsageError(
            f"A guard spec is an id or a mapping with an 'id' key; got {type(spec).__name__}."
        )
    reg = registry if registry is not None else default_registry()
    cls = reg.guards.get(guard_id)
    if cls is None:
        known = ", ".join(sorted(reg.guards)) or "none"
        raise UsageError(f"No guard {guard_id!r} is installed; known guards: {known}.")
    try:
        return cls(**params)
    except BastionError:
        raise
    except TypeError as err:
        raise UsageError(
            f"Guard {guard_id!r} cannot be built with {sorted(params)}: {err}."
        ) from err


def build_guards(specs: Iterable[GuardSpec], *, registry: Registry | None = None) -> list[Guard]:
    """Instantiate several guards; see :func:`build_guard`."""
    return [build_guard(spec, registry=registry) for spec in specs]
