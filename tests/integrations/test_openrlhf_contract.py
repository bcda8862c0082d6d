"""OpenRLHF's remote-reward contract: conversations and responses out of its texts, numeric logs.

The prompts are rendered by transformers' own chat-template renderer with templates written in
the layout of Qwen3 (thinking), Llama 3 / 3.1, Gemma and Mistral, and read back both with the
format learned from the template (``--policy-tokenizer``) and with the built-in known formats.
"""

import math
import time

import pytest

from cerm_reward.integrations.openrlhf.chat_format import ChatFormat, FormatMismatch, learn_format
from cerm_reward.integrations.openrlhf.contract import (
    EXTRA_LOG_KEYS,
    Sample,
    extra_logs_of,
    strip_end_markers,
    to_sample,
)
from cerm_reward.results import FailureKind, Judgement

QWEN3 = (
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' + m.content.split('</think>')[-1].lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
LLAMA3 = (
    "{{- '<|begin_of_text|>' }}{%- for m in messages %}"
    "{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
LLAMA31 = (  # writes a system turn of its own, with the knowledge cutoff, and puts a given system text after it
    "{{- '<|begin_of_text|>' }}{%- if messages[0].role == 'system' %}{%- set system = messages[0].content | trim %}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set system = '' %}{%- set rest = messages %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\n"
    "Today Date: 26 Jul 2024\\n\\n' + system + '<|eot_id|>' }}"
    "{%- for m in rest %}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
GEMMA = (
    "{{- '<bos>' }}{%- if messages[0].role == 'system' %}{%- set first = messages[0].content + '\\n\\n' %}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set first = '' %}{%- set rest = messages %}{%- endif %}"
    "{%- for m in rest %}{%- set role = 'model' if m.role == 'assistant' else m.role %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + m.content | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)
MISTRAL = (
    "{{- '<s>' }}{%- for m in messages %}"
    "{%- if m.role == 'system' %}{{- raise_exception('Mistral templates take no system message') }}"
    "{%- elif m.role == 'user' %}{{- '[INST] ' + m.content + ' [/INST]' }}{%- else %}{{- m.content + '</s>' }}{%- endif %}"
    "{%- endfor %}"
)
TEMPLATES = {"qwen3": QWEN3, "llama3": LLAMA3, "llama3.1": LLAMA31, "gemma": GEMMA, "mistral": MISTRAL}
END = {"qwen3": "<|im_end|>", "llama3": "<|eot_id|>", "llama3.1": "<|eot_id|>", "gemma": "<end_of_turn>", "mistral": "</s>"}
CHAT = [
    {"role": "user", "content": "Is 91 prime?"},
    {"role": "assistant", "content": "No: 7 x 13."},
    {"role": "user", "content": "And 97?"},
]
SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from cerm_reward.engines.embedded import embedded_checkpoint

    return AutoTokenizer.from_pretrained(str(embedded_checkpoint()))


def renderer(tokenizer, template: str, **kwargs):
    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )

    return render


def expected(name: str, chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """What the judge should get: Gemma folds the system text into the first user turn."""
    if name == "gemma" and chat[0]["role"] == "system":
        return [{"role": "user", "content": chat[0]["content"] + "\n\n" + chat[1]["content"]}, *chat[2:]]
    return chat


@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("learned", [True, False], ids=["policy-template", "known-formats"])
def test_whole_conversations_come_back_as_chat_messages(tokenizer, name, learned):
    render = renderer(tokenizer, TEMPLATES[name])
    chat_format = learn_format(render, name) if learned else None
    chats = [CHAT] if name == "mistral" else [CHAT, [SYSTEM, *CHAT]]
    for chat in chats:
        prompt = render(chat, True)
        sample = to_sample(prompt + "97 is prime." + END[name], prompt, None, label_as_reference=False, chat_format=chat_format)
        assert sample.invalid is None, sample.invalid
        assert sample.conversation == expected(name, chat)
        assert sample.response == "97 is prime."


def test_qwen3_reasoning_is_dropped_as_on_the_verl_path(tokenizer):
    thinking = renderer(tokenizer, QWEN3)
    policy = learn_format(thinking, "qwen3")
    prompt = thinking(CHAT, True)
    answered = to_sample(prompt + "<think>\n97 has no divisor.\n</think>\n\nPrime.<|im_end|>", prompt, None,
                         label_as_reference=False, chat_format=policy)  # fmt: skip
    assert (answered.response, answered.notes) == ("Prime.", ["think_stripped"])
    cut_off = to_sample(prompt + "<think>\n97 has no", prompt, None, label_as_reference=False, chat_format=policy)
    assert (cut_off.response, cut_off.notes) == ("", ["think_unclosed"])
    # enable_thinking=False: the template pre-fills an empty reasoning block after the generation prompt
    quiet = renderer(tokenizer, QWEN3, enable_thinking=False)
    prompt = quiet(CHAT, True)
    for chat_format in (learn_format(quiet, "qwen3"), None):
        sample = to_sample(prompt + "Prime.<|im_end|>", prompt, None, label_as_reference=False, chat_format=chat_format)
        assert (sample.conversation, sample.response) == (CHAT, "Prime.") and "think_unclosed" not in sample.notes


def test_a_sample_that_cannot_be_split_is_invalid_never_judged_whole(tokenizer):
    chatml = learn_format(renderer(tokenizer, QWEN3), "qwen3")
    prompt = renderer(tokenizer, QWEN3)(CHAT, True)
    assert to_sample("something else entirely", prompt, None, label_as_reference=False).invalid
    broken = "<|im_start|>user\nNever closed <|im_start|>assistant\n"
    assert to_sample(broken + "x", broken, None, label_as_reference=False, chat_format=chatml).invalid
    assert to_sample(broken + "x", broken, None, label_as_reference=False).invalid  # chat markup no known format reads
    assert to_sample("", "", None, label_as_reference=False).invalid
    no_generation_prompt = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
    assert to_sample(no_generation_prompt + "x", no_generation_prompt, None, label_as_reference=False).invalid
    plain = to_sample("  plain prompt \nanswer", "  plain prompt \n", None, label_as_reference=False)
    assert (plain.conversation, plain.response) == ([{"role": "user", "content": "plain prompt"}], "answer")


def test_a_template_that_rewrites_earlier_turns_cannot_be_learned(tokenizer):
    reorders = "{%- for m in messages | reverse %}{{- m.role + ':' + m.content + '\\n' }}{%- endfor %}"
    with pytest.raises(ValueError, match="different prefix"):
        learn_format(renderer(tokenizer, reorders))


def test_label_as_reference_is_opt_in_and_goes_to_the_last_user_turn():
    prompt = "<|im_start|>user\nIs 91 prime?<|im_end|>\n<|im_start|>assistant\n"
    assert to_sample(prompt + "x", prompt, "No", label_as_reference=False).conversation[-1]["content"] == "Is 91 prime?"
    with_reference = to_sample(prompt + "x", prompt, "No", label_as_reference=True).conversation[-1]["content"]
    assert with_reference.startswith("Is 91 prime?\n\n[Reference Answer]\nNo\n")


EIGHT_MIB = 8 * 2**20


@pytest.mark.parametrize(
    "prompt",
    [
        "<|im_start|>user\n" * (EIGHT_MIB // 17),  # unmatched start tags: the old regex rescanned from each
        "<|start_header_id|>user<|end_header_id|>\n\n" * (EIGHT_MIB // 41),
        "<|im_start|>user\nq<|im_end|>\n" * (EIGHT_MIB // 30) + "<|im_start|>assistant\n",  # 280k turns
        "[INST] " * (EIGHT_MIB // 7),
    ],
    ids=["chatml-open-tags", "llama3-open-tags", "many-turns", "mistral-open-tags"],
)
def test_an_8_mib_prompt_splits_in_under_a_second(prompt):
    started = time.perf_counter()
    to_sample(prompt + "answer", prompt, None, label_as_reference=False)
    assert time.perf_counter() - started < 1.0


def test_end_markers_are_stripped_with_bounded_work():
    assert strip_end_markers("a <|im_end|>\n<|endoftext|>  ") == "a" and strip_end_markers("</s>") == ""
    assert strip_end_markers("x" * 70000 + "</s>" * 16000) == "x" * 70000
    prompt = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    started = time.perf_counter()
    flood = to_sample(prompt + "answer" + "</s> <|im_end|>\n" * (EIGHT_MIB // 16), prompt, None, label_as_reference=False)
    assert time.perf_counter() - started < 1.0
    assert flood.invalid and "end-of-turn tokens" in flood.invalid


def test_a_format_names_where_a_prompt_breaks():
    chatml = ChatFormat("chatml", {}, "<|im_start|>assistant\n")
    with pytest.raises(FormatMismatch, match="no turn starts at offset 0"):
        chatml.parse("junk<|im_start|>assistant\n")


def test_extra_logs_have_a_fixed_numeric_key_set():
    ok = Judgement(0, 7.0, None, None, "c", "crit", "eval", flags=["repaired"])
    failed = Judgement(1, None, FailureKind.TIMEOUT, "late", None, None, None)
    samples = [Sample([], "a"), Sample([], "", ["think_unclosed"]), Sample([], "", invalid="no split")]
    logs = extra_logs_of([ok, failed, None], samples)
    assert tuple(logs) == EXTRA_LOG_KEYS
    assert all(len(values) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in values) for values in logs.values())
    assert logs["judge_failed"] == [0.0, 1.0, 1.0] and logs["judge_repaired"] == [1.0, 0.0, 0.0]
    assert logs["judge_failure_timeout"] == [0.0, 1.0, 0.0] and logs["judge_failure_invalid_input"] == [0.0, 0.0, 1.0]
    assert logs["judge_think_unclosed"] == [0.0, 1.0, 0.0]
    assert tuple(extra_logs_of([], [])) == EXTRA_LOG_KEYS
