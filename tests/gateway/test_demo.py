"""``bastion serve --demo``: the README's one command, end to end in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.keys_cmd import register as register_keys
from bastion.data.demo import load_digits_dataset
from bastion.guards.signing import verify_signed_output
from bastion.guards.signing_keys import load_public_key
from tests.gateway.procs import GatewayProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LAUNCH = (
    "import sys, typer; from bastion.cli.serve_cmd import register; app = typer.Typer(); "
    "app.callback()(lambda: None); register(app); "
    "app(['serve', '--demo', '--port', sys.argv[1]])"
)


def test_serve_demo_prints_how_to_call_it_and_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    log = (tmp_path / "out.txt").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        waiter = GatewayProcess.__new__(GatewayProcess)
        waiter.proc, waiter.url = proc, f"http://127.0.0.1:{port}"
        waiter.wait_ready()
        printed = (tmp_path / "out.txt").read_text()
        assert "bastion keys create" in printed and "/v1/models/digits/predict" in printed
        folder = tmp_path / ".bastion"
        app = typer.Typer()
        register_keys(app)
        created = CliRunner(env={"BASTION_API_KEY_PEPPER_FILE": str(folder / "gateway-pepper")})
        result = created.invoke(
            app,
            [
                "keys",
                "create",
                "--store",
                str(folder / "bastion.db"),
                "--principal",
                "me",
                "--model",
                "digits",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        import json

        secret = json.loads(result.output)["secret"]
        image = load_digits_dataset().x_test[0].tolist()
        r = httpx.post(
            f"{waiter.url}/v1/models/digits/predict",
            json={"input": image},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["output"]) == 10
        pub = load_public_key(folder / "gateway-signing.pem.pub")
        verify_signed_output(r.json(), pub, inputs=[image], model="digits")
        assert (
            httpx.post(f"{waiter.url}/v1/models/digits/predict", json={"input": image}).status_code
            == 401
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
