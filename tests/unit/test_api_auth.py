"""Bearer JWT authentication: only the configured key's algorithm, expiry, audience, issuer, tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from execution_stream.api.auth import AuthConfigurationError, TokenVerifier
from execution_stream.api.errors import UnauthorizedError
from execution_stream.settings import Settings
from tests.support.api import SECRET, hs256_settings, rsa_pem_pair, token


def rs256_settings(**overrides: Any) -> Settings:
    return Settings(jwt_public_key=SecretStr(rsa_pem_pair()[1]), **overrides)


def hs256() -> TokenVerifier:
    return TokenVerifier.from_settings(hs256_settings())


def rs256() -> TokenVerifier:
    return TokenVerifier.from_settings(rs256_settings())


def refused(verifier: TokenVerifier, authorization: str | None) -> str:
    with pytest.raises(UnauthorizedError) as caught:
        verifier.tenant_of(authorization)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer ")
    return caught.value.message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims(tenant_id: str = "tenant-a") -> dict[str, Any]:
    return {"tenant_id": tenant_id, "exp": 4_102_444_800}  # 2100-01-01


def test_valid_hs256_token_names_the_tenant() -> None:
    assert hs256().tenant_of(f"Bearer {token('tenant-a')}") == "tenant-a"


def test_scheme_is_case_insensitive() -> None:
    assert hs256().tenant_of(f"bearer {token('tenant-a')}") == "tenant-a"


def test_valid_rs256_token_names_the_tenant() -> None:
    signed = token("tenant-r", key=rsa_pem_pair()[0], algorithm="RS256")
    assert rs256().tenant_of(f"Bearer {signed}") == "tenant-r"


def test_expired_token_is_refused() -> None:
    assert refused(hs256(), f"Bearer {token(expires_in=-3600)}") == "token has expired"


def test_token_without_exp_is_refused() -> None:
    assert "'exp'" in refused(hs256(), f"Bearer {token(expires_in=None)}")


def test_token_signed_with_another_secret_is_refused() -> None:
    other = token(key="another-secret-that-is-also-32-bytes-long")
    assert refused(hs256(), f"Bearer {other}") == "token signature is invalid"


def test_tampered_payload_is_refused() -> None:
    header, _, signature = token("tenant-a").split(".")
    forged_payload = _b64(json.dumps(claims("tenant-b")).encode())
    assert "signature" in refused(hs256(), f"Bearer {header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("verifier", [hs256, rs256])
def test_alg_none_is_refused(verifier: Any) -> None:
    unsigned = handmade({"alg": "none", "typ": "JWT"}, claims(), None)
    assert "algorithm is not accepted" in refused(verifier(), f"Bearer {unsigned}")


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    public_pem = rsa_pem_pair()[1].encode()
    confused = handmade({"alg": "HS256", "typ": "JWT"}, claims(), public_pem)
    assert "algorithm is not accepted" in refused(rs256(), f"Bearer {confused}")


def test_key_confusion_fails_even_with_both_keys_configured() -> None:
    verifier = TokenVerifier.from_settings(
        rs256_settings(jwt_secret=SecretStr(SECRET)),
    )
    confused = handmade({"alg": "HS256", "typ": "JWT"}, claims(), rsa_pem_pair()[1].encode())
    assert refused(verifier, f"Bearer {confused}") == "token signature is invalid"
    assert verifier.tenant_of(f"Bearer {token('tenant-h')}") == "tenant-h"
    rs_token = token("tenant-r", key=rsa_pem_pair()[0], algorithm="RS256")
    assert verifier.tenant_of(f"Bearer {rs_token}") == "tenant-r"


def test_rs256_only_refuses_hs256_tokens() -> None:
    assert "algorithm is not accepted (accepted: RS256)" in refused(rs256(), f"Bearer {token()}")


def test_hs256_only_refuses_rs256_tokens() -> None:
    rs_token = token(key=rsa_pem_pair()[0], algorithm="RS256")
    assert "accepted: HS256" in refused(hs256(), f"Bearer {rs_token}")


@pytest.mark.parametrize("alg", [["HS256"], 256, None, {"x": 1}])
def test_non_string_alg_header_is_refused(alg: Any) -> None:
    odd = handmade({"alg": alg}, claims(), SECRET.encode())
    assert "algorithm is not accepted" in refused(hs256(), f"Bearer {odd}")


def test_missing_tenant_claim_is_refused() -> None:
    assert refused(hs256(), f"Bearer {token(None)}") == "token has no 'tenant_id' claim"


@pytest.mark.parametrize("tenant", ["", 42, ["tenant-a"], {"id": "x"}, True])
def test_tenant_claim_must_be_a_non_empty_string(tenant: Any) -> None:
    message = refused(hs256(), f"Bearer {token(tenant)}")
    assert message == "token's 'tenant_id' claim must be a non-empty string"


@pytest.mark.parametrize("tenant", ["a#b", "TENANT#x", "tab\there", "x" * 257])
def test_tenant_claim_must_fit_the_key_scheme(tenant: str) -> None:
    assert "not a valid tenant id" in refused(hs256(), f"Bearer {token(tenant)}")


def test_tenant_claim_name_is_a_setting() -> None:
    verifier = TokenVerifier.from_settings(hs256_settings(jwt_tenant_claim="org"))
    assert verifier.tenant_of(f"Bearer {token('tenant-o', claim='org')}") == "tenant-o"
    assert "'org'" in refused(verifier, f"Bearer {token('tenant-o')}")


def test_audience_is_checked_when_set() -> None:
    verifier = TokenVerifier.from_settings(hs256_settings(jwt_audience="web-view"))
    assert verifier.tenant_of(f"Bearer {token(aud='web-view')}") == "tenant-a"
    assert refused(verifier, f"Bearer {token(aud='billing')}") == "token audience is not accepted"
    assert "'aud'" in refused(verifier, f"Bearer {token()}")


def test_issuer_is_checked_when_set() -> None:
    verifier = TokenVerifier.from_settings(hs256_settings(jwt_issuer="https://auth.example"))
    assert verifier.tenant_of(f"Bearer {token(iss='https://auth.example')}") == "tenant-a"
    assert refused(verifier, f"Bearer {token(iss='https://evil.example')}") == (
        "token issuer is not accepted"
    )
    assert "'iss'" in refused(verifier, f"Bearer {token()}")


def test_not_yet_valid_token_is_refused() -> None:
    assert refused(hs256(), f"Bearer {token(nbf=4_102_444_800)}") == "token is not valid yet"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer abc", "malformed Authorization header"),
        ("Bearer a.b.c.d", "malformed Authorization header"),
        ("Bearer a b.c", "malformed Authorization header"),
        ("Bearer " + "a" * 9000 + ".b.c", "too long"),
        ("Bearer aaaa.bbbb.cccc", "token is malformed"),
        ("Bearer ..", "malformed Authorization header"),
        ("Bearer WzFd.e30.", "token is malformed"),  # header [1]: JSON, not an object
        ("Bearer e30.WzFd.", "algorithm is not accepted"),  # header {} names no algorithm
    ],
)
def test_malformed_authorization_is_refused(authorization: str | None, expected: str) -> None:
    assert expected in refused(hs256(), authorization)


def test_no_key_configured_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigurationError):
        TokenVerifier.from_settings(Settings(jwt_secret=None, jwt_public_key=None))


def test_public_key_must_be_an_rsa_pem() -> None:
    with pytest.raises(AuthConfigurationError, match="not a PEM public key"):
        TokenVerifier.from_settings(Settings(jwt_public_key=SecretStr("not a key")))
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(AuthConfigurationError, match="must be an RSA key"):
        TokenVerifier.from_settings(Settings(jwt_public_key=SecretStr(ec_pem)))
