"""The emitted assessment config validates, selects exactly the right probes, and runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.demo import DEMO_MODELS, MANIFEST
from bastion.plugins import Registry, default_registry
from bastion.runs.build import build_jobs
from bastion.runs.config import load_config
from bastion.runs.plan import make_plan
from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.emit import PLACEHOLDER, write
from bastion.threatmodel.loading import SystemFile, parse_description_text
from bastion.threatmodel.samples import minimal_description_data

from .conftest import ROOT, stub_probe

MODELS = ROOT / "examples" / "models"


def test_example_models_are_committed_and_small() -> None:
    files = [MODELS / f for f in DEMO_MODELS.values()] + [MODELS / MANIFEST]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in MODELS.iterdir()) < 1_000_000
    manifest = json.loads((MODELS / MANIFEST).read_text())
    assert {e["file"] for e in manifest.values()} == set(DEMO_MODELS.values())
    assert (ROOT / "examples" / "make_models.py").is_file()


@pytest.mark.parametrize("name", ["cheque-digit-reader", "hospital-diagnosis"])
def test_emitted_config_for_a_real_model_builds_and_plans(
    systems: dict[str, SystemFile], tmp_path: Path, name: str
) -> None:
    registry = default_registry()
    tm = analyse(systems[name], registry=registry)
    out = tmp_path / "nested" / "assess.yaml"
    emitted = write(tm, systems[name], out)
    assert emitted.placeholders == []
    config = load_config(out)
    expected = [p.id for p in tm.plan.probes]
    assert config.probes != "all" and [p.id for p in config.probes] == expected
    # exactly the registered probes that name an applicable threat
    applicable = {t.id for t in tm.applicable()}
    chosen = {
        pid
        for pid, cls in registry.probes.items()
        if {*cls.meta.catalog.owasp, *cls.meta.catalog.failure_modes} & applicable
    }
    assert set(expected) == chosen
    target = config.targets[0]
    assert config.resolve(target.path or "").resolve() == next(
        (MODELS / a.path.split("/")[-1]).resolve()
        for a in systems[name].description.artefacts
        if a.path
    )
    assert target.security_decision is systems[name].description.decisions.security
    jobs = build_jobs(config)
    plan = make_plan(jobs, config.probes, registry=registry)
    assert {item.probe.meta.id for item in plan.items} | {s.probe_id for s in plan.skipped} == set(
        expected
    )
    assert plan.items, "at least one selected probe runs on the real model"


def test_placeholders_validate_and_are_listed(tmp_path: Path) -> None:
    system = parse_description_text(json.dumps(minimal_description_data()), "s.yaml", tmp_path)
    tm = analyse(system, registry=Registry())
    emitted = write(tm, system, tmp_path / "assess.yaml")
    text = emitted.path.read_text()
    assert len(emitted.placeholders) == 2 and text.count(PLACEHOLDER) >= 3
    config = load_config(emitted.path)
    assert config.targets[0].path == f"{PLACEHOLDER}/model.onnx"
    assert config.probes == []  # the empty registry has no probe to select
    assert "no installed probe checks an applicable threat" in text


def test_endpoint_and_file_become_two_targets(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    data = minimal_description_data(
        access={
            "exposure": "public_api",
            "callers": ["anyone"],
            "authentication": "api_key",
            "url": "https://models.example.com/predict",
        },
        artefacts=[{"name": "m", "kind": "model", "format": "onnx", "path": "m.onnx"}],
    )
    data["data"]["evaluation"] = {"path": "test.csv", "label": "y"}
    system = parse_description_text(json.dumps(data), "s.yaml", tmp_path)
    registry = Registry(probes={"stub.theft": stub_probe("stub.theft", owasp=["ML05"])})
    emitted = write(analyse(system, registry=registry), system, tmp_path / "out" / "a.yaml")
    config = load_config(emitted.path)
    assert [t.display_name for t in config.targets] == [
        "sample-classifier-file",
        "sample-classifier-endpoint",
    ]
    assert config.targets[1].url == "https://models.example.com/predict"
    assert config.resolve(config.targets[0].path or "").resolve() == (tmp_path / "m.onnx").resolve()
    data_cfg = config.data_for(config.targets[0])
    assert config.resolve(data_cfg.path or "").resolve() == (tmp_path / "test.csv").resolve()
    assert [p.id for p in config.probes] == ["stub.theft"]
    assert emitted.placeholders == []


def test_unloadable_artefact_is_explained(tmp_path: Path) -> None:
    data = minimal_description_data(
        artefacts=[{"name": "legacy", "kind": "model", "format": "pickle", "path": "m.pkl"}]
    )
    system = parse_description_text(json.dumps(data), "s.yaml", tmp_path)
    emitted = write(analyse(system, registry=Registry()), system, tmp_path / "a.yaml")
    text = emitted.path.read_text()
    assert "Artefact 'legacy' is a pickle file, which Bastion does not" in text
    assert any("legacy" in p for p in emitted.placeholders)
    load_config(emitted.path)
