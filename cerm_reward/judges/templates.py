"""Versioned prompt templates of the CE-RM judge.

CE-RM-4B was trained on its published prompts, so the built-in ``cerm-v1``
reproduces them byte for byte (the files next to this module, trailing newline
included). Slots are filled by plain substitution, not ``str.format``: queries,
responses and the prompt itself (``$\\boxed{}$``) contain braces.

A custom template is a YAML file with ``version``, ``criteria`` (holding
``{query}``), ``evaluation`` (holding ``{response}``) and optionally ``repair``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from cerm_reward.errors import ConfigError

QUERY_SLOT = "{query}"
RESPONSE_SLOT = "{response}"
_BUILTIN_DIR = "templates"


@dataclass(frozen=True)
class JudgeTemplate:
    """The three prompts of one template version."""

    version: str
    criteria: str
    evaluation: str
    repair: str

    def __post_init__(self) -> None:
        if self.criteria.count(QUERY_SLOT) != 1:
            raise ConfigError(f"template {self.version!r}: the criteria prompt needs exactly one {QUERY_SLOT}")
        if self.evaluation.count(RESPONSE_SLOT) != 1:
            raise ConfigError(f"template {self.version!r}: the evaluation prompt needs exactly one {RESPONSE_SLOT}")

    def criteria_prompt(self, query: str) -> str:
        return self.criteria.replace(QUERY_SLOT, query)

    def evaluation_prompt(self, response: str) -> str:
        return self.evaluation.replace(RESPONSE_SLOT, response)

    def criteria_messages(self, query: str) -> list[dict[str, str]]:
        """The criteria turn: one user message."""
        return [{"role": "user", "content": self.criteria_prompt(query)}]

    def evaluation_messages(self, query: str, criteria_text: str, response: str) -> list[dict[str, str]]:
        """The evaluation turn's 3-message layout; the criteria are replayed whole."""
        return [
            {"role": "user", "content": self.criteria_prompt(query)},
            {"role": "assistant", "content": criteria_text},
            {"role": "user", "content": self.evaluation_prompt(response)},
        ]


def builtin_versions() -> list[str]:
    root = resources.files(__package__).joinpath(_BUILTIN_DIR)
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def load_template(name_or_path: str) -> JudgeTemplate:
    """A built-in version by name (``cerm-v1``) or a YAML template file by path."""
    if name_or_path in builtin_versions():
        folder = resources.files(__package__).joinpath(_BUILTIN_DIR, name_or_path)
        read = lambda part: folder.joinpath(f"{part}.txt").read_text(encoding="utf-8")  # noqa: E731
        return JudgeTemplate(name_or_path, read("criteria"), read("evaluation"), read("repair"))
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"unknown template {name_or_path!r}: not a built-in version ({', '.join(builtin_versions())}) nor a file"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"version", "criteria", "evaluation"} <= data.keys():
        raise ConfigError(f"{path}: a template file needs the keys 'version', 'criteria' and 'evaluation'")
    repair = data.get("repair") or load_template("cerm-v1").repair
    return JudgeTemplate(str(data["version"]), data["criteria"], data["evaluation"], repair)
