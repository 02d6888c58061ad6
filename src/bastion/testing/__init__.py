"""Test support for Bastion and its plugins: contract checks for every plugin kind.

A plugin package checks itself with one test::

    from bastion.testing import assert_plugin_contracts

    def test_plugins_keep_bastions_contracts():
        assert_plugin_contracts()

Examples
--------
>>> from bastion.testing import check_target_adapter
>>> from bastion.targets import FakeTarget
>>> check_target_adapter(FakeTarget)
[]
"""

from bastion.testing.contracts import (
    assert_plugin_contracts,
    check_guard,
    check_probe,
    check_remedy,
    check_target_adapter,
    plugin_contract_problems,
)

__all__ = [
    "assert_plugin_contracts",
    "check_guard",
    "check_probe",
    "check_remedy",
    "check_target_adapter",
    "plugin_contract_problems",
]
