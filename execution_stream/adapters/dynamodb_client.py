"""The aiobotocore DynamoDB client of the service, and botocore's errors turned into ours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)

from execution_stream.domain.store import (
    RepositoryAccessError,
    RepositoryError,
    RepositoryUnavailableError,
)
from execution_stream.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

# Codes that say "not now" rather than "never": retried, then reported as unavailable.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
# Codes that refuse the service rather than the request (credentials, IAM, a table missing or being
# restored): no record is at fault, so the pipeline waits for an operator instead of dead-lettering.
ACCESS_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
    }
)
# The same before any request is sent: the client found no usable credentials.
CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[DynamoDBClient]:
    config = AioConfig(
        connect_timeout=5,
        read_timeout=20,
        max_pool_connections=settings.dynamodb_max_pool_connections,
        retries={"max_attempts": settings.dynamodb_max_attempts, "mode": "standard"},
        # Every request is built here from typed values; DynamoDB validates it again anyway.
        parameter_validation=False,
    )
    session = get_session()
    async with session.create_client(
        "dynamodb", endpoint_url=settings.dynamodb_endpoint_url, config=config
    ) as client:
        _user_agent_built_once(client)
        yield client


def _user_agent_built_once(client: Any) -> None:
    """botocore builds the same User-Agent string twice for every request, a tenth of a request's
    CPU in the worker: it is built once, at the start. A botocore without this builder is left as is."""
    builder = getattr(client, "_user_agent_creator", None)
    if builder is not None and callable(getattr(builder, "to_string", None)):
        user_agent = builder.to_string()
        builder.to_string = lambda: user_agent


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(error: Exception, action: str) -> RepositoryError:
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "")
        if code in ACCESS_ERROR_CODES:
            return RepositoryAccessError(f"{action}: {code}: {message}", code)
        if code in TRANSIENT_ERROR_CODES:
            return RepositoryUnavailableError(f"{action}: {code}: {message}")
        return RepositoryError(f"{action}: {code}: {message}")
    if isinstance(error, CREDENTIAL_ERRORS):
        return RepositoryAccessError(f"{action}: {error}", type(error).__name__)
    if isinstance(error, BotoCoreError | OSError | asyncio.TimeoutError):
        return RepositoryUnavailableError(f"{action}: {error}")
    return RepositoryError(f"{action}: {error}")


def to_attribute_values(item: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """boto3's TypeSerializer, but a float is converted through its shortest repr; the common types
    directly (boto3's costs ~45 us an execution item), the others through boto3's."""
    return {name: _to_attribute(value) for name, value in item.items()}


def from_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's TypeDeserializer, the common types directly."""
    return {name: _from_attribute(value) for name, value in item.items()}


def _to_attribute(value: Any) -> Any:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal | float):
        return {"N": _number(value)}
    if isinstance(value, Mapping):
        return {"M": {key: _to_attribute(nested) for key, nested in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_to_attribute(nested) for nested in value]}
    return {"NULL": True} if value is None else _serializer.serialize(value)


def _number(value: int | Decimal | float) -> str:
    """What boto3 sends: at most 38 significant digits, else an ArithmeticError (Inexact)."""
    exact = Decimal(repr(value)) if isinstance(value, float) else value
    number = str(DYNAMODB_CONTEXT.create_decimal(exact))
    if number in ("Infinity", "NaN", "-Infinity", "-NaN", "sNaN", "-sNaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


_PLAIN_KINDS: dict[str, Callable[[Any], Any]] = {
    "S": lambda content: content,
    "BOOL": lambda content: content,
    "NULL": lambda content: None,
    "N": DYNAMODB_CONTEXT.create_decimal,
}


def _from_attribute(value: Any) -> Any:
    [(kind, content)] = value.items()
    if kind == "M":
        return {key: _from_attribute(nested) for key, nested in content.items()}
    if kind == "L":
        return [_from_attribute(nested) for nested in content]
    plain = _PLAIN_KINDS.get(kind)
    return plain(content) if plain is not None else _deserializer.deserialize(value)
