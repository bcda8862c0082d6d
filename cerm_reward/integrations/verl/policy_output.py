"""Cleaning a policy rollout into the answer the judge should score."""

from __future__ import annotations

from cerm_reward.integrations.verl.settings import PolicyOutputSettings
from cerm_reward.judges.reasoning import strip_reasoning


def clean_policy_output(text: str, settings: PolicyOutputSettings) -> tuple[str, list[str]]:
    """The answer part of ``text`` and notes on what was removed.

    With ``strip_think`` the reasoning is dropped by the rule OpenRLHF's ``/get_reward``
    shares (:func:`cerm_reward.judges.reasoning.strip_reasoning`).
    """
    if settings.strip_think:
        return strip_reasoning(text, settings.think_open, settings.think_close)
    return text.strip(), []
