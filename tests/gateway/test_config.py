"""Gateway config: validation errors name the file, line and field; secrets are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError, UsageError
from bastion.gateway.build import build_gateway
from bastion.gateway.config import load_gateway_config, parse_gateway_text
from bastion.gateway.server import check_workers


def test_example_configs_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    paths = sorted(root.glob("gateway*.yaml"))
    assert len(paths) >= 2
    for path in paths:
        cfg = load_gateway_config(path)
        assert cfg.models, path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("models: []", r"line 1: 'models' needs at least one entry"),
        ("models:\n  - name: a\n    demo: mnist\n", r"line 3: 'models.0.demo'"),
        ("models:\n  - name: a\n", r"exactly one of 'demo', 'path'"),
        ("models:\n  - {name: a, path: m.onnx}\n", r"needs 'classes'"),
        ("models:\n  - {name: a, demo: digits}\n  - {name: a, demo: digits}\n", "repeated: a"),
        ("models:\n  - {name: 'a b', demo: digits}\n", r"'models.0.name'"),
        ("models:\n  - {name: a, demo: digits, guards: [{x: 1}]}\n", "without an 'id'"),
        ("models: [{name: a, demo: digits}]\nstore: postgresql://u:pw@db/x\n", "password"),
        ("models: [{name: a, demo: digits}]\nredis_url: redis://:pw@h:6379/0\n", "password"),
        (
            "models:\n  - name: a\n    demo: digits\n    options: {api_key: abc}\n",
            r"line 4: 'models.0.options.api_key' looks like a secret",
        ),
        (
            "models: [{name: a, demo: digits}]\nnote: bst_0123456789abcdef_xyz\n",
            r"'note' holds what looks like a key",
        ),
        (
            "models: [{name: a, demo: digits}]\nx: '-----BEGIN PRIVATE KEY-----'\n",
            "looks like a key",
        ),
        ("models: [{name: a, demo: digits}]\nmax_batch: 0\n", r"'max_batch'"),
        ("models: [{name: a, demo: digits\n", r"line \d+: not valid YAML"),
    ],
)
def test_bad_configs_are_refused_with_a_location(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_gateway_text(text, "g.yaml")


def test_secret_references_by_env_or_file_are_fine() -> None:
    cfg = parse_gateway_text(
        "models:\n  - name: a\n    demo: digits\n    guards:\n"
        "      - {id: access.authentication, jwt: {issuer: me, audience: you, "
        "hs256_secret_env: JWT_SECRET}}\n"
    )
    assert cfg.models[0].guard_ids() == ["access.authentication"]


def test_guards_needing_reference_data_say_so() -> None:
    cfg = parse_gateway_text(
        "models:\n  - name: a\n    path: m.onnx\n    classes: [x, y]\n    input: {shape: [2]}\n"
        "    guards: [input.ood]\n"
    )
    # The model file does not exist: the load error comes first and names the file.
    with pytest.raises(Exception, match=r"m\.onnx"):
        build_gateway(cfg, store_url="sqlite://")


def test_unknown_guard_and_bad_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_gateway_text("models: [{name: a, demo: breast_cancer, guards: [no.such]}]")
    with pytest.raises(UsageError, match="No guard 'no.such'"):
        build_gateway(cfg, store_url="sqlite://")
    cfg = parse_gateway_text(
        "models: [{name: a, demo: breast_cancer, guards: [{id: input.ood, color: red}]}]"
    )
    with pytest.raises(ConfigError, match="input.ood.*color"):
        build_gateway(cfg, store_url="sqlite://")
    cfg = parse_gateway_text("models: [{name: a, demo: breast_cancer, guards: [output.signature]}]")
    monkeypatch.delenv("BASTION_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("BASTION_SIGNING_KEY", raising=False)
    with pytest.raises(ConfigError, match="signing key"):
        build_gateway(cfg, store_url="sqlite://")


def test_several_workers_need_redis_for_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "redis_url_env: GW_REDIS\nmodels: [{name: a, demo: digits, guards: "
        "[{id: access.rate_limit, rate: 1, burst: 1}]}]"
    )
    cfg = parse_gateway_text(text)
    monkeypatch.delenv("GW_REDIS", raising=False)
    with pytest.raises(ConfigError, match="shared Redis"):
        check_workers(cfg, 2)
    check_workers(cfg, 1)
    monkeypatch.setenv("GW_REDIS", "redis://127.0.0.1:6379/0")
    check_workers(cfg, 2)


def test_durability_and_thread_settings(tmp_path: Path) -> None:
    base = "models: [{name: d, demo: breast_cancer, guards: [input.validation]}]\n"
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        parse_gateway_text(base + "sqlite_synchronous: off\n")
    with pytest.raises(ConfigError, match="torch_threads"):
        parse_gateway_text(base + "torch_threads: 0\n")
    assert parse_gateway_text(base).torch_threads == 1
    cfg = parse_gateway_text(base + f"store: {tmp_path / 'g.db'}\nsqlite_synchronous: full\n")
    gw = build_gateway(cfg)
    try:
        assert gw.db.synchronous == "full"
        with gw.db.raw_write("read a pragma of") as cur:
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == 2
    finally:
        gw.close()


def test_worker_torch_threads() -> None:
    import torch

    from bastion.gateway.server import set_torch_threads

    before = torch.get_num_threads()
    try:
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
        set_torch_threads(None)  # keeps whatever is set
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
