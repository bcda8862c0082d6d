"""The one error model of ``cerm``: a user error is one line and exit code 2, anything else a bug.

Every command runs under the root group below, so this is the only place an exception is turned
into an exit code: :class:`~cerm_reward.errors.CermError` (bad input, configuration or flag; its
message names the file, line or field) prints ``error: <message>`` on stderr and exits 2. Any
other exception is a bug and keeps its traceback (exit code 1).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from cerm_reward.errors import CermError

USER_ERROR = 2
"""Exit code of a user error; the same code typer gives a bad flag or a missing argument."""


class ReportsUserErrors(TyperGroup):
    """The root command group: reports a :class:`CermError` from any command as one line."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CermError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(USER_ERROR) from None
