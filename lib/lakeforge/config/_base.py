"""What every settings model shares: frozen, no unknown keys, and the loading error type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from lakeforge.errors import InputError


SPARK_TYPES = ("string", "int", "bigint", "double", "float", "boolean", "date", "timestamp")


class ConfigError(InputError):
    """Configuration that cannot be loaded; the message names file, key path and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
