"""Shared, cached models and servers for the black-box evasion tests.

Each model trains once per test session (they take about a second each). The
``one_thread`` fixture runs a test module's torch work on one CPU thread: the models
are tiny and on a shared two-core machine extra threads only fight each other.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import torch

from bastion.data import Dataset
from bastion.data.demo import load_breast_cancer_dataset, load_digits_dataset
from bastion.data.intrusion import load_intrusion_dataset
from bastion.demo import train_breast_cancer_model, train_digits_cnn
from bastion.demo.intrusion import train_intrusion_mlp
from bastion.targets import FakeTarget, InputSpec, Target
from bastion.targets.sklearn_target import SklearnTarget
from bastion.targets.torch_target import TorchTarget


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def digits() -> tuple[Dataset, torch.nn.Module]:
    data = load_digits_dataset()
    with _threads(1):
        return data, train_digits_cnn(data).module


def digits_target(**kw: Any) -> TorchTarget:
    data, module = digits()
    return TorchTarget(module, input_spec=_digits_spec(), classes=list(data.classes), **kw)


def _digits_spec() -> InputSpec:
    return InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)


def label_only(target: Target, **kw: Any) -> FakeTarget:
    """The same model behind a label-only interface."""
    return FakeTarget(
        target.predict_proba,
        input_spec=target.input_spec,
        classes=target.classes,
        labels_only=True,
        **kw,
    )


@functools.cache
def cancer() -> tuple[Dataset, Any]:
    data = load_breast_cancer_dataset()
    return data, train_breast_cancer_model(data).estimator


def cancer_target(**kw: Any) -> SklearnTarget:
    data, estimator = cancer()
    lo = np.concatenate([data.x_train, data.x_test]).min(axis=0)
    hi = np.concatenate([data.x_train, data.x_test]).max(axis=0)
    return SklearnTarget(
        estimator,
        input_spec=InputSpec(
            shape=(30,),
            lower=[float(v) for v in lo],
            upper=[float(v) for v in hi],
            feature_names=list(data.feature_names or []),
        ),
        classes=list(data.classes),
        **kw,
    )


@functools.cache
def intrusion() -> tuple[Dataset, torch.nn.Module]:
    data = load_intrusion_dataset()
    with _threads(1):
        return data, train_intrusion_mlp(data).module


def intrusion_target(**kw: Any) -> TorchTarget:
    from bastion.data.intrusion import intrusion_input_spec

    data, module = intrusion()
    return TorchTarget(module, input_spec=intrusion_input_spec(), classes=list(data.classes), **kw)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def serve_labels(target: Target) -> Iterator[str]:
    """A loopback endpoint answering ``{"labels": ["<class>", ...]}`` (labels only)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            rows = np.asarray(body["instances"], dtype=np.float32)
            labels = [target.classes[i] for i in target.predict(rows)]
            raw = json.dumps({"labels": labels}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/predict"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
