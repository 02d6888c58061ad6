"""``bastion artifacts keygen|sign|verify``: end to end through the command line."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from bastion.artifacts.convert import ConversionRefused
from bastion.cli.artifacts_sign_cmd import parse_size, register_into
from bastion.errors import UsageError

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    group = typer.Typer(name="artifacts")
    register_into(group)
    root.add_typer(group, name="artifacts")
    return root


def invoke(app: typer.Typer, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["artifacts", *args], env={"COLUMNS": "200", **(env or {})})


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"\x01" * 3000)
    (root / "config.json").write_text("{}")
    return root


@pytest.fixture
def key(app: typer.Typer, tmp_path: Path) -> Path:
    result = invoke(app, "keygen", str(tmp_path / "id_bastion"))
    assert result.exit_code == 0, result.output
    return tmp_path / "id_bastion"


def test_keygen_writes_private_0600_and_public_and_prints_only_the_id(
    app: typer.Typer, tmp_path: Path
) -> None:
    result = invoke(app, "keygen", str(tmp_path / "k"))
    assert result.exit_code == 0, result.output
    private = (tmp_path / "k").read_text()
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert (tmp_path / "k.pub").is_file()
    assert "key id" in result.output
    for line in private.splitlines()[1:-1]:
        assert line not in result.output
    again = invoke(app, "keygen", str(tmp_path / "k"))
    assert isinstance(again.exception, UsageError)


def test_sign_then_verify_exits_zero(app: typer.Typer, model: Path, key: Path) -> None:
    signed = invoke(app, "sign", str(model), "--key", str(key))
    assert signed.exit_code == 0, signed.output
    assert "Signed 2 files" in signed.output and "sha256:" in signed.output
    verified = invoke(app, "verify", str(model), "--key", f"{key}.pub")
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED" in verified.output


def test_tampering_exits_one_and_names_each_file(app: typer.Typer, model: Path, key: Path) -> None:
    assert invoke(app, "sign", str(model), "--key", str(key)).exit_code == 0
    (model / "weights.bin").write_bytes(b"\x02" * 3000)
    (model / "config.json").unlink()
    (model / "loader.py").write_text("import os")
    result = invoke(app, "verify", str(model), "--key", f"{key}.pub")
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.output
    for text in ("modified", "weights.bin", "missing", "config.json", "added", "loader.py"):
        assert text in result.output

    as_json = invoke(app, "verify", str(model), "--key", f"{key}.pub", "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.output)
    assert data["status"] == "mismatch" and data["changes"] == {
        "modified": ["weights.bin"],
        "added": ["loader.py"],
        "missing": ["config.json"],
    }


def test_wrong_key_exits_one(app: typer.Typer, model: Path, key: Path, tmp_path: Path) -> None:
    invoke(app, "sign", str(model), "--key", str(key))
    invoke(app, "keygen", str(tmp_path / "other"))
    result = invoke(app, "verify", str(model), "--key", str(tmp_path / "other.pub"))
    assert result.exit_code == 1 and "BAD SIGNATURE" in result.output


def test_private_key_given_to_verify_is_a_usage_error(
    app: typer.Typer, model: Path, key: Path
) -> None:
    invoke(app, "sign", str(model), "--key", str(key))
    result = invoke(app, "verify", str(model), "--key", str(key))
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2


def test_verify_without_any_signature_is_a_usage_error(
    app: typer.Typer, model: Path, key: Path
) -> None:
    result = invoke(app, "verify", str(model), "--key", f"{key}.pub")
    assert isinstance(result.exception, UsageError)
    assert "No signature found" in str(result.exception)


def test_passphrase_is_read_from_the_named_variable(
    app: typer.Typer, model: Path, tmp_path: Path
) -> None:
    env = {"MODEL_KEY_PASS": "hunter2"}
    made = invoke(
        app, "keygen", str(tmp_path / "enc"), "--passphrase-env", "MODEL_KEY_PASS", env=env
    )
    assert made.exit_code == 0 and "encrypted" in made.output and "hunter2" not in made.output
    no_pass = invoke(app, "sign", str(model), "--key", str(tmp_path / "enc"))
    assert isinstance(no_pass.exception, UsageError)
    signed = invoke(
        app,
        "sign",
        str(model),
        "--key",
        str(tmp_path / "enc"),
        "--passphrase-env",
        "MODEL_KEY_PASS",
        "--json",
        env=env,
    )
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.output)["files"] == 2


def test_custom_manifest_location_and_shard_size(
    app: typer.Typer, model: Path, key: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "elsewhere.json"
    result = invoke(
        app,
        "sign",
        str(model),
        "--key",
        str(key),
        "--manifest",
        str(manifest),
        "--shard-size",
        "1KiB",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(manifest.read_text())["payload"]
    assert payload["shard_size"] == 1024 and len(payload["files"][1]["shards"]) == 3
    verified = invoke(app, "verify", str(model), "--key", f"{key}.pub", "-m", str(manifest))
    assert verified.exit_code == 0, verified.output


def test_openssf_format_round_trip_with_auto_detection(
    app: typer.Typer, model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("model_signing")
    made = invoke(app, "keygen", str(tmp_path / "ec"), "--algorithm", "ecdsa-p256")
    assert made.exit_code == 0, made.output
    signed = invoke(app, "sign", str(model), "--key", str(tmp_path / "ec"), "--format", "openssf")
    assert signed.exit_code == 0, signed.output
    assert (model.parent / "model.sig").is_file()
    verified = invoke(app, "verify", str(model), "--key", str(tmp_path / "ec.pub"), "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["format"] == "openssf"
    (model / "weights.bin").write_bytes(b"x")
    tampered = invoke(app, "verify", str(model), "--key", str(tmp_path / "ec.pub"))
    assert tampered.exit_code == 1 and "weights.bin" in tampered.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MiB", 512 * 2**20), ("1GB", 10**9), ("4096", 4096), ("2kib", 2048), ("3 b", 3)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.5GB", "0", "12 parsecs"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_convert_prints_the_sha256_of_the_result(app: typer.Typer, tmp_path: Path) -> None:
    import torch

    torch.save({"epoch": 1, "w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "model.pt")
    result = invoke(app, "convert", str(tmp_path / "model.pt"), "--to", "safetensors")
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    assert f"sha256:{digest}" in result.output
    assert "epoch (int)" in result.output and "1 tensors written" in result.output
    as_json = invoke(app, "convert", str(tmp_path / "model.pt"), "--force", "--json")
    assert json.loads(as_json.output)["sha256"] == digest  # deterministic output


def test_convert_refuses_an_unsafe_file_with_exit_one(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    result = invoke(app, "convert", str(tmp_path / "evil.pkl"), "--to", "skops")
    assert isinstance(result.exception, ConversionRefused)
    assert result.exception.exit_code == 1 and "os:system" in str(result.exception)
    assert not (tmp_path / "evil.skops").exists()
