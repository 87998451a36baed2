"""Request bodies and queries of the Releaseo routes."""

from __future__ import annotations

from typing import Any, Literal

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


# --- the board: categories, feature requests, roadmap, changelog -------------------------------

Dedup = Field(default=None, min_length=1, max_length=200)
ReviewStatus = Literal["pending", "approved", "rejected"]
RequestStatus = Literal["open", "planned", "in_progress", "done", "closed"]
RequestKind = Literal["feature_request", "bug", "idea"]
RoadmapStatus = Literal["planned", "in_progress", "done"]
Visibility = Literal["public", "internal_only", "audience_targeted"]
ChangelogStatus = Literal["draft", "published"]


class Audience(Body):
    """Who sees a changelog entry or a targeted roadmap item: everyone (``all``), a saved
    segment's published snapshot (``segment``: its latest version, or ``segmentVersion``), or a
    custom condition (``condition``: a Reflag filter tree in ``filter``)."""

    mode: Literal["all", "segment", "condition"]
    segmentId: str | None = Field(default=None, min_length=1, max_length=100)
    segmentVersion: int | None = Field(default=None, ge=1, le=2**31 - 1)
    filter: dict[str, Any] | None = Field(default=None, description="Reflag filter tree (mode condition)")


class CreateCategory(Body):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    position: int = Field(default=0, ge=0, le=1_000_000)
    client_dedup_id: str | None = Dedup


class UpdateCategory(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    position: int | None = Field(default=None, ge=0, le=1_000_000)


class CreateFeatureRequest(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    kind: RequestKind = "feature_request"
    reviewStatus: ReviewStatus = Field(default="approved", description="Dashboard entries are approved unless said")
    status: RequestStatus = "open"
    categoryId: str | None = Field(default=None, max_length=100)
    client_dedup_id: str | None = Dedup


class UpdateFeatureRequest(Body):
    """Moderation: review (approve/reject), workflow status, edits, recategorisation."""

    reviewStatus: ReviewStatus | None = None
    status: RequestStatus | None = None
    kind: RequestKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    categoryId: str | None = Field(default=None, max_length=100)


class FeatureRequestQuery(BaseModel):
    reviewStatus: ReviewStatus | None = None
    status: RequestStatus | None = None
    kind: RequestKind | None = None
    categoryId: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200, description="Opaque next_cursor of the previous page")


class CreateRoadmapItem(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    status: RoadmapStatus = "planned"
    visibility: Visibility = "public"
    audience: Audience | None = Field(default=None, description="Required for visibility audience_targeted")
    position: int | None = Field(default=None, ge=0, le=1_000_000, description="Default: after the last item")
    featureRequestId: str | None = Field(default=None, max_length=100)
    client_dedup_id: str | None = Dedup


class UpdateRoadmapItem(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    status: RoadmapStatus | None = None
    visibility: Visibility | None = None
    audience: Audience | None = None
    position: int | None = Field(default=None, ge=0, le=1_000_000)
    featureRequestId: str | None = Field(default=None, max_length=100)


class OrderRoadmap(Body):
    """Roadmap item ids to put first, in this order (each once); the others keep their order after them."""

    ids: list[str] = Field(min_length=1, max_length=10_000)


class CreateChangelogEntry(Body):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)
    status: ChangelogStatus = "draft"
    audience: Audience | None = Field(default=None, description="Default: all users")
    client_dedup_id: str | None = Dedup


class UpdateChangelogEntry(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=10_000)
    status: ChangelogStatus | None = None
    audience: Audience | None = None
