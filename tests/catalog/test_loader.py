"""The catalog loader and lookup API: caching, case-insensitive ids, validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bastion.catalog import Catalog, CatalogEntry, Kind, load_catalog, read_catalog
from bastion.catalog.loader import DATA_FILES, data_directory
from bastion.errors import CatalogError, UsageError
from bastion.findings import CatalogRefs


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


# -- lookup ---------------------------------------------------------------------------------
def test_load_catalog_is_cached_per_process(cat: Catalog) -> None:
    assert load_catalog() is cat


def test_version_and_sources(cat: Catalog) -> None:
    assert cat.version == "1.0.0"
    assert set(cat.sources) == {"owasp", "failure_modes", "atlas", "cwe", "mappings"}
    assert cat.sources["owasp"].edition.startswith("2023")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ML04", "ML04"),
        ("ml04", "ML04"),
        (" ML04 ", "ML04"),
        ("ML04:2023", "ML04"),
        ("aml.m0015", "AML.M0015"),
        ("AML.t0024.001", "AML.T0024.001"),
        ("fm1", "FM1"),
        ("cwe-1039", "CWE-1039"),
    ],
)
def test_get_ignores_case(cat: Catalog, query: str, expected: str) -> None:
    entry = cat.get(query)
    assert isinstance(entry, CatalogEntry)
    assert entry.id == expected
    assert cat.exists(query)
    assert query in cat


def test_get_returns_typed_fields(cat: Catalog) -> None:
    entry = cat.get("ML01")
    assert (entry.id, entry.name, entry.kind) == ("ML01", "Adversarial Attack", Kind.OWASP)
    assert entry.kind == "owasp"
    assert entry.url is not None and entry.url.startswith("https://owasp.org/")
    assert entry.attributes["exploitability"] == {"score": 5, "rating": "easy"}


def test_unknown_id_suggests_close_matches(cat: Catalog) -> None:
    with pytest.raises(
        CatalogError, match=r"Unknown catalog id 'ML99' \(close matches: ML09"
    ) as info:
        cat.get("ML99")
    assert info.value.exit_code == 7
    assert not cat.exists("ML99")


def test_unknown_id_suggests_by_name(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match=re.escape("AML.M0003")):
        cat.get("hardening")


def test_unknown_id_without_any_match_still_says_what_to_do(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="run `bastion catalog` to list every id"):
        cat.get("zzzzzzzz")


def test_entries_in_catalog_order(cat: Catalog) -> None:
    kinds = [e.kind for e in cat.entries()]
    assert kinds == sorted(kinds, key=list(Kind).index)
    assert [e.id for e in cat.entries("owasp")] == [f"ML{i:02d}" for i in range(1, 11)]
    assert [e.id for e in cat.entries(Kind.FAILURE_MODE)] == [f"FM{i}" for i in range(1, 18)]
    assert len(cat) == len(cat.entries()) == len(list(cat))
    assert [e.id for e in cat.entries("cwe")] == ["CWE-1039"]


def test_entries_rejects_unknown_kind(cat: Catalog) -> None:
    with pytest.raises(UsageError, match="Unknown catalog kind 'bogus'; use one of: owasp"):
        cat.entries("bogus")


def test_unknown_ids(cat: Catalog) -> None:
    refs = CatalogRefs(
        owasp=["ML01", "ML99"], failure_modes=["fm3"], cwe=["CWE-9999"], atlas_mitigations=["ML99"]
    )
    assert cat.unknown_ids(refs) == ["ML99", "CWE-9999"]
    assert cat.unknown_ids(CatalogRefs()) == []


def test_misfiled_ids(cat: Catalog) -> None:
    refs = CatalogRefs(owasp=["FM1", "ML01"], atlas_techniques=["AML.M0003"])
    assert cat.misfiled_ids(refs) == [
        "FM1 in owasp (it is failure_mode)",
        "AML.M0003 in atlas_techniques (it is atlas_mitigation)",
    ]


def test_related_follows_mappings(cat: Catalog) -> None:
    related = cat.related("FM1")
    for expected in ("ML01", "AML.M0003", "AML.M0015", "AML.M0010", "AML.T0043", "CWE-1039"):
        assert expected in related
    assert "FM1" not in related
    assert related == sorted(related, key=[e.id for e in cat.entries()].index)


def test_related_is_symmetric(cat: Catalog) -> None:
    for entry in cat.entries():
        for other in cat.related(entry.id):
            assert entry.id in cat.related(other), (entry.id, other)


def test_related_links_sub_techniques_and_atlas_mitigation_lists(cat: Catalog) -> None:
    assert "AML.T0024" in cat.related("AML.T0024.000")
    assert "AML.T0024.002" in cat.related("aml.t0024")
    # ATLAS itself lists Restrict Library Loading against unsafe ML artifacts
    assert "AML.T0011.000" in cat.related("AML.M0011")


def test_related_of_unknown_id_raises(cat: Catalog) -> None:
    with pytest.raises(CatalogError):
        cat.related("FM99")


def test_entries_are_read_only(cat: Catalog) -> None:
    entry = cat.get("ML01")
    with pytest.raises(ValidationError):
        entry.name = "changed"
    attrs = entry.attributes
    attrs["newer_name"] = "changed"
    assert cat.get("ML01").attributes["newer_name"] == "Input Manipulation Attack"


def test_to_dict_is_json_ready(cat: Catalog) -> None:
    data = cat.get("AML.T0024.001").to_dict()
    assert data["kind"] == "atlas_technique"
    assert data["attributes"]["parent"] == "AML.T0024"
    assert data["url"] == "https://atlas.mitre.org/techniques/AML.T0024.001"


# -- validation of data files ---------------------------------------------------------------
@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for name in DATA_FILES:
        text = data_directory().joinpath(name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _edit(folder: Path, name: str, change: Any) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_copy_of_shipped_data_reads_back_identically(data_copy: Path) -> None:
    copy = read_catalog(data_copy)
    assert [e.to_dict() for e in copy.entries()] == [e.to_dict() for e in load_catalog()]


def test_duplicate_id_is_rejected(data_copy: Path) -> None:
    def dup(d: dict[str, Any]) -> None:
        clone = dict(d["entries"][0])
        clone["id"] = "ml01"  # duplicates ML01, case ignored
        d["entries"].append(clone)

    _edit(data_copy, "owasp.yaml", dup)
    with pytest.raises(CatalogError, match="'ml01' is defined twice"):
        read_catalog(data_copy)


def test_mapping_with_unknown_id_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "mappings.yaml", lambda d: d["mappings"][0]["owasp"].append("ML11"))
    with pytest.raises(CatalogError, match="names 'ML11', which is not in the catalog"):
        read_catalog(data_copy)


def test_mapping_with_id_in_wrong_field_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "mappings.yaml", lambda d: d["mappings"][0]["owasp"].append("FM2"))
    with pytest.raises(CatalogError, match="lists 'FM2' as owasp, but it is failure_mode"):
        read_catalog(data_copy)


def test_atlas_mitigation_naming_unknown_technique_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "atlas.yaml", lambda d: d["mitigations"][0]["mitigates"].append("AML.T9999"))
    with pytest.raises(CatalogError, match=re.escape("AML.M0000 lists 'AML.T9999'")):
        read_catalog(data_copy)


def test_sub_technique_without_parent_is_rejected(data_copy: Path) -> None:
    orphan = {"id": "AML.T0099.000", "name": "Orphan", "description": "No parent."}
    _edit(data_copy, "atlas.yaml", lambda d: d["techniques"].append(orphan))
    with pytest.raises(CatalogError, match=re.escape("AML.T0099.000 has no parent AML.T0099")):
        read_catalog(data_copy)


def test_unknown_field_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "owasp.yaml", lambda d: d["entries"][3].update(exploitabilty={"score": 1}))
    with pytest.raises(CatalogError, match=r"owasp.yaml', entries item ML04: exploitabilty"):
        read_catalog(data_copy)


def test_out_of_scale_risk_factor_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "owasp.yaml", lambda d: d["entries"][0]["exploitability"].update(score=6))
    with pytest.raises(CatalogError, match=re.escape("ML01: exploitability.score")):
        read_catalog(data_copy)


def test_inconsistent_failure_mode_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "failure_modes.yaml", lambda d: d["entries"][12].update(knowledge="both"))
    with pytest.raises(CatalogError, match="FM13 is unintentional"):
        read_catalog(data_copy)


def test_version_mismatch_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "cwe.yaml", lambda d: d.update(version="9.9.9"))
    with pytest.raises(CatalogError, match=r"disagree on their version.*cwe\.yaml=9\.9\.9"):
        read_catalog(data_copy)


def test_missing_version_or_source_is_rejected(data_copy: Path) -> None:
    _edit(data_copy, "atlas.yaml", lambda d: d.pop("source"))
    with pytest.raises(CatalogError, match=re.escape("'atlas.yaml' has no top-level 'source'")):
        read_catalog(data_copy)


def test_missing_file_is_rejected(data_copy: Path) -> None:
    (data_copy / "cwe.yaml").unlink()
    with pytest.raises(CatalogError, match=re.escape("'cwe.yaml' is missing")):
        read_catalog(str(data_copy))


def test_invalid_yaml_is_rejected(data_copy: Path) -> None:
    (data_copy / "owasp.yaml").write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape("'owasp.yaml' is not valid YAML")):
        read_catalog(data_copy)


def test_non_mapping_file_is_rejected(data_copy: Path) -> None:
    (data_copy / "owasp.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="must hold a mapping"):
        read_catalog(data_copy)
