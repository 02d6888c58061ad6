"""Malformed input: Hypothesis-generated bodies and headers never yield a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.gateway.app import create_app
from bastion.gateway.config import parse_gateway_text

CONFIG = """
models:
  - name: bc
    demo: breast_cancer
    guards: [{id: access.rate_limit, rate: 1000000, burst: 1000000}, input.validation]
"""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=32) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=80,
)
row = st.lists(st.floats(-1e3, 1e3) | st.integers(-5, 5) | scalars, min_size=0, max_size=34)
bodies = st.one_of(
    values,
    st.fixed_dictionaries({"input": values}),
    st.fixed_dictionaries({"instances": values}),
    st.fixed_dictionaries({"input": row}),
    st.fixed_dictionaries({"instances": st.lists(row, min_size=1, max_size=4)}),
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    cfg = parse_gateway_text(CONFIG, "fuzz.yaml")
    with TestClient(create_app(cfg, store_url="sqlite://")) as c:
        yield c


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_json_bodies_never_give_5xx(client: TestClient, body: Any) -> None:
    text = json.dumps(body, allow_nan=True)
    r = client.post("/v1/models/bc/predict", content=text.encode())
    assert r.status_code < 500, (r.status_code, r.text[:200])
    assert r.status_code in (200, 400, 404, 413, 422), r.status_code
    if r.status_code != 200:
        assert r.json()["error"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200), model=st.text(min_size=1, max_size=12))
def test_raw_bytes_and_odd_model_names_never_give_5xx(
    client: TestClient, raw: bytes, model: str
) -> None:
    r = client.post(f"/v1/models/{quote(model, safe='')}/predict", content=raw)
    assert r.status_code < 500, (r.status_code, r.text[:200])


def test_oversized_body_is_413(client: TestClient) -> None:
    big = b'{"input": [' + b"1," * (9 * 2**20) + b"1]}"
    assert client.post("/v1/models/bc/predict", content=big).status_code == 413
