"""Every exception Bastion raises, in one place.

The tree is small on purpose. A caller that wants to handle *any* Bastion problem
catches :class:`BastionError`; the command line maps each family to its own exit
code so that a script can tell "the model is vulnerable" (exit 1) from "you gave me
something I could not use" (exit 2 and above).

==========================  =========  ==================================================
exception                   exit code  meaning
==========================  =========  ==================================================
``BastionError``            2          base class; any user-facing problem
``UsageError``              2          a bad argument, option or parameter value
``ConfigError``             3          an assessment config that does not validate
``DataError``               4          a dataset that cannot be read or does not fit
``TargetError``             5          a model that cannot be loaded or queried
``MissingCapabilityError``  5          a probe asked a target for a power it lacks
``QueryBudgetExceeded``     5          the target's query budget is spent
``StoreError``              6          the results store cannot be opened or written
``CatalogError``            7          an unknown catalog id or a broken catalog file
==========================  =========  ==================================================

Exit code 1 is reserved for "the gate failed: findings at or above ``fail_on``", and
exit code 130 for an interrupted run (it can be resumed).

Examples
--------
>>> from bastion.errors import ConfigError, BastionError
>>> issubclass(ConfigError, BastionError)
True
>>> ConfigError("seed must be an integer").exit_code
3
"""

from __future__ import annotations

__all__ = [
    "BastionError",
    "CatalogError",
    "ConfigError",
    "DataError",
    "MissingCapabilityError",
    "QueryBudgetExceeded",
    "StoreError",
    "TargetError",
    "UsageError",
]


class BastionError(Exception):
    """Base class of every error Bastion raises on purpose.

    The message is one sentence for a human: what was wrong and what to do.
    """

    exit_code: int = 2


class UsageError(BastionError, ValueError):
    """An argument, option or parameter value is not acceptable."""

    exit_code = 2


class ConfigError(BastionError):
    """An assessment config file is missing, unreadable or does not validate."""

    exit_code = 3


class DataError(BastionError):
    """A dataset cannot be read, or its shape, labels or values do not fit."""

    exit_code = 4


class TargetError(BastionError):
    """A model cannot be loaded, or querying it failed."""

    exit_code = 5


class MissingCapabilityError(TargetError):
    """A probe or remedy asked a target for a capability the adapter does not have."""

    exit_code = 5


class QueryBudgetExceeded(TargetError):
    """The target's query budget would be exceeded by the next call."""

    exit_code = 5


class StoreError(BastionError):
    """The results store cannot be opened, read or written."""

    exit_code = 6


class CatalogError(BastionError):
    """An id is not in the catalog, or a catalog data file is malformed."""

    exit_code = 7
