"""Bearer JWT authentication (the seed's `jit-auth`): the caller's tenant comes from the token.

Only the algorithm of the configured key is accepted: HS256 with `jwt_secret`, RS256 with
`jwt_public_key` (both may be set; each algorithm then verifies with its own key and never with the
other one). So `alg: none`, and HS256 tokens signed with the public key as their secret (algorithm
confusion), are refused. `exp` is required; `aud` and `iss` are checked when configured.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from execution_stream.api.errors import UnauthorizedError
from execution_stream.domain.models import KEY_SEPARATOR, MAX_IDENTIFIER_LENGTH
from execution_stream.settings import Settings

# Clock skew tolerated on exp/nbf/iat between the token issuer and us.
LEEWAY_SECONDS = 30
MAX_TOKEN_LENGTH = 8192
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*)")

_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.DecodeError, "token is malformed"),
)


class AuthConfigurationError(ValueError):
    """The settings name no usable key: the API could authenticate nobody."""


class TokenVerifier:
    """Turns an `Authorization` header into the caller's tenant id, or raises UnauthorizedError."""

    def __init__(
        self,
        keys: Mapping[str, Any],
        tenant_claim: str,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if not keys:
            raise AuthConfigurationError("set EXECUTION_STREAM_JWT_SECRET or _JWT_PUBLIC_KEY")
        self._keys = dict(keys)
        self._tenant_claim = tenant_claim
        self._audience = audience
        self._issuer = issuer

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            verification_keys(settings),
            settings.jwt_tenant_claim,
            settings.jwt_audience,
            settings.jwt_issuer,
        )

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._keys)

    def tenant_of(self, authorization: str | None) -> str:
        claims = self.claims(bearer_token(authorization))
        return tenant_from_claims(claims, self._tenant_claim)

    def claims(self, token: str) -> dict[str, Any]:
        key = self._key_for(token)
        options: Any = {"require": ["exp"]}
        try:
            return jwt.decode(
                token,
                key[1],
                algorithms=[key[0]],
                options=options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
            )
        except jwt.MissingRequiredClaimError as error:
            raise UnauthorizedError(f"token has no {error.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise UnauthorizedError(_reason(error)) from None

    def _key_for(self, token: str) -> tuple[str, Any]:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise UnauthorizedError("token is malformed") from None
        if not isinstance(algorithm, str) or algorithm not in self._keys:
            accepted = ", ".join(self.algorithms)
            raise UnauthorizedError(f"token algorithm is not accepted (accepted: {accepted})")
        return algorithm, self._keys[algorithm]


def verification_keys(settings: Settings) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        keys["HS256"] = settings.jwt_secret.get_secret_value().encode()
    if settings.jwt_public_key is not None and settings.jwt_public_key.get_secret_value():
        keys["RS256"] = _rsa_public_key(settings.jwt_public_key.get_secret_value())
    return keys


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as error:
        raise AuthConfigurationError(f"JWT public key is not a PEM public key: {error}") from None
    if not isinstance(key, RSAPublicKey):
        raise AuthConfigurationError("JWT public key must be an RSA key (RS256)")
    return key


def bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise UnauthorizedError("missing Authorization header (expected 'Bearer <JWT>')")
    if len(authorization) > MAX_TOKEN_LENGTH:
        raise UnauthorizedError("Authorization header is too long")
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise UnauthorizedError("malformed Authorization header (expected 'Bearer <JWT>')")
    return match.group(1)


def tenant_from_claims(claims: Mapping[str, Any], tenant_claim: str) -> str:
    tenant = claims.get(tenant_claim)
    if tenant is None:
        raise UnauthorizedError(f"token has no {tenant_claim!r} claim")
    if not isinstance(tenant, str) or not tenant:
        raise UnauthorizedError(f"token's {tenant_claim!r} claim must be a non-empty string")
    if (
        len(tenant) > MAX_IDENTIFIER_LENGTH
        or KEY_SEPARATOR in tenant
        or any(unicodedata.category(character) == "Cc" for character in tenant)
    ):
        raise UnauthorizedError(f"token's {tenant_claim!r} claim is not a valid tenant id")
    return tenant


def _reason(error: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "token is invalid"
