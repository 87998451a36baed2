"""Request bodies and queries of the shareyourthoughtswith.me routes, and the post definition.

A post's definition is a list of steps, each an ``id``, a ``label`` and an input ``kind``:
``yes_no``, ``choice`` (``options``, ``multiple``), ``text`` (``max_length``) or ``rating``
(``min``..``max``). Definitions are validated when a version is created and stored with every
default spelled out, so a reader (and the answer check, :mod:`.answers`) never guesses one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from control_plane.models import Body

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
STEP_ID = r"^[A-Za-z0-9_-]{1,64}$"
DedupId = Annotated[str, Field(min_length=1, max_length=200)]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(pattern=STEP_ID)
    label: str = Field(min_length=1, max_length=200)
    required: bool = False


class YesNoStep(_Step):
    kind: Literal["yes_no"]


class ChoiceStep(_Step):
    kind: Literal["choice"]
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=50)
    multiple: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be distinct")
        return self


class TextStep(_Step):
    kind: Literal["text"]
    max_length: int = Field(default=2000, ge=1, le=10_000)


class RatingStep(_Step):
    kind: Literal["rating"]
    min: int = Field(default=1, ge=-100, le=100)
    max: int = Field(default=5, ge=-100, le=100)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        return self


Step = Annotated[YesNoStep | ChoiceStep | TextStep | RatingStep, Field(discriminator="kind")]


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    steps: list[Step] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        return self


# -- the dashboard (/admin) -------------------------------------------------------------------


class CreateKey(Body):
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["submit", "read"]


class CreatePost(Body):
    slug: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=200)
    definition: Definition


class NewVersion(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200, description="the last version's if left out")
    definition: Definition


class Publish(Body):
    version: int | None = Field(default=None, ge=1, le=2**31, description="the latest version if left out")


class Reason(Body):
    """A body with nothing but the optional change_reason."""


# -- the key API (/api/v1) ------------------------------------------------------------------


class ApiBody(BaseModel):
    """Base of the /api/v1 bodies: unknown fields and type coercion ("true" for true) refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Answer(ApiBody):
    step_id: str = Field(min_length=1, max_length=64)
    answer: JsonValue


class FeedbackBody(ApiBody):
    post_slug: str = Field(pattern=SLUG)
    answers: list[Answer] = Field(max_length=50)
    is_public: bool = False
    public_text: str | None = Field(default=None, max_length=2000)
    submitter_label: str | None = Field(default=None, max_length=100)
    client_dedup_id: DedupId | None = None


class TelemetryBody(ApiBody):
    event_type: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    post_slug: str | None = Field(default=None, max_length=64)
    step_id: str | None = Field(default=None, max_length=64)
    session_id: str | None = Field(default=None, max_length=128)
    path: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    payload: dict[str, JsonValue] | None = Field(default=None, description="a JSON object, at most 4 KiB encoded")


class Page(BaseModel):
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")


class FeedbackPage(Page):
    limit: int = Field(default=50, ge=1, le=100)


class TelemetryPage(Page):
    limit: int = Field(default=100, ge=1, le=500)


def dump(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json")
