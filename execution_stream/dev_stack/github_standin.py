"""A local stand-in for the part of GitHub's REST API a GitHub App uses to dispatch workflows and
cancel their runs: the tests' GitHub, and `dev`'s where no GitHub App is configured.

It checks requests as GitHub does: the app JWT (RS256 with the app's public key, `iss` the app id,
`exp` in the future and at most ten minutes ahead), installation tokens it issued itself (random,
an hour long, remembered per installation), and the dispatch body (`ref` a string, `inputs` at most
ten strings, `return_run_details` a boolean, no other key).

Each accepted dispatch is recorded and creates a run with a new id (from 10000000001 up). Asked for
`return_run_details`, it answers 200 with the run's `workflow_run_id`, `run_url` and `html_url`;
otherwise 204. The fault `refuse_return_run_details` plays an older GitHub Enterprise Server, which
answers 422 to a body carrying that key.

`POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel` answers 202 and records the cancel (again
for a run cancelled already), 409 for a run marked completed, 404 for a run it did not create in
that repository.

Faults are programmable, in process through `set_faults` or from outside through
`POST /_control/faults`. `GET /_control/dispatches`, `/_control/cancels` and `/_control/requests` list
what it received; `POST /_control/runs/{run_id}/complete` marks a run completed; `POST /_control/reset`
forgets everything.

Run alone: `python -m execution_stream.dev_stack.github_standin --port P --app-id ID --public-key-file F`
prints `ready http://127.0.0.1:P` once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import jwt
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_JWT_LIFETIME_SECONDS = 600
MAX_INPUTS = 10
BAD_JWT = "A JSON web token could not be decoded"
NOT_DISPATCHABLE = "Workflow does not have 'workflow_dispatch' trigger"
CANNOT_CANCEL = "Cannot cancel a workflow run that is completed."
FIRST_RUN_ID = 10_000_000_001
RUN_DETAILS = "return_run_details"


class Faults(BaseModel):
    """What the stand-in does wrong, in this order, to requests on `endpoint`."""

    model_config = ConfigDict(extra="forbid")

    endpoint: Literal["dispatches", "access_tokens", "cancel", "any"] = "dispatches"
    hang_times: int = Field(default=0, ge=0)  # wait hang_seconds, then answer 504 unprocessed
    hang_seconds: float = Field(default=0.0, ge=0)
    fail_times: int = Field(default=0, ge=0)  # answer fail_status unprocessed
    fail_status: int = Field(default=500, ge=400, le=599)
    retry_after: float | None = None  # sent with fail_status as Retry-After
    fail_message: str = "Server Error"
    reject_token_times: int = Field(default=0, ge=0)  # 401 to a valid token, which is revoked
    refuse_repos: list[str] = Field(default_factory=list)  # "repo" or "owner/repo": 422
    # Installations whose rate limit is used up, with the seconds (from when the faults are set)
    # until it resets: meanwhile their dispatches answer 403 with GitHub's headers.
    rate_limited_installations: dict[str, float] = Field(default_factory=dict)
    # Dispatches applied, then answered only after hang_seconds (a client that gives up first
    # cannot know the workflow started).
    apply_then_hang_times: int = Field(default=0, ge=0)
    # An older GitHub Enterprise Server: a dispatch body carrying `return_run_details` answers 422.
    refuse_return_run_details: bool = False


@dataclass(frozen=True)
class RecordedDispatch:
    installation_id: str
    owner: str
    repo: str
    workflow: str
    ref: str
    inputs: dict[str, str]
    at: datetime
    accept: str | None
    api_version: str | None
    workflow_run_id: int | None = None  # the run the dispatch created
    return_run_details: bool = False  # whether the dispatch asked for the run's details

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class RecordedCancel:
    installation_id: str
    owner: str
    repo: str
    workflow_run_id: int
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass
class _Run:
    owner: str
    repo: str
    completed: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    installation_id: str
    expires_at: float


class _RefusedError(Exception):
    """An error answer GitHub would give; the middleware turns it into the response."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass
class _State:
    faults: Faults = field(default_factory=Faults)
    rate_limit_resets: dict[str, float] = field(default_factory=dict)  # installation -> epoch
    dispatches: list[RecordedDispatch] = field(default_factory=list)
    cancels: list[RecordedCancel] = field(default_factory=list)
    runs: dict[int, _Run] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    issued: list[IssuedToken] = field(default_factory=list)
    live: dict[str, IssuedToken] = field(default_factory=dict)


class GithubStandin:
    def __init__(
        self,
        app_id: str,
        public_key_pem: str,
        *,
        installations: Mapping[str, str] | None = None,
        token_lifetime_seconds: float = 3600.0,
    ) -> None:
        """`installations` maps installation ids to the account they cover; None accepts any."""
        self.app_id = app_id
        self.url = ""
        public_key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(public_key, RSAPublicKey):
            raise TypeError("a GitHub App's public key is an RSA key")
        self._public_key = public_key
        self._installations = dict(installations) if installations is not None else None
        self._token_lifetime = token_lifetime_seconds
        self._state = _State()
        self._run_ids = itertools.count(FIRST_RUN_ID)  # not reset: a run id is never given twice

    @property
    def dispatches(self) -> list[RecordedDispatch]:
        return list(self._state.dispatches)

    @property
    def cancels(self) -> list[RecordedCancel]:
        return list(self._state.cancels)

    def complete_run(self, workflow_run_id: int) -> None:
        """Mark a run it created completed: cancelling it then answers 409. KeyError if unknown."""
        self._state.runs[workflow_run_id].completed = True

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._state.requests)

    @property
    def issued_tokens(self) -> list[IssuedToken]:
        return list(self._state.issued)

    @property
    def faults(self) -> Faults:
        return self._state.faults

    def set_faults(self, **fields: Any) -> Faults:
        """Replace every fault at once; no argument clears them."""
        self._state.faults = Faults.model_validate(fields)
        limited = self._state.faults.rate_limited_installations
        self._state.rate_limit_resets = {inst: time.time() + seconds for inst, seconds in limited.items()}
        return self._state.faults

    def reset(self) -> None:
        self._state = _State()

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/app/installations/{installation_id}/access_tokens", self._access_tokens)
        app.router.add_post("/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", self._dispatch)
        app.router.add_post("/repos/{owner}/{repo}/actions/runs/{run_id}/cancel", self._cancel)
        app.router.add_get("/_control/dispatches", self._control_dispatches)
        app.router.add_get("/_control/cancels", self._control_cancels)
        app.router.add_post("/_control/runs/{run_id}/complete", self._control_complete_run)
        app.router.add_get("/_control/requests", self._control_requests)
        app.router.add_get("/_control/faults", self._control_faults)
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_post("/_control/reset", self._control_reset)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except _RefusedError as refused:
            response = _error(refused.status, refused.message, refused.headers)
        if not request.path.startswith("/_control/"):
            self._state.requests.append(RecordedRequest(request.method, request.path, response.status))
        return response

    async def _access_tokens(self, request: web.Request) -> web.Response:
        await self._fault("access_tokens")
        self._check_app_jwt(request.headers.get("Authorization", ""))
        installation_id = request.match_info["installation_id"]
        if self._installations is not None and installation_id not in self._installations:
            raise _RefusedError(404, "Not Found")
        issued = IssuedToken(
            "ghs_" + secrets.token_urlsafe(27), installation_id, time.time() + self._token_lifetime
        )
        self._state.issued.append(issued)
        self._state.live[issued.token] = issued
        expires_at = datetime.fromtimestamp(issued.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"token": issued.token, "expires_at": expires_at, "permissions": {"actions": "write"}}
        return web.json_response(body, status=201)

    async def _dispatch(self, request: web.Request) -> web.Response:
        await self._fault("dispatches")
        token = self._authorized(request)
        faults = self._state.faults
        body = _check_body(await _json_body(request), knows_run_details=not faults.refuse_return_run_details)
        owner, repo = request.match_info["owner"], request.match_info["repo"]
        if repo in faults.refuse_repos or f"{owner}/{repo}" in faults.refuse_repos:
            raise _RefusedError(422, NOT_DISPATCHABLE)
        dispatch = self._record_dispatch(request, token, body)
        if faults.apply_then_hang_times > 0:
            faults.apply_then_hang_times -= 1
            await asyncio.sleep(faults.hang_seconds)
        if dispatch.workflow_run_id is None or not dispatch.return_run_details:
            return web.Response(status=204)
        return web.json_response(_run_details(request, dispatch.workflow_run_id), status=200)

    def _authorized(self, request: web.Request) -> IssuedToken:
        """The live installation token of `request`, allowed now on its `owner`'s repositories."""
        token = self._installation_token(request.headers.get("Authorization", ""))
        faults = self._state.faults
        if faults.reject_token_times > 0:
            faults.reject_token_times -= 1
            del self._state.live[token.token]
            raise _RefusedError(401, "Bad credentials")
        if self._state.rate_limit_resets.get(token.installation_id, 0.0) > time.time():
            raise self._rate_limited(token.installation_id)
        owner = request.match_info["owner"]
        if self._installations is not None and self._installations[token.installation_id] != owner:
            raise _RefusedError(404, "Not Found")
        return token

    def _record_dispatch(
        self, request: web.Request, token: IssuedToken, body: dict[str, Any]
    ) -> RecordedDispatch:
        owner, repo, workflow = (request.match_info[name] for name in ("owner", "repo", "workflow"))
        run_id = next(self._run_ids)
        self._state.runs[run_id] = _Run(owner, repo)
        dispatch = RecordedDispatch(
            installation_id=token.installation_id,
            owner=owner,
            repo=repo,
            workflow=workflow,
            ref=body["ref"],
            inputs=dict(body.get("inputs", {})),
            at=datetime.now(UTC),
            accept=request.headers.get("Accept"),
            api_version=request.headers.get("X-GitHub-Api-Version"),
            workflow_run_id=run_id,
            return_run_details=body.get(RUN_DETAILS) is True,
        )
        self._state.dispatches.append(dispatch)
        return dispatch

    async def _cancel(self, request: web.Request) -> web.Response:
        await self._fault("cancel")
        token = self._authorized(request)
        owner, repo = request.match_info["owner"], request.match_info["repo"]
        run_id = _run_id(request.match_info["run_id"])
        run = self._state.runs.get(run_id) if run_id is not None else None
        if run_id is None or run is None or (run.owner, run.repo) != (owner, repo):
            raise _RefusedError(404, "Not Found")
        if run.completed:
            raise _RefusedError(409, CANNOT_CANCEL)
        self._state.cancels.append(
            RecordedCancel(token.installation_id, owner, repo, run_id, datetime.now(UTC))
        )
        return web.json_response({}, status=202)

    def _rate_limited(self, installation_id: str) -> _RefusedError:
        """GitHub's answer once an installation's primary rate limit is used up."""
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(self._state.rate_limit_resets[installation_id])),
            "x-ratelimit-resource": "core",
        }
        return _RefusedError(403, f"API rate limit exceeded for installation ID {installation_id}.", headers)

    async def _fault(self, endpoint: str) -> None:
        """Answer as the programmed fault says, before the request is processed."""
        faults = self._state.faults
        if faults.endpoint not in (endpoint, "any"):
            return
        if faults.hang_times > 0:
            faults.hang_times -= 1
            await asyncio.sleep(faults.hang_seconds)
            raise _RefusedError(504, "We couldn't respond to your request in time.")
        if faults.fail_times > 0:
            faults.fail_times -= 1
            headers = {"Retry-After": f"{faults.retry_after:g}"} if faults.retry_after is not None else {}
            raise _RefusedError(faults.fail_status, faults.fail_message, headers)

    def _check_app_jwt(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _RefusedError(401, BAD_JWT)
        try:
            claims = jwt.decode(
                token, self._public_key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]}
            )
        except jwt.ExpiredSignatureError as error:
            raise _RefusedError(401, "'Expiration time' claim ('exp') must be in the future") from error
        except jwt.ImmatureSignatureError as error:
            raise _RefusedError(401, "'Issued at' claim ('iat') must be a time in the past") from error
        except jwt.InvalidTokenError as error:
            raise _RefusedError(401, BAD_JWT) from error
        if str(claims["iss"]) != self.app_id:
            raise _RefusedError(401, "Integration not found: 'iss' does not name this app")
        if claims["exp"] > time.time() + MAX_JWT_LIFETIME_SECONDS:
            raise _RefusedError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _installation_token(self, authorization: str) -> IssuedToken:
        scheme, _, value = authorization.partition(" ")
        issued = self._state.live.get(value) if scheme.lower() in ("bearer", "token") else None
        if issued is None or issued.expires_at <= time.time():
            raise _RefusedError(401, "Bad credentials")
        return issued

    async def _control_dispatches(self, request: web.Request) -> web.Response:
        return web.json_response([dispatch.as_json() for dispatch in self._state.dispatches])

    async def _control_cancels(self, request: web.Request) -> web.Response:
        return web.json_response([cancel.as_json() for cancel in self._state.cancels])

    async def _control_complete_run(self, request: web.Request) -> web.Response:
        run_id = _run_id(request.match_info["run_id"])
        if run_id is None or run_id not in self._state.runs:
            return _error(404, "Not Found")
        self.complete_run(run_id)
        return web.json_response({"workflow_run_id": run_id, "completed": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(recorded) for recorded in self._state.requests])

    async def _control_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.set_faults(**await request.json())
            except (ValueError, TypeError, ValidationError) as error:
                return _error(400, str(error))
        return web.json_response(self._state.faults.model_dump())

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as error:
        raise _RefusedError(400, "Problems parsing JSON") from error


def _check_body(body: Any, *, knows_run_details: bool = True) -> dict[str, Any]:
    """A dispatch body as GitHub accepts it: a non-empty `ref`, at most ten string `inputs`, a boolean
    `return_run_details` (a key an older GitHub Enterprise Server, `knows_run_details` False, refuses)."""
    if not isinstance(body, dict):
        raise _RefusedError(422, "Invalid request. The body is not an object.")
    unknown = sorted(set(body) - {"ref", "inputs", *([RUN_DETAILS] if knows_run_details else [])})
    if unknown:
        raise _RefusedError(422, _not_permitted(unknown))
    inputs = body.get("inputs", {})
    problems = [
        "'ref' must be a non-empty string" if not isinstance(body.get("ref"), str) or not body["ref"] else "",
        "'inputs' must be an object" if not isinstance(inputs, dict) else "",
        f"at most {MAX_INPUTS} inputs are allowed"
        if isinstance(inputs, dict) and len(inputs) > MAX_INPUTS
        else "",
        "every input must be a string"
        if isinstance(inputs, dict) and not all(isinstance(value, str) for value in inputs.values())
        else "",
        f"'{RUN_DETAILS}' must be a boolean" if not isinstance(body.get(RUN_DETAILS, False), bool) else "",
    ]
    found = [problem for problem in problems if problem]
    if found:
        raise _RefusedError(422, "Invalid request. " + "; ".join(found) + ".")
    return body


def _not_permitted(keys: list[str]) -> str:
    """GitHub's words for body keys it does not know."""
    named = ", ".join(f'"{key}"' for key in keys)
    return f"Invalid request.\n\n{named} " + (
        "is not a permitted key." if len(keys) == 1 else "are not permitted keys."
    )


def _run_details(request: web.Request, run_id: int) -> dict[str, Any]:
    """The 200 body of a dispatch that asked for `return_run_details`."""
    owner, repo = (quote(request.match_info[name], safe="") for name in ("owner", "repo"))
    return {
        "workflow_run_id": run_id,
        "run_url": f"{request.url.origin()}/repos/{owner}/{repo}/actions/runs/{run_id}",
        "html_url": f"https://github.com/{owner}/{repo}/actions/runs/{run_id}",
    }


def _run_id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    return web.json_response(body, status=status, headers=headers)


@asynccontextmanager
async def running_github_standin(
    app_id: str,
    public_key_pem: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    installations: Mapping[str, str] | None = None,
    token_lifetime_seconds: float = 3600.0,
) -> AsyncIterator[GithubStandin]:
    """The stand-in serving on `host` (port 0: a free one) until the block ends."""
    standin = GithubStandin(
        app_id, public_key_pem, installations=installations, token_lifetime_seconds=token_lifetime_seconds
    )
    runner = web.AppRunner(
        standin.application(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    try:
        await web.SockSite(runner, sock).start()
        standin.url = f"http://{host}:{sock.getsockname()[1]}"
        yield standin
    finally:
        await runner.cleanup()
        sock.close()


async def _serve(arguments: argparse.Namespace, public_key_pem: str) -> None:
    installations = dict(item.split("=", 1) for item in arguments.installation) or None
    async with running_github_standin(
        arguments.app_id,
        public_key_pem,
        host=arguments.host,
        port=arguments.port,
        installations=installations,
        token_lifetime_seconds=arguments.token_lifetime_seconds,
    ) as standin:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"ready {standin.url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--public-key-file", required=True)
    parser.add_argument("--installation", action="append", default=[], metavar="ID=OWNER")
    parser.add_argument("--token-lifetime-seconds", type=float, default=3600.0)
    arguments = parser.parse_args(argv)
    asyncio.run(_serve(arguments, Path(arguments.public_key_file).read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
