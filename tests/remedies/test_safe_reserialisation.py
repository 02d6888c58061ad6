"""supply_chain.safe_reserialisation: pickle models to skops / safetensors, verified by the scan."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
import typer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from bastion.artifacts import scan_file
from bastion.artifacts.convert import ConversionRefused
from bastion.catalog import load_catalog
from bastion.catalog.coverage import coverage
from bastion.cli.harden_cmd import harden_registry, register
from bastion.data.dataset import Dataset
from bastion.data.demo import load_breast_cancer_dataset
from bastion.errors import TargetError, UsageError
from bastion.findings import Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.supply_chain.artifact_scan import ArtifactScanProbe
from bastion.remedies import BUILTIN_REMEDIES, SafeReserialisation
from bastion.runs.harden import HardenRequest, run_harden
from bastion.runs.jobs import AssessmentJob
from bastion.store import open_store
from bastion.targets import FakeTarget, InputSpec
from bastion.targets.loading import load_target
from bastion.targets.sklearn_target import SklearnTarget
from bastion.targets.torch_target import TorchTarget

ID = "supply_chain.safe_reserialisation"
SPEC = InputSpec(shape=(4,), lower=0.0, upper=1.0)
# A pickle that would create the canary file if anything ever unpickled it.
EVIL = b"cbuiltins\nexec\n(S'open(%r, \"w\").close()'\ntR."


def _data(n: int = 60) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    return Dataset("toy", x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], classes=["a", "b"])


def _sklearn(tmp_path: Path, name: str = "model.joblib") -> SklearnTarget:
    data = _data()
    est = LogisticRegression().fit(data.x_train, data.y_train)
    joblib.dump(est, tmp_path / name, compress=3)
    target = load_target(tmp_path / name, kind="sklearn", input_spec=SPEC, classes=["a", "b"])
    assert isinstance(target, SklearnTarget)
    return target


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    ).eval()


def _torch(tmp_path: Path) -> TorchTarget:
    net = _net()
    optimiser = torch.optim.Adam(net.parameters())
    checkpoint = {"model_state_dict": net.state_dict(), "optim": optimiser.state_dict(), "epoch": 3}
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    target = TorchTarget(net, input_spec=SPEC, classes=["a", "b"], name="net")
    target.source_path = tmp_path / "ckpt.pt"
    return target


def test_keeps_the_remedy_contract_and_covers_the_supply_chain_entries() -> None:
    from bastion.testing import check_remedy

    catalog = load_catalog()
    assert check_remedy(SafeReserialisation, catalog, probe_ids=[ArtifactScanProbe.meta.id]) == []
    assert BUILTIN_REMEDIES[ID] is SafeReserialisation
    assert harden_registry().remedies[ID] is SafeReserialisation
    registry = Registry().with_plugins(remedies={ID: SafeReserialisation})
    rows = {r.id: r.remedies for r in coverage(catalog, registry)}
    for entry in ("ML06", "FM9", "FM11", "AML.T0011.000", "AML.M0011", "AML.M0014"):
        assert rows[entry] == [ID], entry
    assert rows["AML.M0013"] == [] and rows["AML.M0016"] == []  # no signing, no fixing


def test_a_joblib_model_becomes_skops_with_identical_outputs(tmp_path: Path) -> None:
    target = _sklearn(tmp_path)
    assert target.source_path == tmp_path / "model.joblib"
    result = SafeReserialisation().apply(target, _data(), ProbeContext(output_dir=tmp_path / "r"))
    new = result.target
    assert new is not target and new.name == target.name and isinstance(new, SklearnTarget)
    assert new.source_path == tmp_path / "r" / "hardened" / "model.skops"
    ch = result.changes
    assert ch["format"] == "skops" and ch["source_formats"] == ["zlib", "pickle"]
    assert ch["max_abs_difference"] == 0.0 and ch["labels_identical"] and ch["rows_compared"] == 30
    report = scan_file(new.source_path)
    assert report.safe and not report.pickle_based and report.sha256 == ch["output_sha256"]
    x = _data().x_test
    assert np.array_equal(new.predict_proba(x), target.predict_proba(x))
    note = json.loads(Path(ch["note"]).read_text())
    assert note["source_sha256"] == ch["source_sha256"] and note["format"] == "skops"
    assert note["model_class"].endswith(":LogisticRegression")


def test_a_torch_checkpoint_becomes_safetensors_for_the_same_module(tmp_path: Path) -> None:
    target = _torch(tmp_path)
    result = SafeReserialisation(output_dir=str(tmp_path / "out")).apply(
        target, _data(), ProbeContext()
    )
    ch, new = result.changes, result.target
    assert isinstance(new, TorchTarget) and new.module is not target.module
    assert ch["select"] == "model_state_dict" and ch["tensors"] == 9  # BatchNorm buffers too
    assert ch["max_abs_difference"] == 0.0 and ch["compared"] == "scores"
    from safetensors.torch import load_file

    weights = load_file(ch["output"])
    for key, value in target.module.state_dict().items():
        assert torch.equal(weights[key], value)
    assert scan_file(ch["output"]).formats == ["safetensors"]
    assert json.loads(Path(ch["note"]).read_text())["model_class"] == (
        "torch.nn.modules.container:Sequential"
    )
    with pytest.raises(UsageError, match="no entry 'weights'"):
        SafeReserialisation(output_dir=str(tmp_path / "o2"), select="weights").apply(
            target, _data(), ProbeContext()
        )


def test_a_file_that_does_not_hold_the_targets_model_is_refused(tmp_path: Path) -> None:
    target = _torch(tmp_path)
    other = _net()
    torch.nn.init.zeros_(other[3].weight)  # type: ignore[index]
    torch.save(other.state_dict(), tmp_path / "ckpt.pt")  # same keys, other weights
    with pytest.raises(TargetError, match="does not give the original's outputs"):
        SafeReserialisation().apply(target, _data(), ProbeContext(output_dir=tmp_path))
    assert not (tmp_path / "hardened" / "ckpt.safetensors").exists()


def test_an_unsafe_file_is_refused_and_never_loaded(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "model.pkl").write_bytes(EVIL.replace(b"%r", repr(str(canary)).encode()))
    target = FakeTarget.linear(n_features=4, n_classes=2)
    target.source_path = tmp_path / "model.pkl"  # type: ignore[attr-defined]
    with pytest.raises(ConversionRefused, match="did not scan clean"):
        SafeReserialisation().apply(target, _data(), ProbeContext(output_dir=tmp_path))
    assert not canary.exists() and not (tmp_path / "hardened").exists()


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    remedy, ctx = SafeReserialisation(), ProbeContext(output_dir=tmp_path)
    with pytest.raises(TargetError, match="no source_path"):
        remedy.apply(FakeTarget.linear(n_features=4, n_classes=2), _data(), ctx)
    skops_target = SafeReserialisation().apply(_sklearn(tmp_path), _data(), ctx).target
    with pytest.raises(UsageError, match="not pickle-based"):
        remedy.apply(skops_target, _data(), ctx)
    fake = FakeTarget.linear(n_features=4, n_classes=2)
    fake.source_path = tmp_path / "model.joblib"  # type: ignore[attr-defined]
    with pytest.raises(TargetError, match="is a fake target"):
        remedy.apply(fake, _data(), ctx)
    with pytest.raises(UsageError, match="needs a folder"):
        remedy.apply(_sklearn(tmp_path), _data(), ProbeContext())
    with pytest.raises(UsageError, match="already exists"):
        SafeReserialisation(overwrite=False).apply(_sklearn(tmp_path), _data(), ctx)
    with pytest.raises(UsageError, match="'atol' parameter"):
        SafeReserialisation(atol=-1).apply(_sklearn(tmp_path), _data(), ctx)


def test_load_target_opens_a_sklearn_pickle_only_when_asked_and_only_if_clean(
    tmp_path: Path,
) -> None:
    est = LogisticRegression().fit(_data().x_train, _data().y_train)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(est))
    with pytest.raises(TargetError, match="set kind 'sklearn'"):
        load_target(tmp_path / "m.pkl", input_spec=SPEC, classes=["a", "b"])
    target = load_target(tmp_path / "m.pkl", kind="sklearn", input_spec=SPEC, classes=["a", "b"])
    assert isinstance(target, SklearnTarget) and target.name == "m.pkl"
    canary = tmp_path / "canary"
    (tmp_path / "bad.pkl").write_bytes(EVIL.replace(b"%r", repr(str(canary)).encode()))
    with pytest.raises(TargetError, match="was not loaded"):
        load_target(tmp_path / "bad.pkl", kind="sklearn", input_spec=SPEC, classes=["a", "b"])
    assert not canary.exists()
    with pytest.raises(UsageError, match="no option"):
        load_target(
            tmp_path / "m.pkl",
            kind="sklearn",
            input_spec=SPEC,
            classes=["a", "b"],
            options={"trusted": []},
        )


def test_harden_verifies_the_torch_remedy_with_the_scan(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    registry = Registry().with_plugins(probes={ArtifactScanProbe.meta.id: ArtifactScanProbe})
    request = HardenRequest(
        name="t",
        job=AssessmentJob(_torch(tmp_path), _data()),
        remedy=SafeReserialisation(),
        fingerprint="f",
        output_dir=tmp_path / "report",
    )
    out = run_harden(request, store=store, registry=registry)
    store.close()
    assert out.verified and out.exit_code == 0, out.reason
    [change] = out.changes
    assert change.variant == "source" and change.before.severity is Severity.LOW
    assert change.after is not None and change.after.status is Status.NOT_VULNERABLE
    assert (tmp_path / "report" / "hardened" / "ckpt.safetensors").is_file()
    assert out.after.options["remedy"]["changes"]["max_abs_difference"] == 0.0


def _config(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "assess.yaml"
    path.write_text(
        "name: forest\n"
        "data: {builtin: breast_cancer}\n"
        f"targets:\n  - {{name: clf, kind: sklearn, path: {model}}}\n"
        "probes:\n  - id: supply_chain.artifact_scan\n"
    )
    return path


def test_bastion_harden_config_end_to_end(tmp_path: Path) -> None:
    data = load_breast_cancer_dataset(0)
    est = LogisticRegression(max_iter=2000).fit(data.x_train, data.y_train)
    joblib.dump(est, tmp_path / "model.joblib")
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    args = ["harden", str(_config(tmp_path, "model.joblib")), "--remedy", ID, "-q"]
    args += ["--store", f"sqlite:///{tmp_path / 's.db'}", "-o", str(tmp_path / "report")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Verified" in result.output and "no longer vulnerable" in result.output
    assert "Re-serialised model.joblib" in result.output and "at most 0 on 142" in result.output
    assert (tmp_path / "report" / "hardened" / "model.skops").is_file()
    (tmp_path / "evil.pkl").write_bytes(EVIL.replace(b"%r", b"'/nonexistent/x'"))
    args[1] = str(_config(tmp_path, "evil.pkl"))
    refused = CliRunner().invoke(app, args)
    assert isinstance(refused.exception, TargetError)  # the loader refuses it before harden
