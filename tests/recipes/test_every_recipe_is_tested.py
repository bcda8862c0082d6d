"""Every file under ``recipes/`` is run by a test in this folder (named there by its file name)."""

from __future__ import annotations

from pathlib import Path

from tests.recipes.launchers import RECIPES


def test_every_recipe_file_is_named_by_a_recipe_test():
    tests = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py") if path.name != Path(__file__).name)
    untested = [
        str(path.relative_to(RECIPES)) for path in sorted(RECIPES.rglob("*")) if path.is_file() and path.name not in tests
    ]
    assert untested == []
