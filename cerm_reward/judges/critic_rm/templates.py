"""The critique and meta-judge prompts of Critic-RM.

The paper publishes no prompts, so ``critic-v1`` is ours (files next to this module): a
critique prompt that ends with a ``\\boxed{}`` 0-10 score (read by the CE-RM parser, so the
consistency filter can compare chosen and rejected), a summarise prompt and a rank prompt for
the meta-judge. The score-repair turn is CE-RM's (``cerm-v1/repair.txt``), reused as is.
Slots are filled in one pass, so a ``{response}`` written inside a query stays literal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from cerm_reward.errors import ConfigError
from cerm_reward.judges.templates import load_template

DEFAULT_CRITIC_TEMPLATE = "critic-v1"
_SLOT = re.compile(r"\{(query|response|critiques)\}")


def fill(template: str, **values: str) -> str:
    """Replace ``{query}``, ``{response}`` and ``{critiques}`` in a single pass."""
    return _SLOT.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def number_critiques(critiques: Sequence[str]) -> str:
    """The critiques as numbered blocks, the way the meta-judge prompts refer to them."""
    return "\n\n".join(
        f"[Start of Review {number}]\n{text.strip()}\n[End of Review {number}]" for number, text in enumerate(critiques, 1)
    )


@dataclass(frozen=True)
class CriticTemplate:
    version: str
    critique: str
    summarise: str
    rank: str
    repair: str

    def critique_messages(self, query: str, response: str) -> list[dict[str, str]]:
        """The critic's one user turn; the head reads this turn plus the critique as the assistant's reply."""
        return [{"role": "user", "content": fill(self.critique, query=query, response=response)}]

    def summarise_messages(self, query: str, response: str, critiques: Sequence[str]) -> list[dict[str, str]]:
        content = fill(self.summarise, query=query, response=response, critiques=number_critiques(critiques))
        return [{"role": "user", "content": content}]

    def rank_messages(self, query: str, response: str, critiques: Sequence[str]) -> list[dict[str, str]]:
        content = fill(self.rank, query=query, response=response, critiques=number_critiques(critiques))
        return [{"role": "user", "content": content}]


def load_critic_template(version: str = DEFAULT_CRITIC_TEMPLATE) -> CriticTemplate:
    folder = resources.files(__package__).joinpath("templates", version)
    if not folder.is_dir():
        raise ConfigError(f"unknown critic template {version!r}")
    read = lambda part: folder.joinpath(f"{part}.txt").read_text(encoding="utf-8")  # noqa: E731
    return CriticTemplate(version, read("critique"), read("summarise"), read("rank"), load_template("cerm-v1").repair)
