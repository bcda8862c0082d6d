"""The judge behind HTTP, knowing no RL framework: ``cerm serve`` adds the framework's routes.

Endpoints of its own: ``POST /v1/score_group`` (native), ``POST /v1/prefetch`` (start criteria
before the responses exist), ``GET /health``, ``GET /metrics`` (Prometheus). A framework's
contract (OpenRLHF's ``/get_reward`` in :mod:`cerm_reward.integrations.openrlhf.routes`) comes
in as a :data:`Routes` factory given to :func:`create_app`, so this module imports no
integration and a new framework needs no change here. Requests for the same query share one
criteria generation through the judge's single-flight cache, and concurrent requests are
batched by the engine.

Safe by default: a bearer token is required whenever one is set, on added routes too (and the
CLI refuses a non-loopback bind without one); request bodies and response counts are bounded;
every request has a deadline (below OpenRLHF's 180 s client timeout by default), past which
unfinished responses get the failure policy's value with the ``timeout`` kind instead of a hang.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from cerm_reward.config import CermConfig
from cerm_reward.frozen import FrozenModel
from cerm_reward.judges.queries import InvalidInputError, Query, render_query
from cerm_reward.results import FailureKind, Judgement
from cerm_reward.serving.backend import JudgeBackend, LocalBackend, PoolBackend
from cerm_reward.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)


class ServerSettings(FrozenModel):
    """Limits and security of the server (the judge's own settings live in :class:`CermConfig`)."""

    token: str | None = None
    """Bearer token required on every endpoint but /health (also accepted as ``?token=``,
    because OpenRLHF's client cannot send headers)."""
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)
    max_responses: int = Field(default=512, gt=0)
    """Responses (or samples, or queries) in one request, whatever the route."""
    deadline_s: float = Field(default=170.0, gt=0)
    """Per-request deadline; below OpenRLHF's 180 s client timeout."""
    pool: str | None = None
    """Judge with the Ray judge pool of this name instead of an engine in this process."""
    ray_address: str | None = None
    """The Ray cluster of the pool (default: ``auto``, i.e. ``RAY_ADDRESS`` or the local cluster)."""


class ScoreGroupRequest(BaseModel):
    query: str | list[dict[str, Any]]
    responses: list[str] = Field(min_length=1)
    id: str | None = None


class PrefetchRequest(BaseModel):
    """Queries whose responses are not written yet: their criteria are generated now."""

    queries: list[str | list[dict[str, Any]]] = Field(min_length=1)


class Refused(Exception):
    """A request the server answers with ``status`` and ``{"error": message}`` (raised by any route)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JudgeServer:
    """What a route added to the server may use: its settings, its judge and the deadline.

    The judge exists only once the app's lifespan has started, so routes reach it through
    :meth:`judge` at request time; ``on_ready`` callbacks run then, once, with the judge.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._backend: JudgeBackend | None = None
        self._ready: list[Callable[[JudgeBackend], None]] = []
        self.deadline_failures = 0
        """Responses that got the failure policy because the deadline passed (added to /metrics)."""

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
        for callback in self._ready:
            callback(backend)

    async def judge_with_deadline(self, query: Query, responses: list[str], indices: list[int]) -> list[Judgement]:
        """Score one group; past the deadline, its responses get the policy value with kind ``timeout``."""
        deadline_s = self.settings.deadline_s
        try:
            result = await asyncio.wait_for(self.judge().score_group(query, responses), deadline_s)
        except asyncio.TimeoutError:
            logger.warning("request deadline of %gs passed: %d response(s) get the failure policy", deadline_s, len(indices))
            detail = f"request deadline of {deadline_s:g}s passed"
            self.deadline_failures += len(indices)
            score = self.judge().config.failed_score
            return [Judgement(index, score, FailureKind.TIMEOUT, detail, None, None, None) for index in indices]
        for judgement, index in zip(result.judgements, indices, strict=True):
            judgement.index = index
        return result.judgements


Routes = Callable[[JudgeServer], APIRouter]
"""A framework's routes: given the server, an ``APIRouter`` whose endpoints all require the token."""


def _error(status: int, message: str, details: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p != "body"]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def create_app(
    config: CermConfig, settings: ServerSettings, backend: JudgeBackend | None = None, routes: Sequence[Routes] = ()
) -> FastAPI:
    """The ASGI app; the judge starts in its lifespan, so the server listens only once it is up.

    With ``settings.pool`` the server attaches to that Ray judge pool, whose replicas' own
    configuration governs the judging; ``config`` is then unused. An open ``backend`` is served
    as it is and left open (a process that already holds a judge, such as ``cerm bench``).
    ``routes`` add a framework's endpoints (``cerm serve`` adds OpenRLHF's ``/get_reward``);
    they share the token, the body and count limits, the deadline and the metrics.
    """
    metrics = ServerMetrics()
    server = JudgeServer(settings)
    given = backend

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if given is not None:
            backend: JudgeBackend = given
        elif settings.pool:
            backend = await PoolBackend.connect(settings.pool, settings.ray_address)
        else:
            backend = await LocalBackend.open(config)
        server.opened(backend)
        logger.info(
            "judge server ready: %s judge, model=%s via %s, deadline=%gs, token=%s; %s",
            backend.config.kind,
            backend.model_id,
            f"Ray pool {settings.pool!r}" if settings.pool else "this process",
            settings.deadline_s,
            bool(settings.token),
            backend.config.describe_failure_policy(),
        )
        try:
            yield
        finally:
            if given is None:
                await backend.aclose()

    app = FastAPI(title="cerm-reward judge server", lifespan=lifespan)
    judge = server.judge

    def authorised(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token")
        if not given:
            raise Refused(401, "missing bearer token: send 'Authorization: Bearer <token>' (or ?token=<token>)")
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise Refused(401, "wrong bearer token")

    @app.middleware("http")
    async def bound_and_measure(request: Request, call_next):
        started = time.perf_counter()
        endpoint = request.url.path
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            response: Response = _error(413, f"request body of {declared} bytes exceeds the limit of {settings.max_body_bytes}")
        elif declared is None and request.method == "POST" and len(await request.body()) > settings.max_body_bytes:
            response = _error(413, f"request body exceeds the limit of {settings.max_body_bytes} bytes")
        else:
            response = await call_next(request)
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return _error(400, "request body is not valid JSON")
        details = [f"{_field_path(tuple(p.get('loc', ())))}: {p.get('msg', 'invalid')}" for p in problems]
        return _error(422, "invalid request: " + "; ".join(details), details)

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, error: InvalidInputError) -> JSONResponse:
        return _error(422, f"invalid request: {error}")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "judge": judge().config.kind, "model": judge().model_id, "template": judge().template_version}

    @app.get("/metrics", dependencies=[Depends(authorised)])
    async def prometheus() -> Response:
        snapshot = await judge().stats()
        if server.deadline_failures:  # decided here, not by the judge: counted with its failures
            failures = dict(snapshot.get("failures", {}))
            failures["timeout"] = failures.get("timeout", 0) + server.deadline_failures
            snapshot["failures"] = failures
        metrics.judge.snapshot = snapshot
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/prefetch", status_code=202, dependencies=[Depends(authorised)])
    async def prefetch(body: PrefetchRequest) -> dict[str, Any]:
        if len(body.queries) > settings.max_responses:
            raise Refused(413, f"queries: {len(body.queries)} exceed the limit of {settings.max_responses} per request")
        for index, query in enumerate(body.queries):
            try:
                render_query(query)
            except InvalidInputError as error:
                raise Refused(422, f"queries[{index}]: {error}") from None
        for query in body.queries:
            judge().prefetch(query)
        return {"accepted": len(body.queries)}

    @app.post("/v1/score_group", dependencies=[Depends(authorised)])
    async def score_group(body: ScoreGroupRequest) -> dict[str, Any]:
        if len(body.responses) > settings.max_responses:
            raise Refused(413, f"responses: {len(body.responses)} exceed the limit of {settings.max_responses} per request")
        render_query(body.query)
        judgements = await server.judge_with_deadline(body.query, body.responses, list(range(len(body.responses))))
        return {"id": body.id, "model": judge().model_id, "judgements": [j.to_dict() for j in judgements]}

    for make_routes in routes:
        app.include_router(make_routes(server), dependencies=[Depends(authorised)])
    return app
