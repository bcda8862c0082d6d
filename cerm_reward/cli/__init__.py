"""The ``cerm`` command line: ``app`` holds the root command and registers every sub-app."""

from __future__ import annotations


def main() -> None:
    """Console entry point (``cerm``)."""
    from cerm_reward.cli.app import app

    app()
