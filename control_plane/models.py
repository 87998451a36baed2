"""Request-body building blocks shared by the route modules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

KEY_PATTERN = r"^[a-z0-9-_.]+$"
Role = str


class Body(BaseModel):
    """Base of every request body: unknown fields are rejected, ``change_reason`` is optional."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    change_reason: str | None = Field(default=None, max_length=1000)
