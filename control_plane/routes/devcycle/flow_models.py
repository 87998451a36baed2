"""Request bodies and queries of the approval workflow (change requests, project settings) and of
webhooks, as DevCycle's management API defines them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from control_plane.routes.devcycle.common import DvBody, JsonObject, ListQuery, Strict, Tags
from control_plane.routes.devcycle.models import ApprovalWorkflow, ProjectSettings, Staleness
from control_plane.webhook_events import EVENTS

ChangeRequestStatus = Literal["draft", "pending", "approved", "applied", "rejected", "cancelled"]


class CreateChangeRequest(DvBody):
    path: str = Field(min_length=1, max_length=2000)
    method: Literal["PATCH"]
    body: JsonObject


class SubmitChangeRequest(DvBody):
    description: str = Field(max_length=1000)
    reviewers: Tags


class ReviewChangeRequest(DvBody):
    action: Literal["approved", "rejected"]
    comment: str = Field(max_length=1000)


class ReviewQuery(BaseModel):
    apply: bool = False


class ApplyChangeRequest(DvBody):
    description: str = Field(max_length=1000)
    action: Literal["applied"]


class ChangeRequestListQuery(ListQuery):
    status: ChangeRequestStatus | None = None
    reviewer: str | None = Field(default=None, max_length=100)


class PublisherSettings(ProjectSettings):
    """``PATCH /v1/projects/{key}/settings``: every setting but the protected ones."""

    featureApprovalWorkflow: None = None
    staleness: None = None


class UpdateProjectSettings(DvBody):
    settings: PublisherSettings


class ProtectedSettings(Strict):
    featureApprovalWorkflow: ApprovalWorkflow | None = None
    staleness: Staleness | None = None


class UpdateProtectedSettings(DvBody):
    settings: ProtectedSettings


# ---------------------------------------------------------------------------------------------
# Webhooks


def _known_event(name: str) -> str:
    if name not in EVENTS:
        raise ValueError(f"unknown event; one of {', '.join(EVENTS)}")
    return name


WebhookEvent = Annotated[str, AfterValidator(_known_event)]


class WebhookFields(Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    url: str = Field(min_length=1, max_length=2000)
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(EVENTS))
    outputFormat: JsonObject | None = None
    feature: str | None = Field(default=None, alias="_feature", max_length=100)
    environments: Tags | None = Field(default=None, alias="_environments")


class CreateWebhook(WebhookFields, DvBody):
    pass


class UpdateWebhook(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[WebhookEvent] | None = Field(default=None, min_length=1, max_length=len(EVENTS))
    outputFormat: JsonObject | None = None
    feature: str | None = Field(default=None, alias="_feature", max_length=100)
    environments: Tags | None = Field(default=None, alias="_environments")


class DeliveryListQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=1_000_000)
    perPage: int = Field(default=100, ge=1, le=1000)
    status: Literal["pending", "delivered", "failed"] | None = None
