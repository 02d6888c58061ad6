"""Every built-in guard keeps the guard contract and registers under its own id."""

from __future__ import annotations

import pytest

from bastion.catalog import load_catalog
from bastion.guards.abstention import AbstentionGuard
from bastion.guards.auth import AuthGuard
from bastion.guards.base import Guard
from bastion.guards.drift import DriftGuard
from bastion.guards.extraction import ExtractionMonitorGuard
from bastion.guards.obfuscation import ObfuscationGuard
from bastion.guards.ood import OODGuard
from bastion.guards.ratelimit import RateLimitGuard
from bastion.guards.signing import OutputSigner
from bastion.guards.validation import InputValidationGuard
from bastion.plugins import Registry
from bastion.testing import check_guard, plugin_contract_problems

GUARDS: list[type[Guard]] = [
    AuthGuard,
    RateLimitGuard,
    InputValidationGuard,
    OODGuard,
    DriftGuard,
    ExtractionMonitorGuard,
    AbstentionGuard,
    ObfuscationGuard,
    OutputSigner,
]


@pytest.mark.parametrize("cls", GUARDS, ids=lambda c: c.meta.id)
def test_guard_keeps_contract(cls: type[Guard]) -> None:
    assert check_guard(cls, load_catalog()) == []


def test_registry_with_all_guards_has_no_problems() -> None:
    registry = Registry().with_plugins(guards={cls.meta.id: cls for cls in GUARDS})
    assert plugin_contract_problems(registry) == {}


def test_ids_unique_and_orders_put_auth_first_and_signing_last() -> None:
    ids = [cls.meta.id for cls in GUARDS]
    assert len(set(ids)) == len(ids)
    orders = {cls.meta.id: cls.meta.order for cls in GUARDS}
    assert orders["access.authentication"] == min(orders.values())
    assert orders["output.signature"] == max(orders.values())
    assert orders["output.abstention"] < orders["output.obfuscation"] < orders["output.signature"]
