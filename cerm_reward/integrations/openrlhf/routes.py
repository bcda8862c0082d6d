"""OpenRLHF's ``POST /get_reward`` on the judge server: ``create_app(..., routes=[reward_routes()])``.

The generic server (:mod:`cerm_reward.serving.http_server`) knows no framework; this module
brings OpenRLHF's remote-reward contract to it: the request body, splitting each sample into its
conversation and response (:mod:`.contract`, in a worker thread and inside the request's
deadline, so an 8 MiB body never holds the event loop), grouping the samples of one
conversation so they share one criteria generation, and the numeric answer OpenRLHF trains on.
A sample that cannot be split gets the failure policy's value with kind ``invalid_input``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import APIRouter
from pydantic import model_validator

from cerm_reward.integrations.openrlhf.chat_format import ChatFormat
from cerm_reward.integrations.openrlhf.contract import INVALID_INPUT, Sample, extra_logs_of, reward_of, to_sample
from cerm_reward.results import Judgement
from cerm_reward.serving.backend import JudgeBackend
from cerm_reward.serving.http_server import JudgeServer, Refused, Routes, TextOnly

logger = logging.getLogger(__name__)


class RewardRequest(TextOnly):
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


def reward_routes(*, label_as_reference: bool = False, chat_format: ChatFormat | None = None) -> Routes:
    """``/get_reward``; ``label_as_reference`` gives the judge OpenRLHF's labels as a reference answer;
    ``chat_format`` is the policy's template (:func:`.chat_format.learn_format`), else the known ones are tried."""

    def routes(server: JudgeServer) -> APIRouter:
        server.on_ready(_warn_when_scores_are_excluded)
        router = APIRouter()

        @router.post("/get_reward")
        async def get_reward(body: RewardRequest) -> dict[str, Any]:
            limit = server.settings.max_responses
            if len(body.query) > limit:
                raise Refused(413, f"query: {len(body.query)} samples exceed the limit of {limit} per request")
            async with server.admitted(len(body.query)):
                return await _judge_samples(server, body, label_as_reference, chat_format)

        return router

    return routes


async def _judge_samples(
    server: JudgeServer, body: RewardRequest, label_as_reference: bool, chat_format: ChatFormat | None
) -> dict[str, Any]:
    deadline = time.monotonic() + server.settings.deadline_s
    indices = list(range(len(body.query)))
    try:
        samples = await asyncio.wait_for(
            asyncio.to_thread(_samples, body, label_as_reference, chat_format), server.settings.deadline_s
        )
    except asyncio.TimeoutError:
        judgements: list[Judgement | None] = list(server.timed_out(indices))
        samples = [Sample([], "") for _ in indices]
    else:
        groups: dict[str, list[int]] = {}
        for index, sample in enumerate(samples):
            if sample.invalid is None:
                groups.setdefault(json.dumps(sample.conversation), []).append(index)
        invalid = [i for i, s in enumerate(samples) if s.invalid is not None]
        if invalid:
            logger.warning("/get_reward: %d sample(s) cannot be split: %s", len(invalid), samples[invalid[0]].invalid)
            server.count_failures(INVALID_INPUT, len(invalid))
        scored = await asyncio.gather(
            *(
                server.judge_with_deadline(
                    samples[members[0]].conversation,
                    [samples[i].response for i in members],
                    members,
                    max(deadline - time.monotonic(), 0.001),
                )
                for members in groups.values()
            )
        )
        judgements = [None] * len(samples)
        for judgement in (j for group in scored for j in group):
            judgements[judgement.index] = judgement
    fallback = server.judge().config.fallback_score
    rewards = [fallback if j is None else reward_of(j, fallback) for j in judgements]
    return {"rewards": rewards, "scores": rewards, "extra_logs": extra_logs_of(judgements, samples)}


def _samples(body: RewardRequest, label_as_reference: bool, chat_format: ChatFormat | None) -> list[Sample]:
    """One sample per OpenRLHF query (its ``invalid`` says why it cannot be judged)."""
    labels = body.labels or [None] * len(body.query)
    return [
        to_sample(
            query,
            prompt,
            None if label is None else str(label),
            label_as_reference=label_as_reference,
            chat_format=chat_format,
        )
        for query, prompt, label in zip(body.query, body.prompts, labels, strict=True)
    ]
