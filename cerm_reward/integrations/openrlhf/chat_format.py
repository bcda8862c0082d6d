"""Reading a chat-templated prompt back into chat messages, in linear time.

OpenRLHF sends each prompt as the policy's chat template rendered it. The judge needs the
conversation, not the markup: a :class:`ChatFormat` holds the text a template puts around each
role's turns, and :meth:`ChatFormat.parse` walks a prompt once, turn after turn, with one
forward ``str.find`` per turn (never a regex that rescans from every unmatched start tag, which
made one 136 KB request hold the server for 11 s).

A format is learned from the policy's own template by rendering probe chats and diffing them
(:func:`learn_format`, the way :mod:`cerm_reward.training.cerm.chat_turns` finds the turns it
injects), or taken from :data:`KNOWN_FORMATS` (ChatML/Qwen, Llama 3, Gemma, Mistral) when the
server was not given the policy's tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict[str, str]
Render = Callable[[list[Message], bool], str]
"""``render(messages, add_generation_prompt)``: the policy's chat template as text."""


MAX_TURNS = 1024
"""More turns than this is not a conversation a policy was prompted with: the prompt is refused
(``invalid_input``) instead of walking hundreds of thousands of turns of a hostile body."""


class FormatMismatch(ValueError):
    """The prompt is not laid out the way the format says; the message says where."""


@dataclass(frozen=True)
class Turn:
    """The text a template writes before and after one turn's content."""

    start: str
    end: str


@dataclass(frozen=True)
class ChatFormat:
    name: str
    turns: dict[str, Turn]
    """Role -> markers; a role missing here (often ``system``) is folded into a user turn by the template."""
    generation_prompt: str
    """What the template appends for the assistant's next turn (OpenRLHF prompts end with it)."""
    preamble: str = ""
    """Text before the first turn (a BOS token)."""
    boilerplate: frozenset[str] = field(default_factory=frozenset)
    """System contents the template writes by itself (Llama 3.1's knowledge-cutoff date), dropped when parsed."""
    dated_system: bool = False
    """Llama 3.1+ without the policy's template: the system turn opens with ``Cutting Knowledge Date``
    and ``Today Date`` lines the template wrote (the date varies, so they cannot be learned as text)."""

    def parse(self, prompt: str) -> tuple[list[Message], str]:
        """The messages of ``prompt`` and any text after its generation prompt (a prefilled ``<think>``).

        Raises :class:`FormatMismatch` when the prompt does not follow the format. Linear in
        ``len(prompt)``: every turn is found by one forward search from where the last one ended.
        """
        cut = prompt.rfind(self.generation_prompt) if self.generation_prompt else len(prompt)
        if cut < 0:
            raise FormatMismatch(f"no {self.name} generation prompt {self.generation_prompt!r}")
        body, tail = prompt[:cut], prompt[cut + len(self.generation_prompt) :]
        if any(turn.start and turn.start in tail for turn in self.turns.values()):
            raise FormatMismatch(f"{self.name}: the prompt does not end with a generation prompt")
        position = len(self.preamble) if body.startswith(self.preamble) else 0
        messages: list[Message] = []
        starts = sorted(((turn.start, role) for role, turn in self.turns.items() if turn.start), key=lambda s: -len(s[0]))
        while position < len(body):
            if len(messages) >= MAX_TURNS:
                raise FormatMismatch(f"{self.name}: more than {MAX_TURNS} turns")
            role = next((role for start, role in starts if body.startswith(start, position)), None)
            if role is None and self.turns.get("assistant", Turn("x", "")).start == "" and messages:
                role = "assistant"  # Mistral: an assistant turn has no opening marker
            if role is None:
                if body[position:].strip():
                    raise FormatMismatch(f"{self.name}: no turn starts at offset {position}")
                break
            turn = self.turns[role]
            begin = position + len(turn.start)
            end = body.find(turn.end, begin) if turn.end else len(body)
            if end < 0:
                raise FormatMismatch(f"{self.name}: the {role} turn at offset {position} never ends")
            content = body[begin:end]
            if role == "system" and self.dated_system and content.startswith("Cutting Knowledge Date:"):
                content = content.split("\n\n", 1)[1] if "\n\n" in content else ""
            if not (role == "system" and (content in self.boilerplate or (self.dated_system and not content))):
                messages.append({"role": role, "content": content})
            position = end + len(turn.end)
        if not any(m["role"] == "user" and m["content"].strip() for m in messages):
            raise FormatMismatch(f"{self.name}: the prompt holds no user turn")
        return messages, tail


_U1, _A1, _U2, _S = "\ue000u1\ue000", "\ue000a1\ue000", "\ue000u2\ue000", "\ue000s\ue000"


def _around(text: str, probe: str, what: str) -> tuple[str, str]:
    at = text.find(probe)
    if at < 0:
        raise ValueError(f"the chat template drops the {what}'s content; cannot learn its turns")
    return text[:at], text[at + len(probe) :]


def learn_format(render: Render, name: str = "policy") -> ChatFormat:
    """The policy template's turn markers, found by rendering probe chats and diffing them.

    ``[user]``, ``[user, assistant]`` and ``[user, assistant, user]`` differ by one turn each, so
    each difference is that turn's start marker, its content and its end marker. A template
    that renders a longer chat with a different prefix cannot be read back turn by turn.
    """
    one = render([{"role": "user", "content": _U1}], False)
    two = render([{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}], False)
    three = render(
        [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}, {"role": "user", "content": _U2}], False
    )
    prompt = render([{"role": "user", "content": _U1}], True)
    if not (two.startswith(one) and three.startswith(two) and prompt.startswith(one)):
        raise ValueError("the chat template renders a longer chat with a different prefix; cannot learn its turns")
    user = Turn(*_around(three[len(two) :], _U2, "user"))
    assistant = Turn(*_around(two[len(one) :], _A1, "assistant"))
    before_first, _ = _around(one, _U1, "user")
    if not before_first.endswith(user.start):
        raise ValueError("the first user turn is written differently from later ones; cannot learn the turns")
    head = before_first[: len(before_first) - len(user.start)]
    turns = {"user": user, "assistant": assistant}
    preamble, boilerplate = head, frozenset[str]()
    system = _learn_system(render, head, user)
    if system is not None:
        turn, preamble, default = system
        turns["system"] = turn
        boilerplate = frozenset({default} if default is not None else ())
    return ChatFormat(name, turns, prompt[len(one) :], preamble, boilerplate)


def _learn_system(render: Render, head: str, user: Turn) -> tuple[Turn, str, str | None] | None:
    """The system turn's markers, the preamble and the default system content the template writes.

    None where the template folds the system text into a user turn (Gemma, Mistral) or refuses it.
    ``head`` is what a chat without a system message renders before its first user turn: a BOS
    token, and possibly a system turn the template writes by itself (whose content is boilerplate).
    """
    try:
        text = render([{"role": "system", "content": _S}, {"role": "user", "content": _U1}], False)
    except Exception:  # noqa: BLE001 - a template may refuse a system turn (Jinja raises)
        return None
    before, after = _around(text, _S, "system")
    between, _ = _around(after, _U1, "user")
    if not between.endswith(user.start):
        return None  # the system text sits inside the first user turn
    end = between[: len(between) - len(user.start)]
    for cut in range(len(before)):  # a default system turn in head: preamble + start + content + end
        preamble, start = before[:cut], before[cut:]
        if head.startswith(preamble + start) and head.endswith(end) and len(head) >= len(before) + len(end):
            return Turn(start, end), preamble, head[len(before) : len(head) - len(end)]
    preamble = _common_prefix(head, before)
    start = before[len(preamble) :]
    return (Turn(start, end), preamble, None) if start and preamble == head else None


def _common_prefix(a: str, b: str) -> str:
    return os.path.commonprefix([a, b])


KNOWN_FORMATS = (
    ChatFormat(
        "chatml",
        {
            "system": Turn("<|im_start|>system\n", "<|im_end|>\n"),
            "user": Turn("<|im_start|>user\n", "<|im_end|>\n"),
            "assistant": Turn("<|im_start|>assistant\n", "<|im_end|>\n"),
        },
        "<|im_start|>assistant\n",
    ),
    ChatFormat(
        "llama3",
        {role: Turn(f"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>") for role in ("system", "user", "assistant")},
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|begin_of_text|>",
        dated_system=True,
    ),
    ChatFormat(
        "gemma",
        {
            "user": Turn("<start_of_turn>user\n", "<end_of_turn>\n"),
            "assistant": Turn("<start_of_turn>model\n", "<end_of_turn>\n"),
        },
        "<start_of_turn>model\n",
        "<bos>",
    ),
    ChatFormat(
        "mistral",
        {"user": Turn("[INST] ", " [/INST]"), "assistant": Turn("", "</s>")},
        "",
        "<s>",
    ),
)
"""Formats tried, in order, when the server has no policy tokenizer; the first that parses wins."""


def parse_known(prompt: str) -> tuple[list[Message], str, str] | None:
    """Messages, tail and format name of ``prompt`` under the first known format that reads it, else None."""
    for chat_format in KNOWN_FORMATS:
        if chat_format.turns["user"].start not in prompt:
            continue
        try:
            messages, tail = chat_format.parse(prompt)
        except FormatMismatch:
            continue
        return messages, tail, chat_format.name
    return None
