"""Our DynamoDB attribute-value codec says exactly what boto3's TypeSerializer and TypeDeserializer
say, with a float converted through its shortest repr."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from execution_stream.adapters.dynamodb_client import from_attribute_values, to_attribute_values

numbers = st.one_of(
    st.integers(-(10**37), 10**37),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
)
plain = st.one_of(st.text(), st.booleans(), st.none(), numbers, st.binary(min_size=1))
values = st.recursive(
    plain,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1), values, max_size=6))
def test_the_codec_agrees_with_boto3_both_ways(item: dict[str, Any]) -> None:
    boto3_form = {name: TypeSerializer().serialize(value) for name, value in item.items()}

    assert to_attribute_values(item) == boto3_form
    assert from_attribute_values(boto3_form) == {
        name: TypeDeserializer().deserialize(value) for name, value in boto3_form.items()
    }


@given(st.floats(min_value=-1e100, max_value=1e100).filter(lambda n: n == 0 or abs(n) > 1e-100))
def test_a_float_is_stored_as_its_shortest_repr(number: float) -> None:
    assert to_attribute_values({"n": number}) == {"n": {"N": str(Decimal(repr(number)))}}


def test_a_number_of_more_than_38_digits_is_refused_as_boto3_refuses_it() -> None:
    with pytest.raises(ArithmeticError):
        to_attribute_values({"n": {"nested": [10**40 + 1]}})
    with pytest.raises(TypeError):
        to_attribute_values({"n": Decimal("Infinity")})
