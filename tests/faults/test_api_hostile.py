"""The HTTP API under hostile input: schemathesis against its own /openapi.json, and hand-written
attacks (injection-looking filters, oversized headers, forged tokens, other tenants' cursors).

Whatever the request: never a 500, never another tenant's data. The API runs in front of the real
DynamoDB endpoint with two tenants' executions, configured with both an HS256 secret and an RS256
public key, so that algorithm confusion has a real public key to abuse.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.settings import Settings
from tests.support.api import CURSOR_SECRET, SECRET, ApiThread, rsa_pem_pair, token
from tests.support.factories import execution

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

A, B = "tenant-hostile-a", "tenant-hostile-b"
SIZES = {A: 25, B: 7}
PLAN_ITEMS = ("item-sast", "item-sca")


@pytest.fixture(scope="module")
def hostile_api(stack_settings: Settings) -> Iterator[ApiThread]:
    settings = stack_settings.model_copy(
        update={
            "dynamodb_table": f"Executions-hostile-{uuid.uuid4().hex[:8]}",
            "jwt_secret": SecretStr(SECRET),
            "jwt_public_key": SecretStr(rsa_pem_pair()[1]),
            "cursor_secret": SecretStr(CURSOR_SECRET),
        }
    )
    create_table(settings)

    async def write() -> None:
        async with open_repository(settings) as repository:
            created = [
                execution(tenant, number, PLAN_ITEMS[number % 2])
                for tenant, size in SIZES.items()
                for number in range(size)
            ]
            assert all(result.created for result in await repository.create_many(created))

    asyncio.run(write())  # a sync fixture (the API thread serves synchronous hypothesis tests)
    api = ApiThread(settings)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tenant)}"}


def check_answer(status: int, body: bytes, tenant: str | None) -> Any:
    """No 5xx, errors in the API's JSON shape, and only the caller's own executions."""
    assert status < 500, body[:500]
    document: Any = None
    if body[:1] in (b"{", b"["):
        document = json.loads(body)
    if status >= 400 and document is not None:
        assert document["error"]["code"], document
    if status == 200 and isinstance(document, dict) and "data" in document:
        assert tenant is not None, "data without a valid token"
        assert {item["tenant_id"] for item in document["data"]} <= {tenant}, document
    return document


# --- schemathesis: every operation of /openapi.json, valid and invalid inputs ------------------


def test_schemathesis_finds_no_server_error_and_no_schema_violation(hostile_api: ApiThread) -> None:
    schema = schemathesis.openapi.from_url(f"{hostile_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    statuses: Counter[int] = Counter()
    assert {op.path for op in operations} >= {"/executions", "/healthz", "/readyz"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and operation.path != "/executions":
                continue  # no parameter to break: nothing negative to generate
            checks: list[Any] = [not_a_server_error]
            if mode is GenerationMode.POSITIVE and operation.path == "/executions":
                checks += [response_schema_conformance, content_type_conformance]
            never_fails(hostile_api, operation.as_strategy(generation_mode=mode), checks, statuses)()
    print(f"schemathesis: {sum(statuses.values())} requests, answers {dict(sorted(statuses.items()))}")
    assert statuses[200] > 0
    assert statuses[400] > 0
    assert statuses[401] > 0


def never_fails(
    api: ApiThread, cases: st.SearchStrategy[Any], checks: list[Any], statuses: Counter[int]
) -> Any:
    """A hypothesis test sending `cases` with a token of either tenant, or none."""

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases, tenant=st.sampled_from([A, B, None]))
    def requests_never_fail(case: Any, tenant: str | None) -> None:
        headers = auth(tenant) if tenant is not None else {}
        response = case.call(base_url=api.url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks)
        check_answer(response.status_code, response.content, tenant)

    return requests_never_fail


# --- hand-written attacks ------------------------------------------------------------------


INJECTIONS = [
    "' OR '1'='1",
    "item-sast' OR 1=1 --",
    '{"$ne": null}',
    '{"$gt": ""}',
    "[$ne]=1",
    "*",
    "%",
    "item-sast) OR begins_with(PK, :pk",
    ":pk",
    "#pk",
    "TENANT#" + B,
    f"{B}",
    "a" * 256,
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "item-sast\u202e",
    "\U0001f680",
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("name", ["status", "plan_item_slug", "after", "limit"])
def test_injection_looking_filters_are_400_or_an_honest_empty_page(
    hostile_api: ApiThread, name: str, value: str
) -> None:
    target = f"/executions?{name}={urllib.parse.quote(value, safe='')}"
    status, _, body = hostile_api.get(target, auth(A))
    document = check_answer(status, body, A)
    assert status in {200, 400}, document
    if status == 200:
        assert name == "plan_item_slug", document
        assert document["data"] == [], "no plan item has such a slug"


@pytest.mark.parametrize(
    ("headers", "statuses"),
    [
        ({"X-Padding": "x" * 9000}, {400, 431}),
        ({"Authorization": "Bearer " + "a" * 9000}, {400, 431}),
        ({"Authorization": "Bearer " + "a" * 8100}, {401}),
        ({f"X-Many-{n}": "y" * 100 for n in range(200)}, {200, 400, 431}),
        ({"Cookie": "c=" + "z" * 9000}, {400, 431}),
    ],
    ids=["one 9 KB header", "9 KB token", "8 KB token", "200 headers", "9 KB cookie"],
)
def test_oversized_headers_are_refused_before_they_cost_anything(
    hostile_api: ApiThread, headers: dict[str, str], statuses: set[int]
) -> None:
    merged = {**auth(A), **headers}
    status, _, body = hostile_api.get("/executions?limit=1", merged)
    check_answer(status, body, A)
    assert status in statuses, (status, body[:200])


def test_a_request_line_over_the_limit_is_refused(hostile_api: ApiThread) -> None:
    status, _, body = hostile_api.get("/executions?plan_item_slug=" + "p" * 9000, auth(A))
    check_answer(status, body, A)
    assert status in {400, 414}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _hs256(secret: bytes, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def forged_tokens() -> list[tuple[str, str]]:
    claims = {"tenant_id": B, "exp": 4_102_444_800}
    public_pem = rsa_pem_pair()[1].encode()
    der = base64.b64decode(b"".join(public_pem.strip().splitlines()[1:-1]))
    return [
        ("alg none", _unsigned({"alg": "none"}, claims)),
        ("alg None", _unsigned({"alg": "None", "typ": "JWT"}, claims)),
        ("alg NONE with a signature", _unsigned({"alg": "NONE"}, claims, b"sig")),
        ("alg missing", _unsigned({"typ": "JWT"}, claims)),
        ("HS256 keyed with the RS256 public key PEM", _hs256(public_pem, claims)),
        ("HS256 keyed with the PEM, no trailing newline", _hs256(public_pem.strip(), claims)),
        ("HS256 keyed with the public key DER", _hs256(der, claims)),
        ("HS512 keyed with the PEM", _hs256(public_pem, claims, {"alg": "HS512"})),
        ("RS256 header, HMAC signature", _hs256(public_pem, claims, {"alg": "RS256"})),
        (
            "jwk header embedding a key",
            _hs256(b"k", claims, {"alg": "HS256", "jwk": {"kty": "oct", "k": "aw"}}),
        ),
        ("kid path traversal", _hs256(b"", claims, {"alg": "HS256", "kid": "../../dev/null"})),
        ("empty secret", _hs256(b"", claims)),
        ("crit header", _hs256(SECRET.encode(), {**claims, "exp": 1}, {"alg": "HS256", "crit": ["exp"]})),
    ]


@pytest.mark.parametrize(("what", "forged"), forged_tokens(), ids=[what for what, _ in forged_tokens()])
def test_forged_tokens_are_401_and_show_nothing(hostile_api: ApiThread, what: str, forged: str) -> None:
    status, _, body = hostile_api.get("/executions", {"Authorization": f"Bearer {forged}"})
    document = check_answer(status, body, None)
    assert status == 401, (what, document)
    assert document["error"]["code"] == "unauthorized"


def test_both_configured_algorithms_work_for_their_own_tokens(hostile_api: ApiThread) -> None:
    """The forged-token refusals above are not an API that refuses everything."""
    rs256 = token(B, key=rsa_pem_pair()[0], algorithm="RS256")
    for authorization in (f"Bearer {token(B)}", f"Bearer {rs256}"):
        status, _, body = hostile_api.get("/executions?limit=100", {"Authorization": authorization})
        document = check_answer(status, body, B)
        assert status == 200
        assert len(document["data"]) == SIZES[B]


def _every_cursor(api: ApiThread, tenant: str) -> list[tuple[str, str]]:
    """(query, cursor) for every page of every filter of `tenant`."""
    cursors = []
    for query in [
        "",
        "&status=pending",
        f"&plan_item_slug={PLAN_ITEMS[0]}",
        f"&status=pending&plan_item_slug={PLAN_ITEMS[1]}",
    ]:
        after = ""
        for _ in range(50):
            status, _, body = api.get(f"/executions?limit=3{query}{after}", auth(tenant))
            assert status == 200
            cursor = json.loads(body)["metadata"]["after"]
            if cursor is None:
                break
            cursors.append((query, cursor))
            after = f"&after={cursor}"
    return cursors


def test_no_cursor_of_one_tenant_opens_anything_for_another(hostile_api: ApiThread) -> None:
    cursors = _every_cursor(hostile_api, A)
    assert len(cursors) >= 10
    queries = {query for query, _ in cursors}
    for query, cursor in cursors:
        # The other tenant, with the cursor's own filter and with every other filter.
        for replay in queries:
            status, _, body = hostile_api.get(f"/executions?limit=3{replay}&after={cursor}", auth(B))
            document = check_answer(status, body, B)
            assert (status, document["error"]["code"]) == (400, "invalid_cursor")
        # The same tenant with another filter.
        for other in queries - {query}:
            status, _, body = hostile_api.get(f"/executions?limit=3{other}&after={cursor}", auth(A))
            document = check_answer(status, body, A)
            assert (status, document["error"]["code"]) == (400, "invalid_cursor")
