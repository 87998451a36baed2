"""Request bodies and queries of the Releaseo routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from control_plane.models import Body


class WidgetConfigBody(Body):
    settings: dict[str, Any] = Field(
        description="Widget settings served by /sdk/config (a JSON object, at most 64 KiB)"
    )
    client_dedup_id: str | None = Field(default=None, min_length=1, max_length=200)


class RemoveBody(Body):
    client_dedup_id: str | None = Field(default=None, min_length=1, max_length=200)


class CreateSegment(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    definition: dict[str, Any] = Field(description="Reflag filter tree (group/negation/context/constant/rollout)")
    client_dedup_id: str | None = Field(default=None, min_length=1, max_length=200)


class UpdateSegment(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: dict[str, Any] | None = Field(default=None, description="Reflag filter tree")
    client_dedup_id: str | None = Field(default=None, min_length=1, max_length=200)


class PublishSegment(Body):
    client_dedup_id: str | None = Field(default=None, min_length=1, max_length=200)


class ListQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200, description="Opaque next_cursor of the previous page")
