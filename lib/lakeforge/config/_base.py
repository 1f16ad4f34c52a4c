"""What every settings model shares: frozen, no unknown keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

SPARK_TYPES = ("string", "int", "bigint", "double", "float", "boolean", "date", "timestamp")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
