"""Dispatching a workflow through GitHub's REST API, as a GitHub App does, and cancelling a run.

Every call is made as an App installation: an app JWT (RS256, signed with the app's private key) buys
an installation token, cached per installation until a minute before it expires; a token GitHub
answers 401 to is renewed once.

A dispatch, `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`, asks for the run's
details (`return_run_details: true`): GitHub answers 200 with the run's id and URLs, which
`dispatch` returns as `RunDetails`, or 204 without them, which returns None (as does a 200 whose body
names no run id: the workflow did start). An older GitHub Enterprise Server refuses the parameter
(400 or 422 with a message naming `return_run_details`): that dispatch is sent again at once without
it, and so are all later ones of this dispatcher, which then return None.

A cancel, `POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel`, answers 202 (`REQUESTED`), or
409 when the run had ended (`ALREADY_FINISHED`).

Failures become the domain's two kinds. Not now (`DispatchUnavailableError`, with the time to wait
when GitHub gave one): 5xx, 429 and rate-limited 403s, connection errors and timeouts, after
`max_attempts` quick tries. Never (`DispatchRefusedError`): any other 4xx (an unknown run's 404
among them), and a 401 that a fresh installation token does not cure.

GitHub's rate limits are per App installation: a limit whose Retry-After or x-ratelimit-reset is
further away than `max_retry_after` blocks that installation until then, and its dispatches and
cancels are unavailable at once, without a request, while other installations' go on. The caller
sets the job aside; nothing here waits longer than a short backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from execution_stream.domain.backoff import backoff_seconds
from execution_stream.domain.dispatch import (
    CancelOutcome,
    DispatchRefusedError,
    DispatchUnavailableError,
    GithubRun,
    RunDetails,
)
from execution_stream.domain.enrichment import GithubWorkflowTarget
from execution_stream.domain.timestamps import as_utc

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
JWT_BACKDATE_SECONDS = 60  # GitHub's advice against clock drift
JWT_LIFETIME_SECONDS = 540  # GitHub refuses more than 600 from now
TOKEN_RENEWAL_MARGIN_SECONDS = 60
USER_AGENT = "execution-stream"
# GitHub's advice for a secondary rate limit that names no time: wait at least a minute.
SECONDARY_RATE_LIMIT_WAIT_SECONDS = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: str

    def message(self) -> str:
        try:
            parsed = json.loads(self.body) if self.body else {}
        except ValueError:
            return self.body[:500]
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            return str(parsed["message"])
        return self.body[:500]


class _TransientError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _TokenRejectedError(Exception):
    """An endpoint answered 401 to an installation token."""

    def __init__(self, token: str) -> None:
        super().__init__("installation token rejected")
        self.token = token


class _RunDetailsRefusedError(Exception):
    """GitHub (an older Enterprise Server) refused the dispatch's `return_run_details`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # epoch seconds


class GithubActionsDispatcher:
    def __init__(
        self,
        base_url: str,
        app_id: str,
        private_key_pem: str,
        *,
        max_attempts: int = 3,
        base_backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 1.0,
        max_retry_after_seconds: float = 1.0,
        request_timeout_seconds: float = 10.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        # An environment variable often carries the PEM's newlines as literal "\n"; a PEM has no "\".
        key = load_pem_private_key(private_key_pem.replace("\\n", "\n").encode(), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise TypeError("the GitHub App private key must be an RSA key in PEM")
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._key = key
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._max_retry_after = max_retry_after_seconds
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}
        self._blocked_until: dict[str, float] = {}  # installation id -> epoch seconds
        self._asks_run_details = True  # until GitHub refuses `return_run_details`

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": USER_AGENT,
                },
                timeout=self._timeout,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        """Start `target`'s workflow and return its run when GitHub names it; raises
        DispatchUnavailableError or DispatchRefusedError."""
        if self._asks_run_details:
            try:
                return await self._dispatch(target, ask_run_details=True)
            except _RunDetailsRefusedError as refused:
                self._stop_asking_run_details(refused.message)
        return await self._dispatch(target, ask_run_details=False)

    async def cancel_run(self, run: GithubRun) -> CancelOutcome:
        """Ask GitHub to cancel `run`; raises DispatchUnavailableError or DispatchRefusedError (404:
        GitHub knows no such run)."""
        path = "/repos/{}/{}/actions/runs/{}/cancel".format(
            *(quote(part, safe="") for part in (run.owner, run.repo, str(run.workflow_run_id)))
        )
        what = f"{run.owner}/{run.repo} run {run.workflow_run_id}"
        return await self._as_installation(
            run.installation_id,
            what,
            lambda token: self._post(path, token, None),
            lambda answer: _cancel_outcome(answer, f"cancelling {what}"),
        )

    def supports_run_details(self) -> bool:
        """False once GitHub refused `return_run_details`: dispatches no longer ask for it."""
        return self._asks_run_details

    async def _dispatch(self, target: GithubWorkflowTarget, *, ask_run_details: bool) -> RunDetails | None:
        path = "/repos/{}/{}/actions/workflows/{}/dispatches".format(
            *(quote(part, safe="") for part in (target.owner, target.repo, target.workflow_file))
        )
        body: dict[str, Any] = {"ref": target.ref, "inputs": target.inputs}
        if ask_run_details:
            body["return_run_details"] = True
        what = _describe(target)
        return await self._as_installation(
            target.installation_id,
            what,
            lambda token: self._post(path, token, body),
            lambda answer: _dispatch_outcome(answer, f"dispatching {what}", ask_run_details),
        )

    def _stop_asking_run_details(self, message: str) -> None:
        if self._asks_run_details:  # concurrent dispatches may all have been refused: say it once
            self._asks_run_details = False
            logger.warning(
                "GitHub refuses return_run_details (an older GitHub Enterprise Server?); "
                "dispatching without it, so runs are not known",
                extra={"github_api_url": self._base_url, "reason": message},
            )

    async def _as_installation(
        self,
        installation_id: str,
        what: str,
        send: Callable[[str], Awaitable[_Answer]],
        outcome: Callable[[_Answer], T],
    ) -> T:
        """`send` with the installation's token, retried and rate-limit-blocked as the module says;
        `outcome` reads the answer (it raises _TransientError for what is worth another attempt)."""
        self._raise_if_blocked(installation_id)
        for _ in range(2):  # a rejected token is renewed once
            try:
                return await self._retrying(lambda: self._send_once(installation_id, send, outcome), what)
            except DispatchUnavailableError as unavailable:
                self._block_if_rate_limited(installation_id, unavailable)
                raise
            except _TokenRejectedError as rejected:
                self._forget_token(installation_id, rejected.token)
                logger.warning("installation token rejected, renewing it", extra={"target": what})
        raise DispatchRefusedError(401, f"{what}: a fresh installation token was rejected too")

    def blocked_installations(self) -> dict[str, float]:
        """Installations rate-limited now, with the epoch second their limit resets."""
        now = time.time()
        return {installation: until for installation, until in self._blocked_until.items() if until > now}

    def _raise_if_blocked(self, installation_id: str) -> None:
        wait = self._blocked_until.get(installation_id, 0.0) - time.time()
        if wait > 0:
            raise DispatchUnavailableError(
                f"GitHub's rate limit for installation {installation_id} is used up; "
                f"it resets in {wait:.0f}s",
                wait,
            )
        self._blocked_until.pop(installation_id, None)

    def _block_if_rate_limited(self, installation_id: str, unavailable: DispatchUnavailableError) -> None:
        if unavailable.retry_after is not None and unavailable.retry_after > self._max_retry_after:
            self._blocked_until[installation_id] = time.time() + unavailable.retry_after
            logger.warning(
                "GitHub rate-limited an installation; its dispatches and cancels wait",
                extra={"installation_id": installation_id, "retry_after": unavailable.retry_after},
            )

    def app_jwt(self) -> str:
        now = int(time.time())
        claims = {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": self._app_id}
        return jwt.encode(claims, self._key, algorithm="RS256")

    async def _send_once(
        self, installation_id: str, send: Callable[[str], Awaitable[_Answer]], outcome: Callable[[_Answer], T]
    ) -> T:
        token = await self._installation_token(installation_id)
        answer = await send(token)
        if answer.status == 401:
            raise _TokenRejectedError(token)
        return outcome(answer)

    def _forget_token(self, installation_id: str, token: str) -> None:
        cached = self._tokens.get(installation_id)
        if cached is not None and cached.value == token:  # not one a concurrent dispatch just renewed
            del self._tokens[installation_id]

    async def _installation_token(self, installation_id: str) -> str:
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:  # one request per installation, however many dispatches wait for it
            cached = self._tokens.get(installation_id)
            if cached is not None and time.time() < cached.renew_at:
                return cached.value
            path = f"/app/installations/{quote(installation_id, safe='')}/access_tokens"
            answer = await self._post(path, self.app_jwt(), None)
            _raise_unless_success(answer, f"getting a token for installation {installation_id}")
            token = _parse_token(answer)
            self._tokens[installation_id] = token
            return token.value

    async def _post(self, path: str, bearer: str, body: dict[str, Any] | None) -> _Answer:
        if self._session is None:
            raise RuntimeError("the dispatcher is not started: use start() or `async with`")
        try:
            async with self._session.post(
                self._base_url + path, json=body, headers={"Authorization": f"Bearer {bearer}"}
            ) as response:
                text = await response.text()
                return _Answer(response.status, dict(response.headers), text)
        except TimeoutError as error:
            raise _TransientError(f"POST {path} timed out") from error
        except aiohttp.ClientError as error:
            raise _TransientError(f"POST {path} failed: {type(error).__name__}: {error}") from error

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        for number in range(1, self._max_attempts + 1):
            try:
                return await attempt()
            except _TransientError as error:
                if number == self._max_attempts:
                    raise DispatchUnavailableError(
                        f"{what}: {error.reason} (gave up after {number} attempts)", error.retry_after
                    ) from error
                if error.retry_after is not None and error.retry_after > self._max_retry_after:
                    raise DispatchUnavailableError(
                        f"{what}: {error.reason}; GitHub asks to wait {error.retry_after:.0f}s",
                        error.retry_after,
                    ) from error
                delay = max(self._backoff(number), error.retry_after or 0.0)
                logger.warning(
                    "GitHub request attempt failed, retrying",
                    extra={"target": what, "attempt": number, "reason": error.reason, "delay": delay},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: max_attempts >= 1")

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(
            attempt - 1,  # attempts count from 1 here
            first_seconds=self._base_backoff,
            max_seconds=self._max_backoff,
            draw=random.random(),  # spreads retries; not a secret
        )


def _dispatch_outcome(answer: _Answer, what: str, asked_run_details: bool) -> RunDetails | None:
    if asked_run_details and answer.status in (400, 422) and "return_run_details" in answer.message():
        raise _RunDetailsRefusedError(answer.message())
    _raise_unless_success(answer, what)
    return _run_details(answer, what)


def _run_details(answer: _Answer, what: str) -> RunDetails | None:
    """The run a successful dispatch answer names; None for a 204, or a body naming no run (logged:
    the workflow started all the same)."""
    if answer.status == 204 or not answer.body.strip():
        return None
    parsed = _json_object(answer.body)
    run_id = parsed.get("workflow_run_id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        logger.warning(
            "GitHub's dispatch answer names no workflow run",
            extra={"target": what, "status": answer.status, "body": answer.body[:200]},
        )
        return None
    return RunDetails(run_id, _text_or_none(parsed.get("html_url")), _text_or_none(parsed.get("run_url")))


def _json_object(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _cancel_outcome(answer: _Answer, what: str) -> CancelOutcome:
    if answer.status == 409:
        return CancelOutcome.ALREADY_FINISHED
    _raise_unless_success(answer, what)
    return CancelOutcome.REQUESTED


def _raise_unless_success(answer: _Answer, what: str) -> None:
    if 200 <= answer.status < 300:
        return
    retry_after = _retry_after(answer)
    if retry_after is None and answer.status in (403, 429) and "rate limit" in answer.message().lower():
        retry_after = SECONDARY_RATE_LIMIT_WAIT_SECONDS
    if answer.status >= 500 or answer.status == 429 or (answer.status == 403 and retry_after is not None):
        raise _TransientError(f"{what}: HTTP {answer.status}: {answer.message()}", retry_after)
    raise DispatchRefusedError(answer.status, f"{what}: {answer.message()}")


def _retry_after(answer: _Answer) -> float | None:
    """How long GitHub asks us to wait: Retry-After, or the rate limit's reset when it is used up."""
    headers = {name.lower(): value for name, value in answer.headers.items()}
    try:
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    except ValueError:
        return None
    return None


def _parse_token(answer: _Answer) -> _Token:
    try:
        parsed = json.loads(answer.body)
        expires_at = as_utc(datetime.fromisoformat(parsed["expires_at"])).timestamp()
        return _Token(str(parsed["token"]), expires_at - TOKEN_RENEWAL_MARGIN_SECONDS)
    except (ValueError, KeyError, TypeError) as error:
        raise _TransientError(f"malformed installation token answer: {answer.body[:200]!r}") from error


def _describe(target: GithubWorkflowTarget) -> str:
    return f"{target.owner}/{target.repo} workflow {target.workflow_file}@{target.ref}"
