"""The SDKs' signature vectors, byte for byte, plus key rotation and bad keys."""

from __future__ import annotations

import base64
import json

import pytest

from sgbridge.inbound.signature import InvalidPublicKey, SignatureVerifier
from tests.conftest import PEER_FIXTURES

VECTORS = json.loads((PEER_FIXTURES / "sendgrid" / "signature" / "vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_sdk_vectors(vector: dict) -> None:
    verifier = SignatureVerifier([vector["public_key_base64_der_spki"]])
    body = base64.b64decode(vector["payload_base64"])
    assert verifier.verify(vector["signature_header"], vector["timestamp_header"], body) is vector["expected_valid"]


def test_any_of_several_keys_verifies_during_rotation() -> None:
    valid = VECTORS[0]
    wrong_key = next(v for v in VECTORS if v["id"] == "single_event_wrong_public_key")["public_key_base64_der_spki"]
    verifier = SignatureVerifier([wrong_key, valid["public_key_base64_der_spki"]])
    body = base64.b64decode(valid["payload_base64"])
    assert verifier.verify(valid["signature_header"], valid["timestamp_header"], body)


def test_body_reserialised_by_json_fails() -> None:
    valid = VECTORS[0]
    body = base64.b64decode(valid["payload_base64"])
    reserialised = json.dumps(json.loads(body)).encode()
    verifier = SignatureVerifier([valid["public_key_base64_der_spki"]])
    assert not verifier.verify(valid["signature_header"], valid["timestamp_header"], reserialised)


@pytest.mark.parametrize("signature", ["", "not base64!!", base64.b64encode(b"garbage").decode()])
def test_malformed_signatures_are_false_not_errors(signature: str) -> None:
    valid = VECTORS[0]
    verifier = SignatureVerifier([valid["public_key_base64_der_spki"]])
    assert not verifier.verify(signature, valid["timestamp_header"], base64.b64decode(valid["payload_base64"]))


def test_pem_wrapped_key_is_accepted() -> None:
    valid = VECTORS[0]
    pem = "-----BEGIN PUBLIC KEY-----\n" + valid["public_key_base64_der_spki"] + "\n-----END PUBLIC KEY-----\n"
    assert SignatureVerifier([pem]).verify(valid["signature_header"], valid["timestamp_header"],
                                           base64.b64decode(valid["payload_base64"]))


@pytest.mark.parametrize("key", ["not-a-key", base64.b64encode(b"\x30\x03\x02\x01\x01").decode()])
def test_unusable_key_is_a_clear_error(key: str) -> None:
    with pytest.raises(InvalidPublicKey):
        SignatureVerifier([key])
