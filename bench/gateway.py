"""Gateway overhead: a bare FastAPI endpoint vs the Bastion gateway, on loopback.

What is measured: closed-loop load at a fixed concurrency (``--concurrency`` clients,
each sending its next request when the previous answer arrives) against servers that
all call the same digits CNN (1x8x8 input, 10 classes, from examples/models) on one
row per request; the rows are the 451 test digits in turn (real, in-distribution,
never-repeating traffic: the OOD, drift and PRADA guards do their full work; every
client starts at its own offset), the same sequence for every contender. Throughput
(requests/s) and latency percentiles over ``--seconds`` of load. Every server is one
uvicorn process on 127.0.0.1; the load generator is a minimal asyncio HTTP/1.1
keep-alive client in this process (raw sockets, a few tens of microseconds per request,
so it takes little CPU from the servers on a small machine — the same for every
contender).

Each repetition has two phases. *Throughput*: every contender in turn (order reversed
every other repetition) gets ``--seconds`` of closed-loop load from ``--concurrency``
clients. *Latency at a moderate load*: ``--moderate`` clients each send one request to
every contender in turn, round-robin, for ``--seconds`` x contenders, so every
server is sampled in the same moments (a busy spell of a shared machine hits all of
them alike) and sees at most ``--moderate`` requests at a time. The ratio to bare and
the added latency are computed **within each repetition**; the table gives their
median and their range over ``--repeat`` repetitions. *Server CPU per request*
(Linux): the server process's user + system CPU time over the throughput phase,
divided by the requests answered — less sensitive to other jobs on the machine than
requests/s.

Contenders
----------
``bare``
    the limit: a FastAPI endpoint that parses ``{"input": [...]}``, runs the model in the
    threadpool and returns the scores. No auth, no checks, no audit. torch runs with one
    intra-op thread, as in the gateway (its ``torch_threads`` default).
``bare, inline``
    the same endpoint calling the model on the event loop (no worker-thread hop): the
    stricter limit for a model this small, and the one the gateway's ``execution:
    auto`` is compared with.
``gateway: audit only``
    the Bastion gateway with no guards: JSON checks, the pipeline, the audit log entry
    (SQLite, WAL, ``synchronous=NORMAL``, group commit), metrics.
``gateway: auth + limits + validation``
    plus API-key authentication, a token bucket and input validation.
``gateway: full``
    plus OOD (knn), drift, PRADA extraction monitoring, obfuscation (top-3, 3 decimals)
    and an Ed25519 signature on every answer.
``gateway: full, threadpool`` (with ``--with-threadpool``)
    the full pipeline with ``execution: threadpool`` (a worker thread per request).
``gateway: full, synchronous=FULL`` (with ``--with-full-sync``)
    the same with ``sqlite_synchronous: full`` (an fsync per audit transaction).
``... [baseline]`` (with ``--baseline-src DIR``)
    ``audit only`` and ``full`` served by another copy of the package (``DIR`` is its
    ``src`` folder, with ``examples/models`` beside it), e.g. an older commit, measured
    in the same repetitions as the rest.

The audit log group-commits entries of concurrent requests (each answer still waits
for its own entry's commit); the table's last column is entries per transaction.

Gateways log at ``warning`` (no per-request log line) in this benchmark. Every server
runs with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``.

Usage::

    .venv/bin/python bench/gateway.py --quick
    mkdir -p /tmp/base && git archive 511dd17 src examples | tar -x -C /tmp/base  # baseline
    .venv/bin/python bench/gateway.py --seconds 5 --repeat 4 --with-full-sync \\
        --baseline-src /tmp/base/src --json bench-gateway.json
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
SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""Every server's environment (docs/guards.md recommends it for servers)."""
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
import torch
torch.set_num_threads(1)  # as each gateway worker does by default (torch_threads: 1)
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

BARE_INLINE_APP = BARE_APP.replace("await run_in_threadpool(_predict, body)", "_predict(body)")
"""The same endpoint calling the model on the event loop (no worker-thread hop)."""


BARE_INLINE = "bare, inline"


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
            env={**os.environ, **SERVER_ENV, **env},
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


def _request_bytes(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Conn:
    """A keep-alive HTTP/1.1 connection that sends the given requests in turn and times them."""

    def __init__(self, port: int, requests: list[bytes], start: int = 0) -> None:
        self.port = port
        self.requests = requests
        self.next = start % len(requests)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> tuple[int, float]:
        """(status, seconds) of one request."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        t0 = time.perf_counter()
        self.writer.write(self.requests[self.next])
        self.next = (self.next + 1) % len(self.requests)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        elapsed = time.perf_counter() - t0
        if close:
            self.close()
        return status, elapsed

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(lat: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    lat = sorted(lat)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "requests": len(lat),
        "errors": errors,
    }


async def _load(request: list[bytes], port: int, conc: int, secs: float) -> dict[str, Any]:
    """Closed loop: ``conc`` connections to one server for ``secs`` seconds."""
    lat: list[float] = []
    errors = 0

    async def client(k: int) -> None:
        nonlocal errors
        conn = _Conn(port, request, start=k * 57)
        try:
            while time.perf_counter() < stop_at:
                status, seconds = await conn.call()
                lat.append(seconds)
                errors += status != 200
        finally:
            conn.close()

    start = time.perf_counter()
    stop_at = start + secs
    await asyncio.gather(*(client(k) for k in range(conc)))
    return _summary(lat, errors, time.perf_counter() - start)


async def _interleaved(
    targets: list[tuple[int, list[bytes]]], clients: int, secs: float
) -> list[dict[str, Any]]:
    """Each client sends one request to every server in turn, for ``secs`` seconds.

    The servers are sampled in the same moments, so a busy spell of the machine hits
    them alike; each sees at most ``clients`` requests at a time.
    """
    lat: list[list[float]] = [[] for _ in targets]
    errors = [0] * len(targets)

    async def client(offset: int) -> None:
        conns = [_Conn(port, request, start=offset * 57) for port, request in targets]
        try:
            i = offset
            while time.perf_counter() < stop_at:
                k = i % len(conns)
                status, seconds = await conns[k].call()
                lat[k].append(seconds)
                errors[k] += status != 200
                i += 1
        finally:
            for conn in conns:
                conn.close()

    start = time.perf_counter()
    stop_at = start + secs
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - start
    return [_summary(lat[k], errors[k], elapsed) for k in range(len(targets))]


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


def _audit_counts(url: str) -> tuple[int, int]:
    """(entries, transactions) of a gateway's audit log, from its /metrics."""
    found = {"bastion_audit_entries_total": 0, "bastion_audit_commits_total": 0}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = int(float(value))
    return found["bastion_audit_entries_total"], found["bastion_audit_commits_total"]


def _spread(values: list[float], fmt: str) -> str:
    mid = statistics.median(values)
    if len(values) < 2:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(min(values), fmt)}…{format(max(values), fmt)})"


def _report(runs: dict[str, list[dict[str, Any]]], audit: dict[str, float], args: Any) -> None:
    """Markdown table: medians, and per-repetition ratios/differences to bare with ranges."""
    bare = runs["bare"]
    inline = runs[BARE_INLINE]
    print(
        f"\n| contender | req/s (c={args.concurrency}) | × bare (range) | × bare inline (range) "
        f"| p50 ms (c={args.moderate}) | p99 ms (c={args.moderate}) "
        "| added p50 ms (range) | added p99 ms (range) "
        "| server CPU µs/req | entries per commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        ratio = [r["rps"] / b["rps"] for r, b in zip(rs, bare, strict=True)]
        ratio_inline = [r["rps"] / b["rps"] for r, b in zip(rs, inline, strict=True)]
        d50 = [r["p50_ms"] - b["p50_ms"] for r, b in zip(rs, bare, strict=True)]
        d99 = [r["p99_ms"] - b["p99_ms"] for r, b in zip(rs, bare, strict=True)]
        batch = f"{audit[name]:.2f}" if name in audit else "—"
        cpus = [r["cpu_us"] for r in rs if r.get("cpu_us") is not None]
        cpu = f"{statistics.median(cpus):.0f}" if cpus else "—"
        print(
            f"| {name} | {statistics.median(r['rps'] for r in rs):.0f} | {_spread(ratio, '.2f')} "
            f"| {_spread(ratio_inline, '.2f')} "
            f"| {statistics.median(r['p50_ms'] for r in rs):.2f} "
            f"| {statistics.median(r['p99_ms'] for r in rs):.2f} "
            f"| {_spread(d50, '+.2f')} | {_spread(d99, '+.2f')} | {cpu} | {batch} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s of load, 2 repetitions")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="clients for throughput")
    parser.add_argument(
        "--moderate",
        type=int,
        default=1,
        help="clients for the latency figures (a moderate, unsaturated load)",
    )
    parser.add_argument(
        "--with-threadpool",
        action="store_true",
        help="add the full pipeline with execution: threadpool (a worker thread per request)",
    )
    parser.add_argument(
        "--with-full-sync",
        action="store_true",
        help="add the full pipeline with sqlite_synchronous: full",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also run 'audit only' and 'full' from another copy of src/ (e.g. an older "
        "commit: git archive COMMIT src examples | tar -x -C /tmp/base)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat = 2.0, 2
    sys.path.insert(0, str(ROOT / "src"))
    from bastion.guards.apikeys import ApiKeyStore
    from bastion.guards.db import GuardDB
    from bastion.guards.signing_keys import write_signing_key

    # (name, guards, sqlite_synchronous or None, source folder or None, execution or None)
    contenders: list[tuple[str, str, str | None, Path | None, str | None]] = [
        (name, guards, "normal", None, "auto") for name, guards in GUARDS.items()
    ]
    if args.with_threadpool:
        contenders.append(
            ("gateway: full, threadpool", GUARDS["gateway: full"], "normal", None, "threadpool")
        )
    if args.with_full_sync:
        contenders.append(
            ("gateway: full, synchronous=FULL", GUARDS["gateway: full"], "full", None, "auto")
        )
    if args.baseline_src is not None:
        for name in ("gateway: audit only", "gateway: full"):
            contenders.append((f"{name} [baseline]", GUARDS[name], None, args.baseline_src, None))
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    write_signing_key(tmp / "k.pem")
    # Real traffic: the 451 test digits in turn (in distribution, all different), the
    # same sequence for every contender.
    from bastion.data.demo import load_digits_dataset

    rows = [json.dumps({"input": x.tolist()}).encode() for x in load_digits_dataset(0).x_test]
    path = "/v1/models/digits/predict"
    servers: list[Server] = []
    secrets: dict[str, str] = {}
    audit: dict[str, float] = {}
    try:
        for bare_name, module, source in (
            ("bare", "bare", BARE_APP),
            (BARE_INLINE, "bare_inline", BARE_INLINE_APP),
        ):
            (tmp / f"{module}.py").write_text(
                source.format(models=str(ROOT / "examples" / "models"))
            )
            servers.append(
                Server(
                    bare_name,
                    [
                        sys.executable,
                        "-c",
                        f"import sys, uvicorn; sys.path.insert(0, {str(tmp)!r}); "
                        f"uvicorn.run('{module}:app', host='127.0.0.1', port=int(sys.argv[1]), "
                        "log_level='warning', access_log=False)",
                    ],
                    {},
                )
            )
        for i, (name, guards, sync, src, execution) in enumerate(contenders):
            store = tmp / f"g{i}.db"
            cfg = tmp / f"g{i}.yaml"
            cfg.write_text(
                f"store: {store}\nsigning_key_file: {tmp / 'k.pem'}\n"
                + (f"sqlite_synchronous: {sync}\n" if sync else "")
                + f"log_level: warning\nmodels:\n  - name: digits\n    demo: digits\n"
                f"    guards: {guards}\n" + (f"    execution: {execution}\n" if execution else "")
            )
            # A baseline runs another copy of the source, with torch on one thread as here.
            prelude = (
                f"sys.path.insert(0, {str(src)!r}); import torch; torch.set_num_threads(1); "
                if src is not None
                else ""
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
                        f"import sys; {prelude}from bastion.gateway.server import serve; "
                        f"serve({str(cfg)!r}, port=int(sys.argv[1]))",
                    ],
                    {"BASTION_API_KEY_PEPPER": PEPPER}
                    | ({"PYTHONPATH": str(src)} if src is not None else {}),
                )
            )
        for s in servers:
            s.wait("/docs")
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        requests: dict[str, list[bytes]] = {}
        for s in servers:
            h = {"Content-Type": "application/json"}
            if s.name in secrets:
                h["Authorization"] = f"Bearer {secrets[s.name]}"
            requests[s.name] = [_request_bytes(s.port, path, h, row) for row in rows]
            asyncio.run(_load(requests[s.name], s.port, 2, 0.5))  # warm-up
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else servers[::-1]
            sat: dict[str, dict[str, Any]] = {}
            for s in order:
                cpu0 = _cpu_seconds(s.proc.pid)
                sat[s.name] = asyncio.run(
                    _load(requests[s.name], s.port, args.concurrency, args.seconds)
                )
                cpu1 = _cpu_seconds(s.proc.pid)
                sat[s.name]["cpu_us"] = (
                    1e6 * (cpu1 - cpu0) / sat[s.name]["requests"]
                    if cpu0 is not None and cpu1 is not None
                    else None
                )
            mods = asyncio.run(
                _interleaved(
                    [(s.port, requests[s.name]) for s in servers],
                    args.moderate,
                    args.seconds * len(servers),
                )
            )
            for s, mod in zip(servers, mods, strict=True):
                res = {
                    "rps": sat[s.name]["rps"],
                    "sat_p99_ms": sat[s.name]["p99_ms"],
                    "cpu_us": sat[s.name]["cpu_us"],
                    "mod_requests": mod["requests"],
                    "p50_ms": mod["p50_ms"],
                    "p99_ms": mod["p99_ms"],
                    "errors": sat[s.name]["errors"] + mod["errors"],
                }
                runs[s.name].append(res)
                print(
                    f"rep {rep} {s.name:38s} {res['rps']:8.1f} req/s (c={args.concurrency}, "
                    f"{res['cpu_us'] or 0:5.0f} us CPU/req); "
                    f"c={args.moderate}: p50 {res['p50_ms']:6.2f} ms p99 {res['p99_ms']:6.2f} ms "
                    f"errors {res['errors']}",
                    flush=True,
                )
        for s in servers[2:]:
            entries, commits = _audit_counts(s.url)
            if commits:  # a baseline without the audit counters reports none
                audit[s.name] = entries / commits
    finally:
        for s in servers:
            s.stop()
    _report(runs, audit, args)
    if args.json:
        fields = ("rps", "sat_p99_ms", "p50_ms", "p99_ms", "cpu_us")
        med = {
            name: {
                k: statistics.median(r[k] for r in rs)
                if all(r[k] is not None for r in rs)
                else None
                for k in fields
            }
            for name, rs in runs.items()
        }
        args.json.write_text(
            json.dumps(
                {
                    "machine": _machine(),
                    "args": {
                        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    },
                    "runs": runs,
                    "medians": med,
                    "audit_entries_per_commit": audit,
                },
                indent=2,
            )
        )
    print(json.dumps(_machine()))


if __name__ == "__main__":
    main()
