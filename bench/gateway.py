"""Gateway overhead: a bare FastAPI endpoint vs the Bastion gateway, on loopback.

What is measured: closed-loop load at a fixed concurrency (``--concurrency`` clients,
each sending its next request when the previous answer arrives) against servers that
all call the same digits CNN (1x8x8 input, 10 classes, from examples/models) on one
row per request. Throughput (requests/s) and latency percentiles over ``--seconds`` of
load; the contenders alternate within each repetition and the figures are medians over
``--repeat`` repetitions. Every server is one uvicorn process on 127.0.0.1; the load
generator is an asyncio httpx client in this process (on a small machine it competes
with the server for CPU — the same for every contender).

Contenders
----------
``bare``
    the limit: a FastAPI endpoint that parses ``{"input": [...]}``, runs the model in the
    threadpool and returns the scores. No auth, no checks, no audit.
``gateway: audit only``
    the Bastion gateway with no guards: JSON checks, the pipeline, the audit log entry
    (SQLite, WAL, one commit per request), metrics.
``gateway: auth + limits + validation``
    plus API-key authentication, a token bucket and input validation.
``gateway: full``
    plus OOD (knn), drift, PRADA extraction monitoring, obfuscation (top-3, 3 decimals)
    and an Ed25519 signature on every answer.

Gateways log at ``warning`` (no per-request log line) in this benchmark.

Usage::

    .venv/bin/python bench/gateway.py --quick
    .venv/bin/python bench/gateway.py --seconds 10 --repeat 5 --json bench-gateway.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PEPPER = "b" * 40

GUARDS = {
    "gateway: audit only": "[]",
    "gateway: auth + limits + validation": (
        "[access.authentication, {id: access.rate_limit, rate: 1000000, burst: 1000000}, "
        "input.validation]"
    ),
    "gateway: full": (
        "[access.authentication, {id: access.rate_limit, rate: 1000000, burst: 1000000}, "
        "input.validation, {id: input.ood, fpr: 0.01, action: flag}, "
        "{id: input.drift, window: 200, stride: 50}, "
        "{id: extraction.prada, action: flag, test_every: 5}, "
        "{id: output.obfuscation, top_k: 3, decimals: 3}, output.signature]"
    ),
}

BARE_APP = """
import numpy as np
from fastapi import FastAPI, Request
from bastion.demo.models import load_demo_models
target = load_demo_models({models!r})["digits_cnn"]
app = FastAPI()

def _predict(body):
    x = np.asarray([body["input"]], dtype=np.float32)
    return target.predict_proba(x).tolist()

@app.post("/v1/models/digits/predict")
async def predict(request: Request):
    from starlette.concurrency import run_in_threadpool
    body = await request.json()
    return {{"outputs": await run_in_threadpool(_predict, body)}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*argv, str(self.port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait(self, path: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                httpx.get(self.url + path, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def _load(
    url: str, headers: dict[str, str], body: bytes, conc: int, secs: float
) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + secs
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < stop_at:
                r = await client.post(url, content=body, headers=headers)
                if r.status_code != 200:
                    errors += 1
                lat.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - start
    lat.sort()
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "requests": len(lat),
        "errors": errors,
    }


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s of load, 2 repetitions")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="clients for throughput")
    parser.add_argument(
        "--moderate",
        type=int,
        default=1,
        help="clients for the latency figures (a moderate, unsaturated load)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat = 2.0, 2
    sys.path.insert(0, str(ROOT / "src"))
    from bastion.guards.apikeys import ApiKeyStore
    from bastion.guards.db import GuardDB
    from bastion.guards.signing_keys import write_signing_key

    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    write_signing_key(tmp / "k.pem")
    row = json.dumps({"input": [[[0.5] * 8] * 8]}).encode()
    servers: list[Server] = []
    secrets: dict[str, str] = {}
    try:
        bare = tmp / "bare.py"
        bare.write_text(BARE_APP.format(models=str(ROOT / "examples" / "models")))
        servers.append(
            Server(
                "bare",
                [
                    sys.executable,
                    "-c",
                    f"import sys, uvicorn; sys.path.insert(0, {str(tmp)!r}); "
                    "uvicorn.run('bare:app', host='127.0.0.1', port=int(sys.argv[1]), "
                    "log_level='warning', access_log=False)",
                ],
                {},
            )
        )
        for i, (name, guards) in enumerate(GUARDS.items()):
            store = tmp / f"g{i}.db"
            cfg = tmp / f"g{i}.yaml"
            cfg.write_text(
                f"store: {store}\nsigning_key_file: {tmp / 'k.pem'}\n"
                f"log_level: warning\nmodels:\n  - name: digits\n    demo: digits\n"
                f"    guards: {guards}\n"
            )
            keys = ApiKeyStore(GuardDB(str(store)), pepper=PEPPER.encode())
            secrets[name] = keys.create("bench", models=["digits"]).secret
            keys.db.close()
            servers.append(
                Server(
                    name,
                    [
                        sys.executable,
                        "-c",
                        "import sys; from bastion.gateway.server import serve; "
                        f"serve({str(cfg)!r}, port=int(sys.argv[1]))",
                    ],
                    {"BASTION_API_KEY_PEPPER": PEPPER},
                )
            )
        for s in servers:
            s.wait("/docs")
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        for s in servers:  # warm-up
            h = {"Authorization": f"Bearer {secrets[s.name]}"} if s.name in secrets else {}
            asyncio.run(_load(s.url + "/v1/models/digits/predict", h, row, 2, 0.5))
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else servers[::-1]
            for s in order:
                h = {"Content-Type": "application/json"}
                if s.name in secrets:
                    h["Authorization"] = f"Bearer {secrets[s.name]}"
                url = s.url + "/v1/models/digits/predict"
                sat = asyncio.run(_load(url, h, row, args.concurrency, args.seconds))
                mod = asyncio.run(_load(url, h, row, args.moderate, args.seconds))
                res = {
                    "rps": sat["rps"],
                    "sat_p99_ms": sat["p99_ms"],
                    "mod_rps": mod["rps"],
                    "p50_ms": mod["p50_ms"],
                    "p99_ms": mod["p99_ms"],
                    "errors": sat["errors"] + mod["errors"],
                }
                runs[s.name].append(res)
                print(
                    f"rep {rep} {s.name:38s} {res['rps']:8.1f} req/s (c={args.concurrency}); "
                    f"c={args.moderate}: p50 {res['p50_ms']:6.2f} ms p99 {res['p99_ms']:6.2f} ms "
                    f"errors {res['errors']}",
                    flush=True,
                )
    finally:
        for s in servers:
            s.stop()
    fields = ("rps", "sat_p99_ms", "mod_rps", "p50_ms", "p99_ms")
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in fields} for name, rs in runs.items()
    }
    base = med["bare"]
    print(
        f"\n| contender | req/s (c={args.concurrency}) | × bare | p50 ms (c={args.moderate}) | "
        f"p99 ms (c={args.moderate}) | added p50 ms | added p99 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        print(
            f"| {name} | {m['rps']:.0f} | {m['rps'] / base['rps']:.2f} | {m['p50_ms']:.2f} | "
            f"{m['p99_ms']:.2f} | {m['p50_ms'] - base['p50_ms']:+.2f} | "
            f"{m['p99_ms'] - base['p99_ms']:+.2f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": _machine(),
                    "args": vars(args) | {"json": str(args.json)},
                    "runs": runs,
                    "medians": med,
                },
                indent=2,
            )
        )
    print(json.dumps(_machine()))


if __name__ == "__main__":
    main()
