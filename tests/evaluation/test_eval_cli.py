"""`cerm eval` and `cerm needle` end to end: the real CLI process, the real `vllm serve` of the
embedded judge, the shared LLMBar and RM-Bench data, a kill and a resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.evaluation.helpers import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]


def cerm(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cerm_reward.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=timeout, **kwargs)


def over_http(url: str) -> list[str]:
    """Short budgets (the point is the harness on a real engine, not the weak judge's accuracy); the
    repair turn gives most truncated evaluations a score, so the cache has something to hold."""
    return ["--engine", "http", "--base-url", url, "--criteria-max-tokens", "32", "--eval-max-tokens", "24", "--repair"]


def stored(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def report_of(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def assert_failures_are_counted(rows: list[dict], report: dict) -> None:
    """Every missing score names its failure, and the report counts the failed items."""
    failed_items = 0
    for row in rows:
        assert all(s["failure"] is not None for s in row["scores"] if s["score"] is None)
        failed_items += any(s["failure"] is not None for s in row["scores"])
    assert report["benchmarks"][0]["n_failed"] == failed_items


LIMIT = 6
"""LLMBar pairs in the resume test: more than the 5 files it takes them from round-robin, few enough to be quick."""


@pytest.mark.server
def test_eval_llmbar_resumes_after_a_kill_and_a_rerun_hits_the_cache(tmp_path, vllm_server):
    run, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    args = ["eval", str(SHARED_DATA / "llmbar"), "--format", "llmbar", "--limit", str(LIMIT)]
    args += ["--cache", str(cache), "--no-plots", *over_http(vllm_server)]
    process = subprocess.Popen(  # one item at a time, so that the kill comes between items
        [sys.executable, "-m", "cerm_reward.cli", *args, "--concurrency", "1", "-o", str(run)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = run / "results.jsonl"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = results.read_text()
    assert 2 <= before.count("\n") < LIMIT
    with results.open("a") as handle:
        handle.write('{"id": "Natural-')  # a line cut by the kill

    resumed = cerm(*args, "-o", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert results.read_text().startswith(before)  # nothing finished is lost or judged again
    rows = stored(run)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == LIMIT  # nothing duplicated, nothing missing
    report = report_of(run)
    assert report["meta"]["resumed"] == before.count("\n") and report["meta"]["scored_now"] == LIMIT - before.count("\n")
    assert report["benchmarks"][0]["benchmark"] == "llmbar" and report["benchmarks"][0]["n"] == LIMIT
    assert {s["name"] for s in report["benchmarks"][0]["subsets"]} == {
        "Adversarial_GPTInst",
        "Adversarial_GPTOut",
        "Adversarial_Manual",
        "Adversarial_Neighbor",
        "Natural",
    }  # the limit is taken round-robin over the five files
    assert_failures_are_counted(rows, report)
    assert "overall" in resumed.stdout and "resumed from the store" in resumed.stdout

    again = cerm(*args, "-o", str(tmp_path / "again"))  # same texts, same judge: every score from the cache
    assert again.returncode == 0, again.stderr
    cached = report_of(tmp_path / "again")
    scored_before = sum(1 for row in rows for s in row["scores"] if s["failure"] is None)
    assert scored_before > 0 and cached["meta"]["cache_hits"] == scored_before  # failures are judged again, never cached
    first = {row["id"]: row["scores"] for row in rows}
    for row in stored(tmp_path / "again"):
        for now, before_kill in zip(row["scores"], first[row["id"]], strict=True):
            if before_kill["failure"] is None:
                assert now == before_kill


@pytest.mark.server
def test_eval_rm_bench_reports_the_style_matrix_with_plots_and_an_offline_wandb_run(tmp_path, vllm_server):
    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = cerm(
        "eval",
        str(SHARED_DATA / "rm-bench"),
        "--format",
        "rm-bench",
        "--limit",
        "3",
        "--no-cache",
        "--wandb-project",
        "cerm-tests",
        *over_http(vllm_server),
        "-o",
        str(run),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = report_of(run)["benchmarks"][0]
    assert report["benchmark"] == "rm-bench" and report["n"] == 3
    assert {"hard", "normal", "easy"} <= report["metrics"].keys()
    assert [len(row["scores"]) for row in stored(run)] == [6, 6, 6]  # 3 chosen + 3 rejected styles
    assert_failures_are_counted(stored(run), report_of(run))
    for figure in ("rm-bench-accuracy", "rm-bench-scores", "rm-bench-length"):
        assert (run / "plots" / f"{figure}.png").stat().st_size > 1000
    assert "### rm-bench" in (run / "report.md").read_text()
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))


def judgebench_row(pair_id: str, question: str, a: str, b: str, label: str, source: str) -> dict:
    return {"pair_id": pair_id, "question": question, "response_A": a, "response_B": b, "label": label, "source": source}


JUDGEBENCH_ROWS = [
    judgebench_row("p1", "What is 12 * 12?", "144.", "124.", "A>B", "livebench-math"),
    judgebench_row("p2", "Name the largest planet.", "Mars.", "Jupiter.", "B>A", "mmlu-pro-astronomy"),
    judgebench_row("p3", "Reverse the word 'stop'.", "pots", "tops", "A>B", "livebench-reasoning"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_precomputed_scores_give_the_hand_computed_judgebench_numbers(tmp_path):
    data = write_jsonl(tmp_path / "judgebench.jsonl", JUDGEBENCH_ROWS)
    scores = write_jsonl(
        tmp_path / "scores.jsonl",
        [{"id": "p1", "scores": [0.9, 0.1]}, {"id": "p2", "scores": [0.5, 0.5]}, {"id": "p3", "scores": [0.2, 0.7]}],
    )
    run = tmp_path / "run"
    done = cerm(
        "eval",
        str(data),
        "--format",
        "judgebench",
        "--judge",
        "precomputed",
        "--scores",
        str(scores),
        "-o",
        str(run),
        "--no-cache",
    )
    assert done.returncode == 0, done.stderr
    report = report_of(run)
    bench = report["benchmarks"][0]
    # p1 right, p2 a tie (incorrect; 0.5 under the alternative; JudgeBench's RM rule reads it as B>A = right), p3 wrong
    assert bench["overall"] == pytest.approx(1 / 3) and bench["overall_alt"] == pytest.approx(0.5)
    assert bench["metrics"]["accuracy_ties_to_B"] == pytest.approx(2 / 3)
    assert report["meta"]["judge"].startswith("precomputed:scores.jsonl:")

    other = write_jsonl(tmp_path / "other.jsonl", [{"id": f"p{k}", "scores": [0.1, 0.9]} for k in (1, 2, 3)])
    refused = cerm("eval", str(data), "--format", "judgebench", "--judge", "precomputed", "--scores", str(other), "-o", str(run))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr  # a store belongs to one judge: another
    assert f"{run / 'results.jsonl'} holds results of judge" in " ".join(refused.stderr.split())  # cannot resume it


@pytest.mark.server
def test_pairwise_judge_runs_both_orders_on_judgebench(tmp_path, vllm_server):
    data = write_jsonl(tmp_path / "judgebench.jsonl", JUDGEBENCH_ROWS)
    run = tmp_path / "run"
    done = cerm(
        "eval",
        str(data),
        "--format",
        "judgebench",
        "--judge",
        "pairwise",
        "--no-cache",
        "--no-plots",
        *over_http(vllm_server),
        "-o",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    report = report_of(run)
    assert report["meta"]["judge"].startswith("pairwise:") and report["benchmarks"][0]["n"] == 3
    for row in stored(run):  # win shares of the two orders: they sum to 1 unless a game had no verdict
        values = [s["score"] for s in row["scores"]]
        assert sum(values) == pytest.approx(1.0) or any(s["failure"] == "no_verdict" for s in row["scores"])


def long_response(topic: str, paragraphs: int) -> str:
    """Project-written filler prose: numbered paragraphs of plain sentences (about 60 words each)."""
    body = []
    for number in range(1, paragraphs + 1):
        body.append(
            f"Part {number} of the notes on {topic}. The team measured the site again and wrote down each value "
            f"with care. Readings from the north side matched the earlier survey within a small margin. The crew "
            f"then moved the equipment east, checked the batteries, and logged the weather before lunch. Nothing "
            f"unusual was seen during part {number}, and the next visit was planned for the following week."
        )
    return "\n\n".join(body)


@pytest.mark.server
def test_needle_build_and_eval_give_a_length_by_position_grid(tmp_path, vllm_server):
    bases = write_jsonl(
        tmp_path / "bases.jsonl",
        [
            {"id": "short", "prompt": "Summarise the survey notes.", "response": long_response("the river survey", 7)},
            {"id": "long", "prompt": "Write up the field notes.", "response": long_response("the hill survey", 14)},
        ],
    )
    facts = write_jsonl(
        tmp_path / "facts.jsonl",
        [
            {
                "true": "Water boils at 100 degrees Celsius at sea level.",
                "false": "Water boils at 60 degrees Celsius at sea level.",
            }
        ],
    )
    safety = write_jsonl(
        tmp_path / "safety.jsonl",
        [{"safe": "Wear gloves when handling the samples.", "harmful": "Taste the samples to identify them."}],
    )
    items_path = tmp_path / "needles.jsonl"
    built = cerm(
        "needle",
        "build",
        str(bases),
        "-o",
        str(items_path),
        "--facts",
        str(facts),
        "--safety",
        str(safety),
        "--rewrite",
        "--engine",
        "http",
        "--base-url",
        vllm_server,
        "--eval-max-tokens",
        "64",
    )
    assert built.returncode == 0, built.stderr
    items = [json.loads(line) for line in items_path.read_text().splitlines()]
    kinds = {item["subset"] for item in items}
    assert {"factuality", "safety"} <= kinds
    for item in items:  # a minimal pair: the two responses differ only inside the tagged chunk
        start, end = item["meta"]["chunk_span"]
        good, bad = item["responses"]
        base = next(
            json.loads(line)["response"]
            for line in bases.read_text().splitlines()
            if json.loads(line)["id"] == item["meta"]["base_id"]
        )
        assert good != bad and good.startswith(base[:start]) and bad.startswith(base[:start])
        assert good.endswith(base[end:]) and bad.endswith(base[end:])
        assert 0.0 <= item["meta"]["tagged_position"] <= 1.0
    per_base = {
        base_id: sum(1 for i in items if i["meta"]["base_id"] == base_id and i["subset"] == "factuality")
        for base_id in ("short", "long")
    }
    assert per_base["long"] > per_base["short"] >= 1  # 4 chunks per 1,000 words

    run = tmp_path / "run"
    done = cerm(
        "needle",
        "eval",
        str(items_path),
        "--limit",
        "4",
        "--subset",
        "factuality",
        "--subset",
        "safety",
        "--no-cache",
        *over_http(vllm_server),
        "-o",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    grid = json.loads((run / "needle-grid.json").read_text())
    assert sum(map(sum, grid["counts"])) == 4
    assert (run / "plots" / "needle-heatmap.png").stat().st_size > 1000
    assert report_of(run)["benchmarks"][0]["benchmark"] == "needle"
