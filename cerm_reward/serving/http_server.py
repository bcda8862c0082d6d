"""The judge behind HTTP, knowing no RL framework: ``cerm serve`` adds the framework's routes.

Endpoints of its own: ``POST /v1/score_group`` (native), ``POST /v1/prefetch`` (start criteria
before the responses exist), ``GET /health``, ``GET /metrics`` (Prometheus). A framework's
contract (OpenRLHF's ``/get_reward`` in :mod:`cerm_reward.integrations.openrlhf.routes`) comes
in as a :data:`Routes` factory given to :func:`create_app`, so this module imports no
integration and a new framework needs no change here. Requests for the same query share one
criteria generation through the judge's single-flight cache, and concurrent requests are
batched by the engine.

Safe by default (limits, status codes and what OpenRLHF sees: docs/server.md): the door
(:mod:`.guard`) checks the token before reading a body, bounds the body while it streams,
labels metrics by route and cancels a request whose client left; the server admits at most
``max_inflight_samples`` samples and ``max_pending_prefetches`` prefetches at once (429 with
``Retry-After`` past them); every request has a deadline (below OpenRLHF's 180 s client
timeout by default), past which unfinished responses get the failure policy's value with the
``timeout`` kind instead of a hang. ``/health`` tells the truth: 503 once the engine is dead,
and the server then exits (or restarts the engine, ``on_engine_death``) so a supervisor sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cerm_reward.config import CermConfig
from cerm_reward.frozen import FrozenModel
from cerm_reward.judges.queries import InvalidInputError, Query, render_query
from cerm_reward.results import FailureKind, Judgement
from cerm_reward.serving.backend import JudgeBackend, LocalBackend, PoolBackend
from cerm_reward.serving.guard import Guard, error_body
from cerm_reward.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)


class ServerSettings(FrozenModel):
    """Limits and security of the server (the judge's own settings live in :class:`CermConfig`)."""

    token: str | None = None
    """Bearer token required on every endpoint but /health (also accepted as ``?token=``,
    because OpenRLHF's client cannot send headers); at least :data:`MIN_TOKEN_CHARS` characters."""
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)
    max_responses: int = Field(default=512, gt=0)
    """Responses (or samples, or queries) in one request, whatever the route."""
    max_inflight_samples: int = Field(default=4096, gt=0)
    """Samples (responses) being judged at once, server-wide; a request past it gets 429."""
    max_pending_prefetches: int = Field(default=256, gt=0)
    """Criteria generations started by /v1/prefetch and not finished; a prefetch past it gets 429."""
    deadline_s: float = Field(default=170.0, gt=0, le=86400, allow_inf_nan=False)
    """Per-request deadline; below OpenRLHF's 180 s client timeout."""
    on_engine_death: Literal["exit", "restart"] = "exit"
    """When the engine in this process dies: stop the server (non-zero exit) or open a new engine."""
    pool: str | None = None
    """Judge with the Ray judge pool of this name instead of an engine in this process."""
    ray_address: str | None = None
    """The Ray cluster of the pool (default: ``auto``, i.e. ``RAY_ADDRESS`` or the local cluster)."""

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: str | None) -> str | None:
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters (a guessable token protects nothing)")
        return token


MIN_TOKEN_CHARS = 16


def unencodable_field(value: Any, path: str = "") -> str | None:
    """The first string in ``value`` that UTF-8 cannot encode (a lone surrogate from ``\\ud800``), as a field path."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        found = unencodable_field(item, where)
        if found is not None:
            return found
    return None


class TextOnly(BaseModel):
    """A request body whose strings must all be encodable text (422 naming the field otherwise)."""

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        field = unencodable_field(data)
        if field is not None:
            raise PydanticCustomError("unencodable", "{field}: not valid Unicode text (a lone surrogate)", {"field": field})
        return data


class ScoreGroupRequest(TextOnly):
    query: str | list[dict[str, Any]]
    responses: list[str] = Field(min_length=1)
    id: str | None = None


class PrefetchRequest(TextOnly):
    """Queries whose responses are not written yet: their criteria are generated now."""

    queries: list[str | list[dict[str, Any]]] = Field(min_length=1)


class Refused(Exception):
    """A request the server answers with ``status`` and ``{"error": message}`` (raised by any route)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class JudgeServer:
    """What a route added to the server may use: its settings, its judge, admission and the deadline.

    The judge exists only once the app's lifespan has started, so routes reach it through
    :meth:`judge` at request time; ``on_ready`` callbacks run then, once, with the judge.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._backend: JudgeBackend | None = None
        self._ready: list[Callable[[JudgeBackend], None]] = []
        self.inflight_samples = 0
        self.pending_prefetches = 0
        self.engine_state = "starting"
        """``starting``, ``ok``, ``dead`` or ``restarting``: what /health reports."""
        self.server_failures: dict[str, int] = {}
        """Responses the server gave the failure policy itself, by kind (``timeout``, ``invalid_input``), for /metrics."""

    def judge(self) -> JudgeBackend:
        if self._backend is None:
            raise RuntimeError("the judge is not open yet: routes run only inside the app's lifespan")
        return self._backend

    def on_ready(self, callback: Callable[[JudgeBackend], None]) -> None:
        """Call ``callback`` with the judge when the server has opened it (e.g. to log a caveat)."""
        self._ready.append(callback)

    def opened(self, backend: JudgeBackend) -> None:
        """The lifespan has the judge: routes may use it from now on, and the ready callbacks run."""
        self._backend = backend
        self.engine_state = "ok"
        for callback in self._ready:
            callback(backend)

    def count_failures(self, kind: str, count: int) -> None:
        self.server_failures[kind] = self.server_failures.get(kind, 0) + count

    @asynccontextmanager
    async def admitted(self, samples: int) -> AsyncIterator[None]:
        """Hold ``samples`` of the server-wide in-flight bound for a request; 429 when they do not fit."""
        limit = self.settings.max_inflight_samples
        if self.engine_state != "ok":
            raise Refused(503, f"the judge engine is {self.engine_state}", {"Retry-After": "10"})
        if self.inflight_samples + samples > limit:
            raise Refused(
                429,
                f"server busy: {self.inflight_samples} samples in flight, {samples} more exceed the limit of {limit}",
                {"Retry-After": "2"},
            )
        self.inflight_samples += samples
        try:
            yield
        finally:
            self.inflight_samples -= samples

    def prefetch(self, query: Query) -> None:
        """Start a query's criteria turn, counted against ``max_pending_prefetches`` until it ends."""
        if self.pending_prefetches >= self.settings.max_pending_prefetches:
            limit = self.settings.max_pending_prefetches
            raise Refused(429, f"server busy: {limit} prefetches pending (the limit)", {"Retry-After": "2"})
        generation = self.judge().prefetch(query)
        if isinstance(generation, asyncio.Future) and not generation.done():
            self.pending_prefetches += 1
            generation.add_done_callback(self._prefetch_done)

    def _prefetch_done(self, _: asyncio.Future[Any]) -> None:
        self.pending_prefetches -= 1

    async def judge_with_deadline(
        self, query: Query, responses: list[str], indices: list[int], timeout_s: float | None = None
    ) -> list[Judgement]:
        """Score one group; past the deadline (``timeout_s``: what is left of it), the policy value with kind ``timeout``."""
        deadline_s = self.settings.deadline_s
        try:
            result = await asyncio.wait_for(self.judge().score_group(query, responses), timeout_s or deadline_s)
        except asyncio.TimeoutError:
            return self.timed_out(indices)
        for judgement, index in zip(result.judgements, indices, strict=True):
            judgement.index = index
        return result.judgements

    def timed_out(self, indices: list[int]) -> list[Judgement]:
        deadline_s = self.settings.deadline_s
        logger.warning("request deadline of %gs passed: %d response(s) get the failure policy", deadline_s, len(indices))
        detail = f"request deadline of {deadline_s:g}s passed"
        self.count_failures(FailureKind.TIMEOUT.value, len(indices))
        score = self.judge().config.failed_score
        return [Judgement(index, score, FailureKind.TIMEOUT, detail, None, None, None) for index in indices]


Routes = Callable[[JudgeServer], APIRouter]
"""A framework's routes: given the server, an ``APIRouter`` (the token, limits and metrics apply to it too)."""

EngineDead = Callable[[str], None]
"""Told why the engine died when the server gives up on it (``cerm serve`` stops and exits non-zero)."""

WATCH_INTERVAL_S = 0.5
DEAD_NOTICE_S = 3.0
"""How long a server whose engine died keeps answering 503 before it stops, so probes see why."""


def _error(status: int, message: str, details: list[str] | None = None, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message, details), status_code=status, media_type="application/json", headers=headers)


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p != "body"]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def _problem(problem: dict[str, Any]) -> str:
    if problem.get("type") == "unencodable":
        return str(problem.get("msg"))
    return f"{_field_path(tuple(problem.get('loc', ())))}: {problem.get('msg', 'invalid')}"


def create_app(
    config: CermConfig,
    settings: ServerSettings,
    backend: JudgeBackend | None = None,
    routes: Sequence[Routes] = (),
    on_engine_dead: EngineDead | None = None,
) -> FastAPI:
    """The ASGI app; the judge starts in its lifespan, so the server listens only once it is up.

    With ``settings.pool`` the server attaches to that Ray judge pool, whose replicas' own
    configuration governs the judging; ``config`` is then unused. An open ``backend`` is served
    as it is and left open (a process that already holds a judge, such as ``cerm bench``).
    ``routes`` add a framework's endpoints (``cerm serve`` adds OpenRLHF's ``/get_reward``);
    they share the token, the body and count limits, admission, the deadline and the metrics.
    When the engine in this process dies, ``/health`` answers 503 and, unless
    ``settings.on_engine_death`` is ``restart``, ``on_engine_dead`` is told why (the caller stops).
    """
    metrics = ServerMetrics()
    server = JudgeServer(settings)
    given = backend

    async def open_backend() -> JudgeBackend:
        if given is not None:
            return given
        if settings.pool:
            return await PoolBackend.connect(settings.pool, settings.ray_address)
        return await LocalBackend.open(config)

    async def watch_engine() -> None:
        """Poll the engine's liveness; on death, 503 on /health, then restart it or give up."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            reason = server.judge().failure()
            if reason is None:
                continue
            server.engine_state = "dead"
            logger.error("the judge engine died: %s", reason)
            if settings.on_engine_death == "restart" and given is None:
                server.engine_state = "restarting"
                await server.judge().aclose()
                server.opened(await open_backend())
                logger.warning("the judge engine was restarted after: %s", reason)
                continue
            if on_engine_dead is not None:
                await asyncio.sleep(DEAD_NOTICE_S)
                on_engine_dead(reason)
            return

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.opened(await open_backend())
        backend = server.judge()
        logger.info(
            "judge server ready: %s judge, model=%s via %s, deadline=%gs, token=%s; %s",
            backend.config.kind,
            backend.model_id,
            f"Ray pool {settings.pool!r}" if settings.pool else "this process",
            settings.deadline_s,
            bool(settings.token),
            backend.config.describe_failure_policy(),
        )
        watcher = asyncio.ensure_future(watch_engine())
        try:
            yield
        finally:
            watcher.cancel()
            if given is None:
                await server.judge().aclose()

    app = FastAPI(title="cerm-reward judge server", lifespan=lifespan)
    judge = server.judge

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = error.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return _error(400, "request body is not valid JSON")
        details = [_problem(p) for p in problems]
        return _error(422, "invalid request: " + "; ".join(details), details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _error(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return _error(error.status, error.message, headers=error.headers)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, error: InvalidInputError) -> Response:
        return _error(422, f"invalid request: {error}")

    @app.get("/health")
    async def health() -> Response:
        state = server.engine_state
        body: dict[str, Any] = {"status": "ok" if state == "ok" else state}
        if state == "ok":
            body.update(judge=judge().config.kind, model=judge().model_id, template=judge().template_version)
        return JSONResponse(body, status_code=200 if state == "ok" else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        snapshot = await judge().stats()
        if server.server_failures:  # decided here, not by the judge: counted with its failures
            failures = dict(snapshot.get("failures", {}))
            for kind, count in server.server_failures.items():
                failures[kind] = failures.get(kind, 0) + count
            snapshot["failures"] = failures
        metrics.judge.snapshot = snapshot
        metrics.admission.snapshot = {"samples": server.inflight_samples, "prefetches": server.pending_prefetches}
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/prefetch", status_code=202)
    async def prefetch(body: PrefetchRequest) -> dict[str, Any]:
        if len(body.queries) > settings.max_responses:
            raise Refused(413, f"queries: {len(body.queries)} exceed the limit of {settings.max_responses} per request")
        for index, query in enumerate(body.queries):
            try:
                render_query(query)
            except InvalidInputError as error:
                raise Refused(422, f"queries[{index}]: {error}") from None
        accepted = 0
        for query in body.queries:
            if server.pending_prefetches >= settings.max_pending_prefetches and accepted:
                break  # the rest would be refused: accept what fits and say how many
            server.prefetch(query)
            accepted += 1
        return {"accepted": accepted}

    @app.post("/v1/score_group")
    async def score_group(body: ScoreGroupRequest) -> dict[str, Any]:
        if len(body.responses) > settings.max_responses:
            raise Refused(413, f"responses: {len(body.responses)} exceed the limit of {settings.max_responses} per request")
        render_query(body.query)
        async with server.admitted(len(body.responses)):
            judgements = await server.judge_with_deadline(body.query, body.responses, list(range(len(body.responses))))
        return {"id": body.id, "model": judge().model_id, "judgements": [j.to_dict() for j in judgements]}

    for make_routes in routes:
        app.include_router(make_routes(server))
    app.add_middleware(Guard, token=settings.token, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    return app
