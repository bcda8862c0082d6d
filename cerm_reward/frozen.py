"""The base of every settings and record model: immutable, and strict about unknown keys.

Frozen so a configuration shared by concurrent judges cannot change under them; ``extra="forbid"``
so a misspelt key is an error naming it instead of a silently ignored setting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
