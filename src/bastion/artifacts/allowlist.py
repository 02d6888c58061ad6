"""The allowlist: the one decision function the scanner and :func:`safe_load` share.

A pickle can name any ``(module, qualname)`` and the loader will import it. Bastion
denies by default and allows only what was reviewed:

1. **Syntax.** The module must be a dotted identifier and the name a plain identifier.
   A dotted name (``"getattr.__self__"``, ``"system.__globals__"``) is an attribute walk
   and is *never* allowed, whatever the module.
2. **Exact entries** per ecosystem (:data:`~bastion.artifacts.allow_data.ECOSYSTEMS`):
   builtins' value types, ``collections``, NumPy array/scalar/random reconstruction,
   PyTorch tensor/storage rebuild, joblib's array wrapper, a few reviewed sklearn
   helper functions.
3. **The scikit-learn class rule.** Any *class* defined under ``sklearn.*`` is allowed:
   estimators and their fitted helpers (trees, losses, binners) are classes whose
   constructors and ``__setstate__`` only store values. Since the scanner never
   imports, a class is recognised by PEP 8 naming (``CapWords``, which scikit-learn
   follows); functions (``lowercase``) are never allowed by the rule, so helpers such as
   ``sklearn.utils.*`` functions cannot be used as gadgets. Test helpers, vendored code
   and dataset downloaders are excluded
   (:data:`~bastion.artifacts.allow_data.SKLEARN_EXCLUDED_MODULES`).
4. **Reviewed exceptions** given by the user (``--allow module:qualname``), recorded in
   the report. They cannot override rule 1.

Names are resolved the way the loader resolves them: for protocols 0-2 Python maps
Python 2 names (``__builtin__``, ``copy_reg``) through ``_compat_pickle``, and so does
:func:`resolve`.

Examples
--------
>>> from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST
>>> DEFAULT_ALLOWLIST.check("torch._utils", "_rebuild_tensor_v2").allowed
True
>>> DEFAULT_ALLOWLIST.check("sklearn.linear_model._logistic", "LogisticRegression").allowed
True
>>> DEFAULT_ALLOWLIST.check("sklearn.utils", "check_array").allowed
False
>>> d = DEFAULT_ALLOWLIST.check("builtins", "getattr")
>>> d.allowed, d.category.value
(False, 'code_execution')
>>> DEFAULT_ALLOWLIST.extend(["mylib.nets:Net"]).check("mylib.nets", "Net").user
True
"""

from __future__ import annotations

import _compat_pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bastion.artifacts.allow_data import (
    ECOSYSTEMS,
    SKLEARN_EXCLUDED_MODULES,
    TORCHSCRIPT_EXTRA,
    classify,
)
from bastion.artifacts.issues import Category
from bastion.errors import UsageError

__all__ = ["DEFAULT_ALLOWLIST", "Allowlist", "Decision", "parse_global", "resolve"]

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLASS = re.compile(r"_?[A-Z][A-Za-z0-9]*")  # CapWords, optionally private (_BinMapper)
_CYTHON_UNPICKLE = re.compile(r"__pyx_unpickle_[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Decision:
    """The allowlist's answer for one global.

    Attributes
    ----------
    allowed : bool
    reason : str
        Which rule decided, in words.
    category : Category or None
        Severity class when refused.
    user : bool
        True when a user exception allowed it.
    """

    allowed: bool
    reason: str
    category: Category | None = None
    user: bool = False


def resolve(module: str, name: str, proto: int, *, fix_imports: bool = True) -> tuple[str, str]:
    """The ``(module, name)`` the loader really imports, after Python 2 name mapping.

    Examples
    --------
    >>> resolve("__builtin__", "eval", 2)
    ('builtins', 'eval')
    >>> resolve("__builtin__", "eval", 4)
    ('__builtin__', 'eval')
    """
    if proto < 3 and fix_imports:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]  # type: ignore[no-any-return]
        if module in _compat_pickle.IMPORT_MAPPING:
            return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def parse_global(text: str) -> tuple[str, str]:
    """Read ``"module:qualname"`` (as given to ``--allow``).

    Raises
    ------
    UsageError
        If the text is not a dotted module, a colon and a plain identifier.
    """
    module, sep, name = text.strip().partition(":")
    if not sep or not _MODULE.fullmatch(module) or not _IDENT.fullmatch(name):
        raise UsageError(
            f"{text!r} is not a global of the form module:qualname (e.g. "
            "mylib.models:Net); dotted names after the colon are never allowed."
        )
    return module, name


def _merge(*tables: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    merged: dict[str, set[str]] = {}
    for table in tables:
        for module, names in table.items():
            merged.setdefault(module, set()).update(names)
    return {m: frozenset(n) for m, n in merged.items()}


class Allowlist:
    """A deny-by-default set of importable globals.

    Parameters
    ----------
    exact : mapping of str to frozenset of str
        ``module -> names`` reviewed one by one.
    class_packages : tuple of str
        Packages whose CapWords names (classes) are allowed, minus ``excluded``.
    excluded : tuple of str
        Sub-packages of ``class_packages`` that the class rule does not cover.
    user : iterable of (str, str)
        Reviewed exceptions from the user; reported separately.
    prefixes : tuple of str
        Module prefixes allowed wholesale (only for TorchScript's ``__torch__``
        namespace, which the TorchScript loader compiles from the archive's own code).
    name : str
        Label shown in reports.
    """

    def __init__(
        self,
        exact: Mapping[str, frozenset[str]],
        *,
        class_packages: tuple[str, ...] = ("sklearn",),
        excluded: tuple[str, ...] = SKLEARN_EXCLUDED_MODULES,
        user: Iterable[tuple[str, str]] = (),
        prefixes: tuple[str, ...] = (),
        name: str = "default",
    ) -> None:
        self.exact = dict(exact)
        self.class_packages = class_packages
        self.excluded = excluded
        self.user = frozenset(user)
        self.prefixes = prefixes
        self.name = name

    def __repr__(self) -> str:
        return f"Allowlist({self.name!r}, {len(self.user)} user exception(s))"

    @staticmethod
    def _under(module: str, packages: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in packages)

    def check(self, module: str, name: str) -> Decision:
        """Decide one already-resolved global (see :func:`resolve`)."""
        if not isinstance(module, str) or not _MODULE.fullmatch(module):
            return Decision(False, "the module is not a dotted identifier", Category.UNKNOWN_GLOBAL)
        if not isinstance(name, str) or not _IDENT.fullmatch(name):
            category = classify(module, name) if isinstance(name, str) else Category.UNKNOWN_GLOBAL
            why = (
                "a dotted attribute path is never allowed"
                if isinstance(name, str) and "." in name
                else "the name is not an identifier"
            )
            return Decision(False, why, category)
        if name in self.exact.get(module, ()):
            return Decision(True, "reviewed entry of the default allowlist")
        if (
            self._under(module, self.class_packages)
            and not self._under(module, self.excluded)
            and not any(part.startswith("test") for part in module.split("."))
        ):
            if _CLASS.fullmatch(name):
                return Decision(True, "a class of a reviewed package (CapWords rule)")
            if _CYTHON_UNPICKLE.fullmatch(name):
                return Decision(True, "Cython's generated unpickle helper of a reviewed class")
        if self._under(module, self.prefixes):
            return Decision(True, "a TorchScript class compiled from the archive's code")
        if (module, name) in self.user:
            return Decision(True, "reviewed exception given by the user", user=True)
        category = classify(module, name)
        why = {
            Category.CODE_EXECUTION: "it can run code",
            Category.FILE_OR_NETWORK: "it can touch files or the network",
        }.get(category, "it is not on the allowlist")
        return Decision(False, f"refused: {why}", category)

    def extend(self, entries: Iterable[str | tuple[str, str]]) -> Allowlist:
        """A copy with reviewed user exceptions added (``"module:qualname"`` each)."""
        parsed = [parse_global(e) if isinstance(e, str) else (e[0], e[1]) for e in entries]
        for module, name in parsed:
            parse_global(f"{module}:{name}")
        return Allowlist(
            self.exact,
            class_packages=self.class_packages,
            excluded=self.excluded,
            user=self.user | set(parsed),
            prefixes=self.prefixes,
            name=self.name,
        )

    def for_torchscript(self) -> Allowlist:
        """The allowlist TorchScript's own unpickler effectively applies in an archive."""
        return Allowlist(
            _merge(self.exact, TORCHSCRIPT_EXTRA),
            class_packages=self.class_packages,
            excluded=self.excluded,
            user=self.user,
            prefixes=(*self.prefixes, "__torch__"),
            name=f"{self.name}+torchscript",
        )

    def entries(self) -> list[str]:
        """Every exact entry as ``module:name``, sorted (for docs and reports)."""
        return sorted(f"{m}:{n}" for m, names in self.exact.items() for n in names)


#: The allowlist every scan and :func:`safe_load` use unless told otherwise.
DEFAULT_ALLOWLIST = Allowlist(_merge(*ECOSYSTEMS.values()))
