"""The default template must be CE-RM-4B's published prompts, byte for byte."""

import hashlib
import re
from pathlib import Path

import pytest

from cerm_reward.judges.templates import JudgeTemplate, builtin_versions, load_template

REPO_METHOD_MD = Path(__file__).resolve().parents[2] / "docs" / "method.md"
SHARED_METHOD_MD = Path(__file__).resolve().parents[3] / "shared" / "docs" / "method.md"
"""The project's brief, beside the checkout (in CI too): the published prompts as given to us."""
# sha256 of the published prompts (method.md §1.1, text inside the fences, trailing newline included).
PUBLISHED_SHA256 = {
    "criteria": "e4d87e465d2dae3d90bc487d17587b25233e32df2ec8dfec4b024001dba0d122",
    "evaluation": "164267b6fb7152535ac9e8e2a9027557e6f58e02d14bd50400629edb797c8cae",
}


def test_cerm_v1_is_the_default_builtin():
    assert "cerm-v1" in builtin_versions()


@pytest.mark.parametrize("part", ["criteria", "evaluation"])
def test_cerm_v1_matches_published_hashes(part):
    text = getattr(load_template("cerm-v1"), part)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == PUBLISHED_SHA256[part]


@pytest.mark.parametrize("method_md", [REPO_METHOD_MD, SHARED_METHOD_MD], ids=["docs", "shared"])
def test_cerm_v1_matches_method_md_byte_for_byte(method_md: Path):
    if not method_md.exists():
        pytest.skip(f"{method_md} not beside the checkout")
    criteria, evaluation = re.findall(r"```text\n(.*?)```", method_md.read_text(encoding="utf-8"), re.S)
    template = load_template("cerm-v1")
    assert template.criteria == criteria
    assert template.evaluation == evaluation


def test_rendering_keeps_braces_and_the_three_message_layout():
    template = load_template("cerm-v1")
    query = "Format {name} with str.format and explain \\boxed{x}"
    messages = template.evaluation_messages(query, "CRITERIA TEXT", "use '{}'.format(x)")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "[Start of Query]\n" + query + "\n[End of Query]\n" in messages[0]["content"]
    assert messages[1]["content"] == "CRITERIA TEXT"
    assert messages[2]["content"].endswith("[Start of Response]\nuse '{}'.format(x)\n[End of Response]\n")
    assert "$\\boxed{}$" in messages[2]["content"]
    assert messages[0] == template.criteria_messages(query)[0]


def test_custom_template_from_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("version: mine-v2\ncriteria: 'Criteria for: {query}'\nevaluation: 'Rate: {response}'\n")
    template = load_template(str(path))
    assert template.version == "mine-v2"
    assert template.criteria_prompt("Q") == "Criteria for: Q"
    assert template.repair == load_template("cerm-v1").repair


def test_bad_templates_are_refused(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        JudgeTemplate("x", "no slot", "{response}", "r")
    with pytest.raises(ValueError, match="not a built-in"):
        load_template("cerm-v9")
    path = tmp_path / "bad.yaml"
    path.write_text("criteria: '{query}'\n")
    with pytest.raises(ValueError, match="needs the keys"):
        load_template(str(path))
