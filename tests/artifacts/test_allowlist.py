"""The allowlist: deny by default, reviewed entries, the scikit-learn class rule."""

from __future__ import annotations

import pytest

from bastion.artifacts import DEFAULT_ALLOWLIST, Category, parse_global
from bastion.artifacts.allowlist import resolve
from bastion.errors import UsageError


@pytest.mark.parametrize(
    "module, name",
    [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
        ("torch", "bfloat16"),
        ("collections", "OrderedDict"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.ensemble._forest", "RandomForestClassifier"),
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("builtins", "set"),
        ("copyreg", "_reconstructor"),
    ],
)
def test_reviewed_globals_are_allowed(module: str, name: str) -> None:
    assert DEFAULT_ALLOWLIST.check(module, name).allowed


@pytest.mark.parametrize(
    "module, name, category",
    [
        ("os", "system", Category.CODE_EXECUTION),
        ("builtins", "getattr", Category.CODE_EXECUTION),
        ("builtins", "open", Category.FILE_OR_NETWORK),
        ("socket", "socket", Category.FILE_OR_NETWORK),
        ("pip", "main", Category.CODE_EXECUTION),
        ("pydoc", "pipepager", Category.CODE_EXECUTION),
        ("torch.storage", "_load_from_bytes", Category.CODE_EXECUTION),
        ("numpy", "load", Category.CODE_EXECUTION),
        ("__main__", "Net", Category.UNKNOWN_GLOBAL),
        ("sklearn.utils", "check_array", Category.UNKNOWN_GLOBAL),
        ("sklearn.utils._testing", "TempMemmap", Category.UNKNOWN_GLOBAL),
        ("sklearn.datasets", "Bunch", Category.UNKNOWN_GLOBAL),
        ("sklearn.linear_model.tests.test_x", "Evil", Category.UNKNOWN_GLOBAL),
        ("torch.nn.modules.linear", "Linear", Category.UNKNOWN_GLOBAL),
        ("numpy", "core.multiarray._reconstruct", Category.CODE_EXECUTION),
        ("collections", "OrderedDict.__init__", Category.CODE_EXECUTION),
        ("os;", "system", Category.UNKNOWN_GLOBAL),
    ],
)
def test_everything_else_is_refused(module: str, name: str, category: Category) -> None:
    decision = DEFAULT_ALLOWLIST.check(module, name)
    assert not decision.allowed and decision.category is category


def test_user_exceptions_are_recorded_and_cannot_allow_dotted_names() -> None:
    extended = DEFAULT_ALLOWLIST.extend(["mylib.nets:Net"])
    decision = extended.check("mylib.nets", "Net")
    assert decision.allowed and decision.user
    assert not DEFAULT_ALLOWLIST.check("mylib.nets", "Net").allowed  # the default is unchanged
    with pytest.raises(UsageError, match="dotted names"):
        DEFAULT_ALLOWLIST.extend(["os:path.join"])
    with pytest.raises(UsageError):
        parse_global("no-colon")


def test_torchscript_context_allows_archive_classes_only() -> None:
    ts = DEFAULT_ALLOWLIST.for_torchscript()
    assert ts.check("__torch__.torch.nn.modules.linear", "Linear").allowed
    assert ts.check("torch.jit._pickle", "build_intlist").allowed
    assert not DEFAULT_ALLOWLIST.check("__torch__.m", "Linear").allowed
    assert not ts.check("os", "system").allowed


def test_names_resolve_like_the_loader() -> None:
    assert resolve("copy_reg", "_reconstructor", 2) == ("copyreg", "_reconstructor")
    assert resolve("__builtin__", "set", 0) == ("builtins", "set")
    assert resolve("__builtin__", "set", 3) == ("__builtin__", "set")


def test_entries_are_listed_for_docs() -> None:
    entries = DEFAULT_ALLOWLIST.entries()
    assert "torch._utils:_rebuild_tensor_v2" in entries and entries == sorted(entries)
