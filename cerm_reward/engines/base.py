"""The one protocol every engine speaks: async chat generation.

The judge only knows this module. An engine takes chat messages, returns n
completions with their finish reasons and token usage, and can be asked to
constrain the output with a regex (vLLM structured outputs) for the repair turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cerm_reward.config import SamplingConfig
from cerm_reward.errors import CermError
from cerm_reward.results import FailureKind, TokenUsage

Messages = list[dict[str, str]]


class EngineError(RuntimeError):
    """The engine could not produce completions (counted as ``engine_error``)."""


class EngineUnavailableError(EngineError, CermError):
    """The engine the configuration names cannot be reached, or does not serve the model:
    the address or model name is the user's to fix (the CLI reports it as one line, exit 2)."""


class PromptTooLongError(EngineError):
    """The prompt does not fit the model's context."""


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    regex: str | None = None
    """Structured-output constraint: the completion must match this regex."""
    ignore_eos: bool = False
    """Generate exactly ``max_tokens`` tokens (benchmarks: lengths that repeat from run to run)."""

    @classmethod
    def of(cls, sampling: SamplingConfig, **overrides: Any) -> GenerationParams:
        """The parameters of a configured turn, with per-call ``overrides`` (``n``, a re-sample's temperature)."""
        params = cls(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            ignore_eos=sampling.ignore_eos,
        )
        return dataclasses.replace(params, **overrides)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    """``stop`` when the model ended its turn, ``length`` at the token budget."""
    completion_tokens: int

    @property
    def finished(self) -> bool:
        return self.finish_reason != "length"


@dataclass(frozen=True)
class ChatResult:
    completions: list[Completion]
    prompt_tokens: int
    cached_prompt_tokens: int = 0
    """Prompt tokens served by the engine's prefix cache (0 when it does not say)."""

    @property
    def usage(self) -> TokenUsage:
        """Tokens of the whole call, all n completions included."""
        return TokenUsage(self.prompt_tokens, sum(c.completion_tokens for c in self.completions), self.cached_prompt_tokens)


@runtime_checkable
class Engine(Protocol):
    @property
    def model_id(self) -> str:
        """Identifies the judge model (part of the criteria cache key)."""

    @property
    def max_model_len(self) -> int | None:
        """Context length in tokens, or None when unknown."""

    async def chat(self, messages: Messages, params: GenerationParams) -> ChatResult:
        """Generate ``params.n`` completions of the next assistant turn."""

    async def count_chat_tokens(self, messages: Messages) -> int | None:
        """Prompt tokens of ``messages`` with the chat template, or None when the engine cannot tell."""

    async def count_text_tokens(self, text: str) -> int | None:
        """Tokens of a bare text, or None when the engine cannot tokenize."""

    async def truncate_text(self, text: str, max_tokens: int) -> str | None:
        """``text`` cut to its first ``max_tokens`` tokens, or None when the engine cannot tokenize."""

    async def reset_prefix_cache(self) -> bool:
        """Empty the engine's prefix cache (cold-cache benchmarks); False when the engine cannot."""

    async def aclose(self) -> None:
        """Release the engine (processes, connections)."""


@runtime_checkable
class Mortal(Protocol):
    """An engine whose own processes can die under it (the in-process vLLM engine core)."""

    def failure(self) -> str | None:
        """Why the engine can no longer answer (its process died), or None while it can."""


class CallFailed(Exception):
    """An engine call that gave no completions, as the failure kind a judge counts."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


async def chat_within(engine: Engine, messages: Messages, params: GenerationParams, timeout_s: float) -> ChatResult:
    """``engine.chat`` under a deadline; every way it can fail becomes a :class:`CallFailed`.

    Judges never hang on an engine and never see a raw exception: a late call is ``timeout``,
    an over-long prompt ``prompt_too_long``, anything else ``engine_error`` (detail cut to
    300 characters so a server's error page does not flood a results file).
    """
    try:
        return await asyncio.wait_for(engine.chat(messages, params), timeout_s)
    except asyncio.TimeoutError:
        raise CallFailed(FailureKind.TIMEOUT, f"engine call exceeded {timeout_s:g}s") from None
    except PromptTooLongError as error:
        raise CallFailed(FailureKind.PROMPT_TOO_LONG, str(error)[:300]) from None
    except Exception as error:  # noqa: BLE001 - any engine failure becomes a counted kind
        raise CallFailed(FailureKind.ENGINE_ERROR, f"{type(error).__name__}: {error}"[:300]) from None
