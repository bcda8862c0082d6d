"""OpenRLHF's ``POST /get_reward`` on the judge server: ``create_app(..., routes=[reward_routes()])``.

The generic server (:mod:`cerm_reward.serving.http_server`) knows no framework; this module
brings OpenRLHF's remote-reward contract to it: the request body, pulling each sample's user
query and response out of OpenRLHF's texts (:mod:`.contract`), grouping the samples of one
query so they share one criteria generation, and the numeric answer OpenRLHF trains on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, model_validator

from cerm_reward.integrations.openrlhf.contract import Sample, extra_logs_of, reward_of, to_sample
from cerm_reward.judges.queries import InvalidInputError, render_query
from cerm_reward.serving.backend import JudgeBackend
from cerm_reward.serving.http_server import JudgeServer, Refused, Routes

logger = logging.getLogger(__name__)


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


def _warn_when_scores_are_excluded(backend: JudgeBackend) -> None:
    """OpenRLHF cannot skip a sample, so an ``exclude`` policy reaches it as the neutral score: say so once."""
    if backend.config.failed_score is None:
        logger.warning(
            "/get_reward: OpenRLHF needs a number for every sample, so excluded scores are sent as "
            "neutral_score=%g (extra_logs judge_failed=1 marks them)",
            backend.config.fallback_score,
        )


def reward_routes(*, label_as_reference: bool = False) -> Routes:
    """``/get_reward``; with ``label_as_reference`` the OpenRLHF labels are appended to the query as a reference."""

    def routes(server: JudgeServer) -> APIRouter:
        server.on_ready(_warn_when_scores_are_excluded)
        router = APIRouter()

        @router.post("/get_reward")
        async def get_reward(body: RewardRequest) -> dict[str, Any]:
            limit = server.settings.max_responses
            if len(body.query) > limit:
                raise Refused(413, f"query: {len(body.query)} samples exceed the limit of {limit} per request")
            samples = _samples(body, label_as_reference)
            groups: dict[str, list[int]] = {}
            for index, sample in enumerate(samples):
                groups.setdefault(sample.user_query, []).append(index)
            scored = await asyncio.gather(
                *(
                    server.judge_with_deadline(query, [samples[i].response for i in indices], indices)
                    for query, indices in groups.items()
                )
            )
            judgements = sorted((j for group in scored for j in group), key=lambda j: j.index)
            fallback = server.judge().config.fallback_score
            rewards = [reward_of(j, fallback) for j in judgements]
            return {"rewards": rewards, "scores": rewards, "extra_logs": extra_logs_of(judgements)}

        return router

    return routes


def _samples(body: RewardRequest, label_as_reference: bool) -> list[Sample]:
    """One sample per OpenRLHF query; 422 naming the first prompt that holds no user query."""
    labels = body.labels or [None] * len(body.query)
    samples = []
    for index, (query, prompt, label) in enumerate(zip(body.query, body.prompts, labels, strict=True)):
        sample = to_sample(query, prompt, None if label is None else str(label), label_as_reference=label_as_reference)
        try:
            render_query(sample.user_query)
        except InvalidInputError:
            raise Refused(422, f"prompts[{index}]: holds no user query") from None
        samples.append(sample)
    return samples
