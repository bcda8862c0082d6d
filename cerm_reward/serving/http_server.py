"""`cerm serve`: the judge behind HTTP, for OpenRLHF's ``--reward.remote_url`` and as a service.

Endpoints: ``POST /get_reward`` (OpenRLHF's contract), ``POST /v1/score_group`` (native),
``POST /v1/prefetch`` (start criteria before the responses exist),
``GET /health``, ``GET /metrics`` (Prometheus). OpenRLHF sends each sample on its own;
requests for the same query share one criteria generation through the judge's
single-flight cache, and concurrent requests are batched by the engine.

Safe by default: a bearer token is required whenever one is set (and the CLI refuses a
non-loopback bind without one); request bodies and response counts are bounded; every
request has a deadline below OpenRLHF's 180 s client timeout, past which unfinished
samples get the failure policy's value with the ``timeout`` kind instead of a hang.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, model_validator

from cerm_reward.config import CermConfig
from cerm_reward.frozen import FrozenModel
from cerm_reward.integrations.openrlhf.contract import extra_logs_of, reward_of, to_sample
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
    """Samples per /get_reward request and responses per /v1/score_group request."""
    deadline_s: float = Field(default=170.0, gt=0)
    """Per-request deadline; below OpenRLHF's 180 s client timeout."""
    label_as_reference: bool = False
    """Pass OpenRLHF ``labels`` to the judge as a reference answer appended to the query."""
    pool: str | None = None
    """Judge with the Ray judge pool of this name instead of an engine in this process."""
    ray_address: str | None = None
    """The Ray cluster of the pool (default: ``auto``, i.e. ``RAY_ADDRESS`` or the local cluster)."""


class RewardRequest(BaseModel):
    """OpenRLHF's body: ``query`` = prompt + response texts, ``prompts`` = chat-templated prompts."""

    query: list[str]
    prompts: list[str]
    labels: list[Any] | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> RewardRequest:
        if len(self.prompts) != len(self.query):
            raise ValueError(f"prompts: expected {len(self.query)} items like query, got {len(self.prompts)}")
        if self.labels is not None and len(self.labels) != len(self.query):
            raise ValueError(f"labels: expected {len(self.query)} items like query, got {len(self.labels)}")
        return self


class ScoreGroupRequest(BaseModel):
    query: str | list[dict[str, Any]]
    responses: list[str] = Field(min_length=1)
    id: str | None = None


class PrefetchRequest(BaseModel):
    """Queries whose responses are not written yet: their criteria are generated now."""

    queries: list[str | list[dict[str, Any]]] = Field(min_length=1)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


def create_app(config: CermConfig, settings: ServerSettings, backend: JudgeBackend | None = None) -> FastAPI:
    """The ASGI app; the judge starts in its lifespan, so the server listens only once it is up.

    With ``settings.pool`` the server attaches to that Ray judge pool, whose replicas' own
    configuration governs the judging; ``config`` is then unused. An open ``backend`` is served
    as it is and left open (a process that already holds a judge, such as ``cerm bench``).
    """
    metrics = ServerMetrics()
    state: dict[str, Any] = {"deadline_failures": 0}
    given = backend

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if given is not None:
            backend: JudgeBackend = given
        elif settings.pool:
            backend = await PoolBackend.connect(settings.pool, settings.ray_address)
        else:
            backend = await LocalBackend.open(config)
        state["backend"] = backend
        if backend.config.failed_score is None:
            logger.warning(
                "/get_reward: OpenRLHF needs a number for every sample, so excluded scores are sent as "
                "neutral_score=%g (extra_logs judge_failed=1 marks them)",
                backend.config.fallback_score,
            )
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

    def judge() -> JudgeBackend:
        return state["backend"]

    def authorised(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token")
        if not given:
            raise _Refused(401, "missing bearer token: send 'Authorization: Bearer <token>' (or ?token=<token>)")
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise _Refused(401, "wrong bearer token")

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

    @app.exception_handler(_Refused)
    async def refused(request: Request, error: _Refused) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, error: InvalidInputError) -> JSONResponse:
        return _error(422, f"invalid request: {error}")

    async def judge_with_deadline(query: Query, responses: list[str], indices: list[int]) -> list[Judgement]:
        """Score one group; past the deadline, its responses get the policy value with kind ``timeout``."""
        try:
            result = await asyncio.wait_for(judge().score_group(query, responses), settings.deadline_s)
        except asyncio.TimeoutError:
            logger.warning(
                "request deadline of %gs passed: %d response(s) get the failure policy", settings.deadline_s, len(indices)
            )
            detail = f"request deadline of {settings.deadline_s:g}s passed"
            state["deadline_failures"] += len(indices)
            score = judge().config.failed_score
            return [Judgement(index, score, FailureKind.TIMEOUT, detail, None, None, None) for index in indices]
        for judgement, index in zip(result.judgements, indices, strict=True):
            judgement.index = index
        return result.judgements

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "judge": judge().config.kind, "model": judge().model_id, "template": judge().template_version}

    @app.get("/metrics", dependencies=[Depends(authorised)])
    async def prometheus() -> Response:
        snapshot = await judge().stats()
        if state["deadline_failures"]:  # decided here, not by the judge: counted with its failures
            failures = dict(snapshot.get("failures", {}))
            failures["timeout"] = failures.get("timeout", 0) + state["deadline_failures"]
            snapshot["failures"] = failures
        metrics.judge.snapshot = snapshot
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/get_reward", dependencies=[Depends(authorised)])
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        if len(body.query) > settings.max_responses:
            raise _Refused(413, f"query: {len(body.query)} samples exceed the limit of {settings.max_responses} per request")
        labels = body.labels or [None] * len(body.query)
        groups: dict[str, list[int]] = {}
        samples = []
        for index, (query, prompt, label) in enumerate(zip(body.query, body.prompts, labels, strict=True)):
            sample = to_sample(
                query, prompt, None if label is None else str(label), label_as_reference=settings.label_as_reference
            )
            try:
                render_query(sample.user_query)
            except InvalidInputError:
                raise _Refused(422, f"prompts[{index}]: holds no user query") from None
            samples.append(sample)
            groups.setdefault(sample.user_query, []).append(index)
        scored = await asyncio.gather(
            *(judge_with_deadline(query, [samples[i].response for i in indices], indices) for query, indices in groups.items())
        )
        judgements = sorted((j for group in scored for j in group), key=lambda j: j.index)
        fallback = judge().config.fallback_score
        rewards = [reward_of(j, fallback) for j in judgements]
        return {"rewards": rewards, "scores": rewards, "extra_logs": extra_logs_of(judgements)}

    @app.post("/v1/prefetch", status_code=202, dependencies=[Depends(authorised)])
    async def prefetch(body: PrefetchRequest) -> dict[str, Any]:
        if len(body.queries) > settings.max_responses:
            raise _Refused(413, f"queries: {len(body.queries)} exceed the limit of {settings.max_responses} per request")
        for index, query in enumerate(body.queries):
            try:
                render_query(query)
            except InvalidInputError as error:
                raise _Refused(422, f"queries[{index}]: {error}") from None
        for query in body.queries:
            judge().prefetch(query)
        return {"accepted": len(body.queries)}

    @app.post("/v1/score_group", dependencies=[Depends(authorised)])
    async def score_group(body: ScoreGroupRequest) -> dict[str, Any]:
        if len(body.responses) > settings.max_responses:
            raise _Refused(413, f"responses: {len(body.responses)} exceed the limit of {settings.max_responses} per request")
        render_query(body.query)
        judgements = await judge_with_deadline(body.query, body.responses, list(range(len(body.responses))))
        return {"id": body.id, "model": judge().model_id, "judgements": [j.to_dict() for j in judgements]}

    return app
