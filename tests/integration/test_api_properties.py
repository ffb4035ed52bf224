"""Property-based: whatever the query string, path and Authorization header, the API never 500s.

The API runs on its own event loop in a thread, in front of the real DynamoDB endpoint; requests
go out through http.client so that what hypothesis generates reaches the server byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execution_stream.domain.models import ExecutionStatus
from tests.support.api import ApiThread, rsa_pem_pair, token
from tests.support.dataset import API_PLAN_ITEMS, API_TENANTS, ApiDataset

pytestmark = pytest.mark.dynamodb_engines

A, B = API_TENANTS
PATHS = ["/executions", "/healthz", "/readyz", "/openapi.json", "/", "/executions/"]


@pytest.fixture(scope="module")
def api_thread(api_dataset: ApiDataset) -> Iterator[ApiThread]:
    api = ApiThread(api_dataset.settings)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _cursors(api: ApiThread) -> list[str]:
    cursors = []
    for tenant, query in [(A, ""), (A, "&status=completed"), (B, "&plan_item_slug=item-sca")]:
        status, _, body = api.get(f"/executions?limit=2{query}", _auth(tenant))
        assert status == 200
        cursors.append(json.loads(body)["metadata"]["after"])
    return cursors


def _auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tenant)}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _authorizations() -> list[tuple[str | None, str | None]]:
    """(Authorization header, the tenant it authenticates or None)."""
    none_header = _b64(b'{"alg":"none"}')
    unsigned = f"{none_header}.{_b64(json.dumps({'tenant_id': A}).encode())}."
    head = _b64(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64(json.dumps({"tenant_id": A, "exp": 4_102_444_800}).encode())
    confused_mac = hmac.new(rsa_pem_pair()[1].encode(), f"{head}.{body}".encode(), hashlib.sha256)
    return [
        (f"Bearer {token(A)}", A),
        (f"Bearer {token(A)}", A),
        (f"Bearer {token(B)}", B),
        (f"Bearer {token(A, expires_in=-600)}", None),
        (f"Bearer {token(None)}", None),
        (f"Bearer {token(['x'])}", None),
        (f"Bearer {unsigned}", None),
        (f"Bearer {head}.{body}.{_b64(confused_mac.digest())}", None),
        (f"Bearer {token(A, key=rsa_pem_pair()[0], algorithm='RS256')}", None),
        (None, None),
    ]


PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#")
# Characters that matter to the URL, the key scheme, JSON or the validation.
SPECIAL = st.sampled_from(list("#%&=+?/;, \x00\n\t\x7f\x85\u2028\ufeffé€-_.~\"'\\"))
TRICKY_TEXT = st.text(st.one_of(SPECIAL, SPECIAL, st.characters(codec="utf-8")), max_size=40)
STATUSES = [status.value for status in ExecutionStatus]
ODD_VALUES = [
    *("", "0", "101", "-1", "%", "%FF", "%ED%A0%80", "1e3", "٣", "a" * 300, "null"),
    *("item#sast", "TENANT#x", "\x00", "\n", " pending", "Pending"),
]


def _value(valid: list[str]) -> st.SearchStrategy[str]:
    chosen = st.sampled_from(valid)
    return st.one_of(chosen, chosen, TRICKY_TEXT, st.sampled_from(ODD_VALUES))


def _pair(name: str, value: str) -> st.SearchStrategy[str]:
    quote, quote_plus = urllib.parse.quote, urllib.parse.quote_plus
    encodings = [f"{quote(name, safe='')}={quote(value, safe='')}", f"{quote_plus(name)}="]
    encodings[1] += quote_plus(value)
    if all(33 <= ord(c) <= 126 and c != "#" for c in name + value):
        encodings.append(f"{name}={value}")  # raw: '%', '&' and '=' reach the parser as they are
    return st.sampled_from(encodings)


def _query(cursors: list[str]) -> st.SearchStrategy[str]:
    cursor = st.sampled_from(cursors)
    mutated = st.tuples(cursor, st.integers(0, 200), PRINTABLE).map(
        lambda c: c[0][: c[1]] + c[2] + c[0][c[1] + 1 :]
    )
    limits = _value(["1", "7", "20", "100"]) | st.integers().map(str)
    known = st.fixed_dictionaries(
        {},
        optional={
            "status": _value(STATUSES),
            "plan_item_slug": _value(list(API_PLAN_ITEMS)),
            "limit": limits,
            "after": st.one_of(cursor, cursor, mutated, _value(cursors)),
        },
    )
    odd_names = st.sampled_from(["tenant_id", "Status", "", "x", "status", "limit", "after"])
    extra = st.lists(st.tuples(odd_names | TRICKY_TEXT, _value(STATUSES)), max_size=2)
    pairs = st.tuples(known, extra).map(lambda k_e: [*k_e[0].items(), *k_e[1]])
    encoded = pairs.flatmap(lambda ps: st.tuples(*(_pair(n, v) for n, v in ps)))
    return encoded.flatmap(st.permutations).map("&".join)


def _authorization() -> st.SearchStrategy[tuple[str | None, str | None]]:
    fuzzed = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
    valid = st.sampled_from(_authorizations()[:3])
    return st.one_of(
        valid,
        valid,
        valid,
        st.sampled_from(_authorizations()),
        fuzzed.map(lambda t: (f"Bearer {t}", None)),
    )


def _path() -> st.SearchStrategy[str]:
    listing = st.just("/executions")
    other = st.sampled_from(PATHS) | st.text(PRINTABLE, max_size=20).map(lambda p: f"/{p}")
    return st.one_of(listing, listing, listing, other)


def check_response(status: int, content_type: str, body: bytes, tenant: str | None) -> None:
    assert status < 500, body
    assert status in {200, 400, 401, 404, 405}, (status, body)
    if status >= 400 and content_type.startswith("application/json"):
        error = json.loads(body)["error"]
        assert error["code"]
        assert error["message"]
    if status == 200 and content_type.startswith("application/json"):
        document: Any = json.loads(body)
        for item in document.get("data", []):
            assert item["tenant_id"] == tenant


def test_no_input_makes_the_api_fail(api_thread: ApiThread) -> None:
    cursors = _cursors(api_thread)

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        path=_path(),
        query=_query(cursors),
        authorization=_authorization(),
    )
    def requests_never_fail(path: str, query: str, authorization: tuple[str | None, str | None]) -> None:
        header, tenant = authorization
        headers = {"Authorization": header} if header is not None else {}
        target = f"{path}?{query}" if query else path
        check_response(*api_thread.get(target, headers), tenant)

    requests_never_fail()


FUZZED_PARAMETERS = ("status", "plan_item_slug", "limit", "after")


def _one_bad_parameter(cursors: list[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(the parameter fuzzed, its value); everything else in the request is valid."""
    mutated = st.tuples(st.sampled_from(cursors), st.integers(0, 200), PRINTABLE).map(
        lambda c: c[0][: c[1]] + c[2] + c[0][c[1] + 1 :]
    )
    values = {
        "status": _value(STATUSES),
        "plan_item_slug": _value(list(API_PLAN_ITEMS)),
        "limit": _value(["1", "7", "100"]) | st.integers().map(str),
        "after": st.one_of(mutated, _value(cursors)),
    }
    return st.sampled_from(FUZZED_PARAMETERS).flatmap(lambda name: st.tuples(st.just(name), values[name]))


def test_one_bad_parameter_is_a_400_that_names_it(api_thread: ApiThread) -> None:
    cursors = _cursors(api_thread)

    @settings(max_examples=300, deadline=None, database=None)
    @given(fuzzed=_one_bad_parameter(cursors), plus=st.booleans())
    def one_bad_parameter(fuzzed: tuple[str, str], plus: bool) -> None:
        name, value = fuzzed
        quote = urllib.parse.quote_plus if plus else urllib.parse.quote
        limit = "" if name == "limit" else "limit=5&"
        target = f"/executions?{limit}{name}={quote(value, safe='')}"
        status, _, body = api_thread.get(target, _auth(A))
        document: Any = json.loads(body)
        assert status in {200, 400}, (status, document)
        if status == 400:
            assert name in document["error"]["message"], document
            return
        assert all(item["tenant_id"] == A for item in document["data"])
        if name in {"status", "plan_item_slug"}:
            assert all(item[name] == value for item in document["data"])

    one_bad_parameter()
