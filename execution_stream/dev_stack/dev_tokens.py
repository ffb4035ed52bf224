"""Tokens for the local stack's API: `dev` prints one for its tenant, `demo` mints one per tenant."""

from __future__ import annotations

import time

import jwt

from execution_stream.settings import Settings

DEV_TENANT = "dev-tenant"
TOKEN_LIFETIME_SECONDS = 86_400


def tenant_token(settings: Settings, tenant_id: str, now: float | None = None) -> str | None:
    """A day's HS256 token for `tenant_id`, where the API's key is a secret the stack knows."""
    if settings.jwt_secret is None or not settings.jwt_secret.get_secret_value():
        return None
    issued = time.time() if now is None else now
    claims: dict[str, object] = {
        settings.jwt_tenant_claim: tenant_id,
        "exp": int(issued) + TOKEN_LIFETIME_SECONDS,
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
