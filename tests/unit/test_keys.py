import pytest

from execution_stream.adapters.dynamodb_keys import (
    GSI_KEY_ATTRIBUTES,
    KEY_ATTRIBUTES,
    LOOKUP_INDEX_KEY_ATTRIBUTE,
    PK,
    SK,
    IndexName,
    IndexQuery,
    KeyFormatError,
    check_page_key,
    execution_keys,
    gsi1_pk,
    gsi2_pk,
    gsi3_pk,
    gsi4_pk,
    gsi5_pk,
    index_for_filter,
    parse_gsi1_pk,
    parse_gsi2_pk,
    parse_gsi3_pk,
    parse_gsi4_pk,
    parse_gsi5_pk,
    parse_partition_key,
    parse_sort_key,
    partition_key,
    queue_snapshot_key,
    sort_key,
)
from execution_stream.domain.models import ExecutionStatus
from execution_stream.domain.store import InvalidPageKeyError
from tests.support.factories import execution

TENANT = "92c4b3cc-ebdb-4662-8dbd-765a2e3b3af4"
EVENT = "00a354e2-d393-4694-bc54-dde7554dfced"
RUN = "490de6d6113c4deba97856c5b0cbf17c"
ITEM = "item-code-vulnerability"
DONE = ExecutionStatus.COMPLETED


def test_builders_match_the_seed() -> None:
    assert partition_key(TENANT) == f"TENANT#{TENANT}"
    assert sort_key(EVENT, RUN) == f"JIT_EVENT#{EVENT}#RUN#{RUN}"
    assert gsi1_pk(TENANT) == f"TENANT#{TENANT}"
    assert gsi2_pk(TENANT, DONE) == f"TENANT#{TENANT}#STATUS#completed"
    assert gsi3_pk(TENANT, ITEM) == f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}"
    assert gsi4_pk(TENANT, ITEM, DONE) == f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}#STATUS#completed"
    # Not in the seed: GSI5 finds one execution by tenant and id (GET /executions/{id}).
    assert gsi5_pk(TENANT, RUN) == f"TENANT#{TENANT}#EXECUTION#{RUN}"


@pytest.mark.parametrize("status", list(ExecutionStatus))
def test_round_trips(status: ExecutionStatus) -> None:
    assert parse_partition_key(partition_key(TENANT)) == TENANT
    assert parse_gsi1_pk(gsi1_pk(TENANT)) == TENANT
    assert parse_sort_key(sort_key(EVENT, RUN)) == (EVENT, RUN)
    assert parse_gsi2_pk(gsi2_pk(TENANT, status)) == (TENANT, status)
    assert parse_gsi3_pk(gsi3_pk(TENANT, ITEM)) == (TENANT, ITEM)
    assert parse_gsi4_pk(gsi4_pk(TENANT, ITEM, status)) == (TENANT, ITEM, status)
    assert parse_gsi5_pk(gsi5_pk(TENANT, RUN)) == (TENANT, RUN)


@pytest.mark.parametrize("bad", ["a#b", "#", ""])
def test_builders_refuse_hash_and_empty(bad: str) -> None:
    with pytest.raises(KeyFormatError):
        partition_key(bad)
    with pytest.raises(KeyFormatError):
        sort_key(bad, RUN)
    with pytest.raises(KeyFormatError):
        sort_key(EVENT, bad)
    with pytest.raises(KeyFormatError):
        gsi2_pk(bad, DONE)
    with pytest.raises(KeyFormatError):
        gsi3_pk(TENANT, bad)
    with pytest.raises(KeyFormatError):
        gsi4_pk(TENANT, bad, DONE)
    with pytest.raises(KeyFormatError):
        gsi5_pk(bad, RUN)
    with pytest.raises(KeyFormatError):
        gsi5_pk(TENANT, bad)


@pytest.mark.parametrize("pk", ["", "TENANT", "TENANT#", "TENANT#a#b", "tenant#a", "USER#a"])
def test_malformed_partition_keys(pk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_partition_key(pk)


@pytest.mark.parametrize(
    "sk",
    [
        "",
        f"JIT_EVENT#{EVENT}",
        f"JIT_EVENT#{EVENT}#RUN#",
        f"JIT_EVENT##RUN#{RUN}",
        f"JIT_EVENT_ID#{EVENT}#EXECUTION#{RUN}",
        f"JIT_EVENT#{EVENT}#RUN#{RUN}#extra",
    ],
)
def test_malformed_sort_keys(sk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_sort_key(sk)


@pytest.mark.parametrize(
    "pk",
    [
        f"TENANT#{TENANT}#STATUS#finished",
        f"TENANT#{TENANT}#STATUS#",
        f"TENANT#{TENANT}#STATE#failed",
    ],
)
def test_malformed_gsi2_keys(pk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_gsi2_pk(pk)


@pytest.mark.parametrize(
    "pk", [f"TENANT#{TENANT}#PLAN_ITEM#", f"TENANT#{TENANT}#PLAN#{ITEM}", f"TENANT#{TENANT}"]
)
def test_malformed_gsi3_keys(pk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_gsi3_pk(pk)


@pytest.mark.parametrize(
    "pk",
    [
        f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}#STATUS#bogus",
        f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}STATUS#completed",
        f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}",
        f"TENANT#{TENANT}#STATUS#completed#PLAN_ITEM#{ITEM}",
    ],
)
def test_malformed_gsi4_keys(pk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_gsi4_pk(pk)


@pytest.mark.parametrize(
    ("status", "plan_item", "expected"),
    [
        (None, None, IndexQuery(IndexName.GSI1, "GSI1PK", f"TENANT#{TENANT}")),
        (DONE, None, IndexQuery(IndexName.GSI2, "GSI2PK", f"TENANT#{TENANT}#STATUS#completed")),
        (None, ITEM, IndexQuery(IndexName.GSI3, "GSI3PK", f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}")),
        (
            DONE,
            ITEM,
            IndexQuery(IndexName.GSI4, "GSI4PK", f"TENANT#{TENANT}#PLAN_ITEM#{ITEM}#STATUS#completed"),
        ),
    ],
)
def test_index_for_filter(
    status: ExecutionStatus | None, plan_item: str | None, expected: IndexQuery
) -> None:
    query = index_for_filter(TENANT, status, plan_item)
    assert query == expected
    assert query.sort_key_name == f"{expected.index.value}SK"


def test_index_for_filter_refuses_hash_in_plan_item() -> None:
    with pytest.raises(KeyFormatError):
        index_for_filter(TENANT, None, "a#b")


def test_attribute_names() -> None:
    assert (PK, SK) == ("PK", "SK")
    assert GSI_KEY_ATTRIBUTES == (
        (IndexName.GSI1, "GSI1PK", "GSI1SK"),
        (IndexName.GSI2, "GSI2PK", "GSI2SK"),
        (IndexName.GSI3, "GSI3PK", "GSI3SK"),
        (IndexName.GSI4, "GSI4PK", "GSI4SK"),
    )


@pytest.mark.parametrize(
    "pk", [f"TENANT#{TENANT}#EXECUTION#", f"TENANT#{TENANT}#RUN#{RUN}", f"TENANT#{TENANT}"]
)
def test_malformed_gsi5_keys(pk: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_gsi5_pk(pk)


def test_gsi5_is_a_partition_key_only_and_on_every_execution_item() -> None:
    assert LOOKUP_INDEX_KEY_ATTRIBUTE == (IndexName.GSI5, "GSI5PK")
    assert "GSI5PK" in KEY_ATTRIBUTES
    stored = execution("tenant-a", 3)
    item_keys = execution_keys(stored)
    assert item_keys["GSI5PK"] == f"TENANT#tenant-a#EXECUTION#{stored.execution_id}"
    assert "GSI5SK" not in item_keys
    assert set(item_keys) == KEY_ATTRIBUTES


@pytest.mark.parametrize("runner", ["github_actions", "runner#with#hashes", "#"])
def test_queue_snapshot_key_keeps_the_runner_whole(runner: str) -> None:
    assert queue_snapshot_key(TENANT, runner) == {PK: f"TENANT#{TENANT}", SK: f"QUEUE#{runner}"}


def test_queue_snapshot_key_refuses_an_empty_runner_or_a_bad_tenant() -> None:
    with pytest.raises(KeyFormatError):
        queue_snapshot_key(TENANT, "")
    with pytest.raises(KeyFormatError):
        queue_snapshot_key("a#b", "github_actions")


def page_key_of_gsi2(**changes: str) -> dict[str, str]:
    """A page key of TENANT's completed executions (GSI2), with `changes`."""
    page_key = {PK: partition_key(TENANT), SK: sort_key(EVENT, RUN), "GSI2PK": gsi2_pk(TENANT, DONE)}
    return page_key | {"GSI2SK": "2026-01-01T00:00:00"} | changes


def test_a_page_key_of_the_query_passes() -> None:
    check_page_key(page_key_of_gsi2(), TENANT, index_for_filter(TENANT, DONE, None))


@pytest.mark.parametrize(
    ("page_key", "words"),
    [
        ({PK: partition_key(TENANT), SK: sort_key(EVENT, RUN)}, "another query"),
        (page_key_of_gsi2(GSI2PK=gsi2_pk(TENANT, ExecutionStatus.FAILED)), "another query"),
        (page_key_of_gsi2(PK=partition_key("tenant-b")), "another tenant"),
        (page_key_of_gsi2(GSI2SK=""), "empty attribute"),
    ],
)
def test_a_page_key_of_another_query_is_refused(page_key: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidPageKeyError, match=words):
        check_page_key(page_key, TENANT, index_for_filter(TENANT, DONE, None))
