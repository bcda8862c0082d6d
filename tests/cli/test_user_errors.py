"""A bad configuration or data file ends a command with exit code 2 and one `error:` line naming the
file and field, never a traceback: the real CLI process, before any engine starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cerm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cerm_reward.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=180)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def jsonl(path: Path, *rows: dict) -> str:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "bad_judge": write(tmp_path / "judge.yaml", "judge:\n  evaluation: {max_tokens: 0}\n"),
        "bad_build": write(tmp_path / "build.yaml", "critiques_per_response: 0\n"),
        "bases": jsonl(tmp_path / "bases.jsonl", {"prompt": "Write notes.", "response": "Notes. " * 50}),
        "bases_without_response": jsonl(tmp_path / "short.jsonl", {"prompt": "Write notes."}),
        "facts": jsonl(tmp_path / "facts.jsonl", {"true": "Water boils at 100 C.", "false": "Water boils at 60 C."}),
        "pairs": jsonl(tmp_path / "pairs.jsonl", {"prompt": "Hi?", "chosen": "Hello!", "rejected": "No."}),
        "pairs_without_rejected": jsonl(tmp_path / "half.jsonl", {"prompt": "Hi?", "chosen": "Hello!"}),
        "not_json": write(tmp_path / "pairs.json", "[{'prompt': 'single quotes'}]"),
        "out": str(tmp_path / "out"),
    }


CASES = {
    "needle build, bad judge config": (
        ["needle", "build", "{bases}", "-o", "{out}", "--facts", "{facts}", "-c", "{bad_judge}"],
        "{bad_judge}: judge.evaluation.max_tokens: Input should be greater than 0",
    ),
    "needle build, a base without its response": (
        ["needle", "build", "{bases_without_response}", "-o", "{out}", "--facts", "{facts}"],
        "{bases_without_response}[0]: missing field 'response'",
    ),
    "critic build-data, bad build config": (
        ["critic", "build-data", "{pairs}", "-o", "{out}", "--build-config", "{bad_build}"],
        "{bad_build}: critiques_per_response: Input should be greater than or equal to 1",
    ),
    "critic build-data, bad engine config": (
        ["critic", "build-data", "{pairs}", "-o", "{out}", "-c", "{bad_judge}"],
        "{bad_judge}: judge.evaluation.max_tokens",
    ),
    "critic build-data, a pair without its rejected answer": (
        ["critic", "build-data", "{pairs_without_rejected}", "-o", "{out}"],
        "{pairs_without_rejected}[0]: missing field 'rejected'",
    ),
    "train distill-sft, bad teacher config": (
        ["train", "distill-sft", "{pairs}", "-o", "{out}", "-c", "{bad_judge}"],
        "{bad_judge}: judge.evaluation.max_tokens: Input should be greater than 0",
    ),
    "train distill-sft, a file that is not JSON": (
        ["train", "distill-sft", "{not_json}", "-o", "{out}"],
        "{not_json}: not JSON",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_or_data_file_is_one_line_and_exit_code_2(case, files):
    arguments, expected = CASES[case]
    done = cerm(*(argument.format(**files) for argument in arguments))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and expected.format(**files) in line


def test_a_format_outside_the_loaders_is_typers_choice_error(files):
    done = cerm("critic", "build-data", files["pairs"], "-o", files["out"], "--format", "csv")
    assert done.returncode == 2 and "Invalid value for '--format'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["score", "serve", "eval"])
def test_a_budget_that_cannot_fit_stops_before_any_engine_loads(command, tmp_path):
    """The embedded judge has 8192 tokens of context: an 8192-token evaluation is refused in
    seconds, naming the flag, instead of after a minute of engine start-up."""
    inputs = {
        "score": ["score", str(REPO / "examples" / "rollouts.jsonl"), "-o", str(tmp_path / "out.jsonl")],
        "serve": ["serve", "--port", "1"],
        "eval": ["eval", jsonl(tmp_path / "pairs.jsonl", {"prompt": "Hi?", "chosen": "Hello!", "rejected": "No."}),
                 "--format", "pairs", "-o", str(tmp_path / "run")],
    }[command]  # fmt: skip
    done = cerm(*inputs, "--eval-max-tokens", "8192")
    assert done.returncode == 2, done.stderr
    assert "judge.evaluation.max_tokens=8192" in done.stderr and "--eval-max-tokens" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.jsonl").exists()


def test_a_judge_server_that_cannot_be_reached_is_a_one_line_error(tmp_path):
    """A wrong --base-url is the user's to fix: exit 2 naming the address, no traceback."""
    rollouts, out = str(REPO / "examples" / "rollouts.jsonl"), str(tmp_path / "out.jsonl")
    done = cerm("score", rollouts, "-o", out, "--engine", "http", "--base-url", "127.0.0.1:9")
    assert done.returncode == 2, done.stderr
    assert "cannot list models at 127.0.0.1:9" in done.stderr and "Traceback" not in done.stderr
