"""output.signature: Ed25519 over request digest, model and version, output and time."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bastion.errors import UsageError
from bastion.guards import (
    Guarded,
    InputValidationGuard,
    MemorySink,
    ObfuscationGuard,
    ObfuscationPolicy,
    OutputSigner,
    SignatureInvalid,
    request_digest,
    verify_signed_output,
)
from bastion.guards.base import GuardRequest, GuardResponse
from bastion.guards.canonical import array_digest, b64url_encode
from bastion.guards.pipeline import (
    INPUT_DIGEST_HEADER,
    MODEL_VERSION_HEADER,
    REQUEST_ID_HEADER,
    digest_inputs,
)
from bastion.guards.signing_keys import (
    generate_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    signing_key_from_env,
    write_signing_key,
)
from bastion.targets import FakeTarget
from tests.guards.test_canonical import reference_canonical_json, reference_jsonable

ROWS = [[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]]


class Clock:
    now = 1_750_000_000.25

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def signed() -> tuple[Any, dict[str, Any], Guarded]:
    key = generate_signing_key()
    target = FakeTarget.linear(n_features=3, n_classes=3, seed=2, name="digits")
    guarded = Guarded(
        target,
        [
            OutputSigner(key, clock=Clock()),
            ObfuscationGuard(ObfuscationPolicy(decimals=3)),
            InputValidationGuard.for_target(target),
        ],
        model_version="2.1",
    )
    outcome = guarded.handle_inputs(ROWS)
    body = json.loads(json.dumps(outcome.body()))  # exactly what travels over the wire
    return key, body, guarded


def test_signed_response_verifies_and_binds_everything(
    signed: tuple[Any, dict[str, Any], Guarded],
) -> None:
    key, body, _ = signed
    result = verify_signed_output(
        body, key.public_key(), inputs=ROWS, model="digits", max_age_s=60, now=Clock.now + 5
    )
    assert (result.model, result.model_version, result.request_id) == (
        "digits",
        "2.1",
        body["request_id"],
    )
    assert result.output == body["outputs"]  # the signature covers the obfuscated output
    assert result.request_digest == request_digest(ROWS, "float32")
    assert result.timestamp.timestamp() == pytest.approx(Clock.now)
    assert verify_signed_output(body["signature"], key.public_key()).kid == key_id(key.public_key())


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("outputs", 0, 0), 0.999, "outputs differ"),
        (("signature", "signed", "output", 0, 0), 0.999, "does not verify"),
        (("signature", "signed", "model"), "other", "does not verify"),
        (("signature", "signed", "model_version"), "9", "does not verify"),
        (("signature", "signed", "timestamp"), "2030-01-01T00:00:00.000000Z", "does not verify"),
        (("signature", "signed", "request_digest"), "sha256:00", "does not verify"),
        (("signature", "signature"), "AAAA", "does not verify"),
        (("signature", "signed", "kid"), "0000000000000000", "signed with key"),
        (("signature", "signed", "alg"), "HS256", "Unsupported"),
    ],
)
def test_any_alteration_is_caught(
    signed: tuple[Any, dict[str, Any], Guarded], path: tuple[Any, ...], value: Any, message: str
) -> None:
    key, body, _ = signed
    tampered = copy.deepcopy(body)
    node = tampered
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(SignatureInvalid, match=message):
        verify_signed_output(tampered, key.public_key())


def test_wrong_inputs_model_key_age_and_shape(signed: tuple[Any, dict[str, Any], Guarded]) -> None:
    key, body, _ = signed
    with pytest.raises(SignatureInvalid, match="different inputs"):
        verify_signed_output(body, key.public_key(), inputs=[[0.1, 0.2, 0.31], ROWS[1]])
    with pytest.raises(SignatureInvalid, match="for model 'digits', not 'cancer'"):
        verify_signed_output(body, key.public_key(), model="cancer")
    with pytest.raises(SignatureInvalid, match="signed with key"):
        verify_signed_output(body, generate_signing_key().public_key())
    with pytest.raises(SignatureInvalid, match="old"):
        verify_signed_output(body, key.public_key(), max_age_s=60, now=Clock.now + 3600)
    for broken in [[], {"signature": "x"}, {"signature": {"signed": {"v": 1}}}]:
        with pytest.raises(SignatureInvalid):
            verify_signed_output(broken, key.public_key())  # type: ignore[arg-type]


def test_denied_requests_are_not_signed(signed: tuple[Any, dict[str, Any], Guarded]) -> None:
    _, _, guarded = signed
    outcome = guarded.handle_inputs([[5.0, 0.0, 0.0]])
    assert outcome.http_status == 422 and "signature" not in outcome.body()


def test_key_files_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.pem"
    key = write_signing_key(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert key_id(load_public_key(Path(f"{path}.pub"))) == key_id(key.public_key())
    assert key_id(load_private_key(path).public_key()) == key_id(key.public_key())
    assert key_id(load_public_key(path)) == key_id(key.public_key())  # public half of a private PEM
    env_key = signing_key_from_env({"BASTION_SIGNING_KEY_FILE": str(path)})
    assert env_key is not None and key_id(env_key.public_key()) == key_id(key.public_key())
    assert signing_key_from_env({}) is None
    with pytest.raises(UsageError, match="already exists"):
        write_signing_key(path)
    (tmp_path / "junk.pem").write_text("-----BEGIN NONSENSE-----\n")
    with pytest.raises(UsageError, match="not an unencrypted PEM"):
        load_private_key(tmp_path / "junk.pem")
    with pytest.raises(UsageError, match="Cannot read"):
        load_public_key(tmp_path / "missing.pem")
    with pytest.raises(UsageError):
        OutputSigner("not a key")  # type: ignore[arg-type]


def reference_document(
    signer: OutputSigner, request: GuardRequest, outputs: np.ndarray, now: float
) -> dict[str, Any]:
    """The signed document as OutputSigner built it before its fast path (kept verbatim)."""
    inputs = request.inputs
    digest = (
        array_digest(inputs)
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "iuf"
        else digest_inputs(inputs)
    )
    return {
        "v": 1,
        "alg": "Ed25519",
        "kid": signer.kid,
        "request_id": request.headers.get(REQUEST_ID_HEADER, ""),
        "request_digest": digest,
        "model": request.model,
        "model_version": request.headers.get(MODEL_VERSION_HEADER, ""),
        "output": reference_jsonable(np.asarray(outputs)),
        "timestamp": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


KEY = generate_signing_key()
output_arrays = st.sampled_from([np.float32, np.float64, np.int64, np.bool_]).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=2, max_side=12))
)


@settings(max_examples=300, deadline=None)
@given(
    output_arrays,
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 4))),
    st.floats(0, 4e9, allow_nan=False),
    st.text(max_size=8),
)
def test_the_fast_signature_equals_the_reference_one(
    outputs: np.ndarray, inputs: np.ndarray, now: float, version: str
) -> None:
    signer = OutputSigner(KEY, clock=lambda: now)
    request = GuardRequest(
        principal="p",
        model="digits",
        inputs=inputs,
        headers={REQUEST_ID_HEADER: "r1", MODEL_VERSION_HEADER: version},
    )
    try:
        expected = reference_document(signer, request, outputs, now)
        text = reference_canonical_json(expected).encode("ascii")
    except UsageError as err:  # a NaN or infinity: refused with the same message
        with pytest.raises(UsageError, match=re.escape(str(err))):
            signer.after(request, GuardResponse(outputs))
        with pytest.raises(UsageError, match=re.escape(str(err))):
            signer.document(request, outputs)
        return
    fields = signer.after(request, GuardResponse(outputs)).payload.fields["signature"]
    assert json.dumps(fields["signed"]) == json.dumps(expected)  # same values, same types
    assert fields["signature"] == b64url_encode(KEY.sign(text))  # Ed25519 is deterministic
    assert signer.document(request, outputs) == expected


def test_the_request_digest_comes_from_the_pipeline_header() -> None:
    signer = OutputSigner(KEY)
    x = np.array([[0.5, 0.25]], dtype=np.float32)
    request = GuardRequest(principal="p", model="m", inputs=x, headers={})
    assert signer.document(request, np.zeros((1, 2)))["request_digest"] == array_digest(x)
    stamped = GuardRequest(
        principal="p", model="m", inputs=x, headers={INPUT_DIGEST_HEADER: "sha256:given"}
    )
    assert signer.document(stamped, np.zeros((1, 2)))["request_digest"] == "sha256:given"


def test_the_signed_digest_is_the_audited_one_and_callers_cannot_set_it() -> None:
    target = FakeTarget.linear(n_features=3, n_classes=3, seed=2, name="digits")
    sink = MemorySink()
    guarded = Guarded(target, [OutputSigner(KEY)], sinks=[sink])
    outcome = guarded.handle_inputs(ROWS, headers={INPUT_DIGEST_HEADER: "sha256:forged"})
    signed = outcome.fields["signature"]["signed"]
    assert signed["request_digest"] == sink.outcomes[0].input_digest != "sha256:forged"
    body = json.loads(json.dumps(outcome.body()))
    assert verify_signed_output(body, KEY.public_key(), inputs=ROWS).model == "digits"
