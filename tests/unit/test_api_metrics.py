"""The API counts its requests per route pattern and status, whatever path a caller sends."""

from __future__ import annotations

from tests.support.api import bearer, running_api
from tests.support.fake_store import FakeStore


async def test_requests_are_counted_by_route_and_status() -> None:
    async with running_api(FakeStore()) as client:
        for path, headers in [
            ("/executions", bearer("tenant-a")),
            ("/executions?limit=0", bearer("tenant-a")),
            ("/executions", None),
            ("/no/such/path/1", None),
            ("/no/such/path/2", None),
        ]:
            async with client.get(path, headers=headers) as response:
                await response.read()
        async with client.get("/metrics") as response:
            assert response.status == 200
            text = await response.text()

    assert 'execution_stream_api_requests_total{route="/executions",status="200"} 1.0' in text
    assert 'execution_stream_api_requests_total{route="/executions",status="400"} 1.0' in text
    assert 'execution_stream_api_requests_total{route="/executions",status="401"} 1.0' in text
    assert 'execution_stream_api_requests_total{route="unmatched",status="404"} 2.0' in text
    assert "/no/such/path" not in text
    assert 'execution_stream_api_request_duration_seconds_count{route="/executions"} 3.0' in text
