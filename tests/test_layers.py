"""Imports point one way: cli -> services -> judges -> engines -> config and the other base modules.

Every module of ``cerm_reward`` is parsed (not imported) and each of its imports, at the top
or inside a function, is checked against ``ALLOWED``: which parts of the package a part may
import. The directions are the ones docs/development.md ("Layout") describes; a change that
needs a new direction changes the table here and the docs together, on purpose.
A second check keeps the core free of the heavy frameworks at import time, so
``import cerm_reward`` and the judges load no torch, vLLM, Ray or trainer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cerm_reward"

# --- the table -----------------------------------------------------------------------------

BASE = frozenset({"config", "errors", "frozen", "results", "stats", "criteria_cache", "jsonl"})
"""Settings, results and their helpers (JSON Lines too): everyone may import them; they import only each other."""
CORE = BASE | {"engines", "judges"}
"""What a service builds on: the judges and the engines they run on."""

ALLOWED: dict[str, frozenset[str]] = {
    # the base
    "errors": frozenset(),
    "frozen": frozenset(),
    "results": frozenset(),
    "criteria_cache": frozenset(),
    "stats": frozenset({"criteria_cache", "results"}),
    "config": frozenset({"errors", "frozen"}),
    "jsonl": frozenset({"errors"}),
    # engines, then judges on top of them
    "engines": BASE,
    "judges": BASE | {"engines"},
    # items, loaders and preference pairs: read by the services, written in the judges' Query type
    "data": BASE | {"judges"},
    # the services
    "scoring": CORE | {"data"},
    "evaluation": CORE | {"data"},
    "training": CORE | {"data"},
    "serving": CORE | {"data"},  # never integrations: a framework brings its routes to the server
    "integrations": CORE | {"data", "serving", "training"},
    "bench": CORE | {"data", "scoring", "serving", "integrations", "training"},  # measures the services
    # the command line reaches everything; nothing reaches it
    "cli": CORE | {"data", "scoring", "serving", "evaluation", "bench", "training", "integrations"},
    # `import cerm_reward`: the public names, re-exported from the core
    "": CORE,
}
"""Part of the package -> the other parts its modules may import (its own part is always allowed)."""


@dataclass(frozen=True)
class Apart:
    """Inside a part: modules under ``importer`` never import modules under ``imported`` (but those in ``unless``)."""

    importer: str
    imported: str
    why: str
    unless: tuple[str, ...] = ()


VIA_REGISTRY = "a judge kind is reached only through judges.registry"
APART = (
    # inside judges/, a kind's folder is reached only by the registry (so another kind is one more folder)
    Apart("judges", "judges.cerm", VIA_REGISTRY, unless=("judges.registry", "judges.cerm")),
    Apart("judges", "judges.critic_rm", VIA_REGISTRY, unless=("judges.registry", "judges.critic_rm")),
    Apart("training.cerm", "training.critic_rm", "the two trainers share nothing but the judges"),
    Apart("training.critic_rm", "training.cerm", "the two trainers share nothing but the judges"),
    Apart("integrations.openrlhf", "integrations.verl", "one framework's integration never needs another's"),
    Apart("integrations.verl", "integrations.openrlhf", "one framework's integration never needs another's"),
)

FRAMEWORKS = ("ray", "torch", "vllm", "transformers", "verl", "openrlhf", "fastapi")
FRAMEWORK_FREE = ("", "config", "errors", "frozen", "results", "stats", "criteria_cache", "jsonl", "judges")
"""Parts whose modules import no framework when they are imported (a function may, when it runs)."""

KNOWN_EDGES: frozenset[tuple[str, str]] = frozenset()
"""Imports that break ``ALLOWED`` or ``APART`` today and are to be removed: (importer, imported) module names."""

FRAMEWORK_MODULES: dict[str, frozenset[str]] = {
    # The Critic-RM value head and the tokenizer that feeds it are torch/transformers code by nature;
    # the judge imports them inside CriticRmJudge.open, so importing the judges loads neither
    # (test_importing_the_core_loads_no_framework checks that).
    "judges.critic_rm.model": frozenset({"torch"}),
    "judges.critic_rm.head_scorer": frozenset({"torch", "transformers"}),
}
"""Core modules that may import these frameworks at import time, and why (see the comments)."""


# --- reading the imports -------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    at_import_time: bool


def module_name(path: Path, root: Path) -> str:
    """``cerm_reward/judges/base.py`` -> ``judges.base``; the package's own ``__init__`` is ``""``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool, modules: frozenset[str]) -> list[Import]:
    """Every import of ``cerm_reward`` in ``source`` and of a framework, relative ones resolved.

    Names are without the ``cerm_reward.`` prefix; a framework keeps its own top-level name.
    ``from X import name`` counts as importing ``X.name`` when that is a module of the package.
    """
    found: list[Import] = []

    def add(name: str, node: ast.stmt, at_import_time: bool) -> None:
        imported = _ours_or_framework(name)
        if imported is not None:
            found.append(Import(module, imported, node.lineno, at_import_time))

    def visit(node: ast.AST, at_import_time: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, at_import_time)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            targets = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            our_modules = [t for t in targets if _ours(t) in modules]
            for target in our_modules or [base]:
                add(target, node, at_import_time)
        elif _is_type_checking_block(node):
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), True)
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = ["cerm_reward", *filter(None, module.split("."))]
    if not is_package:
        package.pop()
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _ours(name: str) -> str:
    return name.removeprefix("cerm_reward").removeprefix(".")


def _ours_or_framework(name: str) -> str | None:
    if name == "cerm_reward" or name.startswith("cerm_reward."):
        return _ours(name)
    top = name.split(".")[0]
    return f"!{top}" if top in FRAMEWORKS else None  # '!' marks a framework, never a module of ours


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def part_of(module: str) -> str:
    return module.split(".")[0]


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def package_imports(root: Path = PACKAGE) -> list[Import]:
    paths = sorted(root.rglob("*.py"))
    modules = frozenset(module_name(path, root) for path in paths)
    found: list[Import] = []
    for path in paths:
        module = module_name(path, root)
        found += imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py", modules)
    return found


# --- the checks ----------------------------------------------------------------------------


def layer_violations(imports: list[Import], known: frozenset[tuple[str, str]] = KNOWN_EDGES) -> list[str]:
    problems = []
    for edge in imports:
        if edge.imported.startswith("!") or (edge.importer, edge.imported) in known:
            continue
        source, target = part_of(edge.importer), part_of(edge.imported)
        where = f"cerm_reward.{edge.importer} (line {edge.line}) imports cerm_reward.{edge.imported}"
        if source not in ALLOWED:
            problems.append(f"{where}: part {source!r} has no row in ALLOWED; add one (and to docs/development.md)")
        elif source != target and target not in ALLOWED[source]:
            problems.append(f"{where}: {source!r} may not import {target!r}")
        for rule in APART:
            exempt = any(under(edge.importer, unless) for unless in rule.unless)
            if under(edge.importer, rule.importer) and under(edge.imported, rule.imported) and not exempt:
                problems.append(f"{where}: {rule.why}")
    return problems


def framework_violations(imports: list[Import]) -> list[str]:
    problems = []
    for edge in imports:
        framework = edge.imported[1:]
        core = any(under(edge.importer, part) if part else edge.importer == "" for part in FRAMEWORK_FREE)
        if not (edge.imported.startswith("!") and edge.at_import_time and core):
            continue
        if framework not in FRAMEWORK_MODULES.get(edge.importer, frozenset()):
            problems.append(
                f"cerm_reward.{edge.importer} (line {edge.line}) imports {framework} at import time: "
                "the core loads no framework; import it inside the function that needs it"
            )
    return problems


def test_imports_point_one_way():
    problems = layer_violations(package_imports())
    assert not problems, "\n".join(problems)


def test_the_core_imports_no_framework_at_import_time():
    problems = framework_violations(package_imports())
    assert not problems, "\n".join(problems)


def test_the_allow_lists_name_only_edges_that_exist():
    """A fixed edge leaves the allow-lists; a stale entry would hide its return."""
    imports = package_imports()
    edges = {(i.importer, i.imported) for i in imports}
    assert KNOWN_EDGES <= edges, sorted(KNOWN_EDGES - edges)
    framework_edges = {(i.importer, i.imported[1:]) for i in imports if i.imported.startswith("!") and i.at_import_time}
    listed = {(module, framework) for module, frameworks in FRAMEWORK_MODULES.items() for framework in frameworks}
    assert listed <= framework_edges, sorted(listed - framework_edges)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("serving.http_server", "from ..integrations.openrlhf import contract", "'serving' may not import 'integrations'"),
        ("judges.base", "def f():\n    from ..evaluation import scorers", "'judges' may not import 'evaluation'"),
        ("training.cerm.rewards", "import cerm_reward.cli.app", "'training' may not import 'cli'"),
        ("judges.cerm.judge", "from cerm_reward.judges.critic_rm import templates", "only through judges.registry"),
        ("newpart.thing", "from cerm_reward import config", "part 'newpart' has no row in ALLOWED"),
    ],
)
def test_a_wrong_import_is_reported_with_both_modules(module, source, expected):
    modules = frozenset({"integrations.openrlhf.contract", "evaluation.scorers", "cli.app", "judges.critic_rm.templates"})
    imports = imports_of(source, module, False, modules)
    [problem] = layer_violations(imports)
    assert problem.startswith(f"cerm_reward.{module} (line ") and expected in problem
    assert f"imports cerm_reward.{imports[0].imported}" in problem


def test_a_framework_import_in_the_core_is_reported_unless_inside_a_function():
    source = "import torch\nfrom vllm import SamplingParams\ndef later():\n    import ray\n"
    problems = framework_violations(imports_of(source, "judges.pairwise", False, frozenset()))
    assert [p.split(" at import time")[0] for p in problems] == [
        "cerm_reward.judges.pairwise (line 1) imports torch",
        "cerm_reward.judges.pairwise (line 2) imports vllm",
    ]
    assert framework_violations(imports_of(source, "serving.ray_pool", False, frozenset())) == []


def test_importing_the_core_loads_no_framework():
    """The static check above sees one module at a time; this one follows every import the core makes."""
    core = sorted(
        module
        for module in {module_name(path, PACKAGE) for path in PACKAGE.rglob("*.py")}
        if any(under(module, part) if part else module == "" for part in FRAMEWORK_FREE) and module not in FRAMEWORK_MODULES
    )
    names = ["cerm_reward" + (f".{module}" if module else "") for module in core]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(f for f in {FRAMEWORKS!r} if f in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", f"importing the core loaded {result.stdout.strip()}"
