"""Running the gateway under uvicorn: one process, or several workers sharing Redis.

Each worker process sets torch's intra-op threads to the config's ``torch_threads``
(1 by default: a worker answers many small requests at once, and several workers
each running a CPU-sized thread pool oversubscribe the machine).

With one worker the app is built in this process. With ``workers > 1`` uvicorn starts
that many processes, each building the app from the config file named in
``BASTION_GATEWAY_CONFIG`` (:func:`app_from_env`); rate limits must then live in Redis
(``redis_url_env``), or every worker would grant the whole budget. On SIGTERM or
Ctrl-C uvicorn stops accepting connections, lets in-flight requests finish (up to
``drain_s`` seconds) and then the app signs the audit log's head and closes the store.

Examples
--------
>>> from bastion.gateway.config import parse_gateway_text
>>> cfg = parse_gateway_text("models: [{name: d, demo: digits, guards: "
...                          "[{id: access.rate_limit, rate: 1, burst: 1}]}]")
>>> check_workers(cfg, 2)  # doctest: +ELLIPSIS, +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
bastion.errors.ConfigError: Rate limits with 2 workers need a shared Redis...
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from bastion.errors import ConfigError, UsageError
from bastion.gateway.config import GatewayConfig, load_gateway_config

__all__ = ["CONFIG_ENV", "app_from_env", "check_workers", "serve", "set_torch_threads"]

CONFIG_ENV = "BASTION_GATEWAY_CONFIG"
"""Environment variable naming the config file each worker process reads."""


def app_from_env() -> FastAPI:
    """The app for the config file in ``BASTION_GATEWAY_CONFIG`` (uvicorn factory)."""
    from bastion.gateway.app import create_app
    from bastion.gateway.logs import configure_logging

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise UsageError(f"Set {CONFIG_ENV} to the gateway config file.")
    config = load_gateway_config(path)
    configure_logging(config.log_level)
    set_torch_threads(config.torch_threads)
    return create_app(config)


def set_torch_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` in this process (nothing when None or without torch)."""
    if n is None:
        return
    try:
        import torch
    except ImportError:  # no torch models in this install
        return
    torch.set_num_threads(n)


def check_workers(config: GatewayConfig, workers: int) -> None:
    """Refuse several workers with in-memory rate limits (each would grant the budget)."""
    if workers < 1:
        raise UsageError("--workers must be at least 1.")
    limited = any("access.rate_limit" in m.guard_ids() for m in config.models)
    shared = config.redis_url or (config.redis_url_env and os.environ.get(config.redis_url_env))
    if workers > 1 and limited and not shared:
        raise ConfigError(
            f"Rate limits with {workers} workers need a shared Redis: set 'redis_url_env' in "
            "the config (and that variable), or run one worker."
        )


def serve(
    config_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    drain_s: float = 30.0,
) -> None:
    """Serve the gateway described by ``config_path`` until interrupted."""
    import uvicorn

    config = load_gateway_config(config_path)
    check_workers(config, workers)
    from bastion.gateway.logs import configure_logging

    configure_logging(config.log_level)
    os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    uvicorn.run(
        "bastion.gateway.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(drain_s),
        server_header=False,
    )
