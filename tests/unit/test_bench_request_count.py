"""The bench's counting proxy and its choice of endpoints: what the figures rest on."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bench.__main__ import directory_for
from bench.dynamodb_ceiling import DynamoDBCeiling, Rate
from bench.endpoints import endpoint_names
from bench.report import GOALS, mix_bound
from bench.request_count import (
    CountingProxy,
    RequestCount,
    content_length,
    countable,
    detail_of,
    operation_of,
)
from execution_stream.settings import Settings

HEAD = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
    b"Content-Length: 12\r\n\r\n"
)


def test_a_request_is_counted_by_its_target_and_framed_by_its_length() -> None:
    assert operation_of(HEAD) == "GetItem"
    assert operation_of(b"POST / HTTP/1.1\r\nx-amz-target: DynamoDB_20120810.Query\r\n\r\n") == "Query"
    assert operation_of(b"GET / HTTP/1.1\r\n\r\n") == "?"
    assert content_length(HEAD) == 12
    assert content_length(b"GET / HTTP/1.1\r\n\r\n") == 0


def test_a_chunked_body_is_refused_rather_than_miscounted() -> None:
    with pytest.raises(RuntimeError, match="chunked"):
        content_length(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_requests_per_execution_by_operation() -> None:
    count = RequestCount(executions=4, by_operation={"UpdateItem": 4, "PutItem": 5, "GetItem": 4})
    assert count.requests == 13
    assert count.per_execution == 3.25
    assert count.per_execution_by_operation() == {"GetItem": 1.0, "PutItem": 1.25, "UpdateItem": 1.0}


async def _answer_every_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break
        body = await reader.readexactly(content_length(head))
        reply = b'{"echo": ' + str(len(body)).encode() + b"}"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
        await writer.drain()
    writer.close()


async def test_the_proxy_forwards_each_request_and_its_answer_and_counts_it() -> None:
    upstream = await asyncio.start_server(_answer_every_request, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = CountingProxy(f"http://127.0.0.1:{port}")
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as session:
            for operation, body in [("PutItem", "{}"), ("GetItem", '{"a": 1}'), ("PutItem", "{}")]:
                headers = {"X-Amz-Target": f"DynamoDB_20120810.{operation}"}
                async with session.post(proxy.url, data=body, headers=headers) as response:
                    assert await response.json(content_type=None) == {"echo": len(body)}
    finally:
        await proxy.stop()
        upstream.close()
        await upstream.wait_closed()
    assert proxy.operations == {"PutItem": 2, "GetItem": 1}


def test_only_plain_http_endpoints_can_be_counted() -> None:
    assert countable("http://127.0.0.1:8000")
    assert not countable("https://dynamodb.eu-west-1.amazonaws.com")


def test_an_endpoint_the_environment_names_is_the_only_one_measured() -> None:
    # Built without reading the environment, which may name an endpoint for the other tests.
    named = Settings.model_construct(dynamodb_endpoint_url="http://127.0.0.1:8000")
    unnamed = Settings.model_construct()
    assert endpoint_names(named, ["dynoxide", "moto"]) == ["http://127.0.0.1:8000"]
    assert endpoint_names(unnamed, ["moto", "dynoxide", "moto"]) == ["moto", "dynoxide"]
    with pytest.raises(SystemExit, match="choose among"):
        endpoint_names(unnamed, ["dynamodb-local"])
    assert directory_for("http://127.0.0.1:8000") == "http_127.0.0.1_8000"


def test_goals_hold_in_their_direction() -> None:
    assert GOALS["P/D"].met(0.4) is True
    assert GOALS["P/D"].met(0.39) is False
    assert GOALS["worker_cpu_ms_per_execution"].met(3.1) is False
    assert GOALS["api_p99_ratio"].met(None) is None


def test_what_a_request_costs_beyond_its_operation_is_noted() -> None:
    assert detail_of("UpdateItem", b'{"ReturnValues": "ALL_OLD"}') == {"UpdateItem ReturnValues=ALL_OLD": 1}
    assert detail_of("UpdateItem", b"{}") == {"UpdateItem ReturnValues=NONE": 1}
    batch = b'{"RequestItems": {"t": {"Keys": [{}, {}, {}]}, "u": {"Keys": [{}]}}}'
    assert detail_of("BatchGetItem", batch) == {"BatchGetItem keys": 4}
    assert detail_of("PutItem", b"{}") == {}


def _rate(per_second: float) -> Rate:
    return Rate(per_second, None, 0.0)


def test_d_mix_costs_each_counted_request_at_the_rate_measured_for_its_kind() -> None:
    d = DynamoDBCeiling(
        items=10,
        item_bytes=1400,
        conditional_put={4: _rate(100.0), 8: _rate(50.0)},
        best_concurrency=4,
        batch_write=_rate(400.0),
        consistent_get=_rate(50.0),
        batch_get=_rate(200.0),
        update_all_old=_rate(25.0),
        update_no_return=_rate(50.0),
        create_many=_rate(100.0),
        create_many_concurrency=16,
    )
    # Per execution: one put (10 ms), one update returning nothing (20 ms), a tenth of a
    # 10-key batch read (5 ms): 35 ms, about 28.6 executions/s.
    counted = RequestCount(
        executions=10,
        by_operation={"PutItem": 10, "UpdateItem": 10, "BatchGetItem": 1},
        details={"UpdateItem ReturnValues=NONE": 10, "BatchGetItem keys": 10},
    )
    assert mix_bound(d, counted) == pytest.approx(1 / 0.035)
    # Not counted: put + get + update returning the item, 10 + 20 + 40 ms.
    assert mix_bound(d, None) == pytest.approx(1 / 0.070)
