"""Request bodies and queries of the DevCycle feature routes (field names as DevCycle spells them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, RootModel

from control_plane.models import KEY_PATTERN
from control_plane.routes.devcycle.common import ID_PATTERN, DvBody, Json, JsonObject, ListQuery, Strict, Tags

FeatureType = Literal["release", "experiment", "permission", "ops"]
FeatureStatusName = Literal["active", "complete", "archived"]
VariableType = Literal["String", "Boolean", "Number", "JSON"]
MAX_VARIATIONS = 100
MAX_VARIABLES = 100
MAX_TARGETS = 100


class ValidationSchema(Strict):
    schemaType: Json = None
    enumValues: Json = None
    regexPattern: str | None = Field(default=None, max_length=1000)
    jsonSchema: str | None = Field(default=None, max_length=10_000)
    description: str | None = Field(default=None, max_length=1000)
    exampleValue: Json = None


class VariableFields(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    feature: str | None = Field(default=None, alias="_feature", max_length=100)
    type: VariableType
    validationSchema: ValidationSchema | None = None
    persistent: bool | None = None
    tags: Tags | None = None


class CreateVariable(VariableFields, DvBody):
    pass


class UpdateVariable(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: VariableType | None = None
    validationSchema: ValidationSchema | None = None
    persistent: bool | None = None
    tags: Tags | None = None


class VariableStatus(DvBody):
    status: Literal["active", "archived"]


class VariationFields(Strict):
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    variables: JsonObject | None = Field(default=None, max_length=MAX_VARIABLES)


class CreateVariation(VariationFields, DvBody):
    pass


class VariationUpdate(Strict):
    """A variation in a feature update: matched by ``_id``, else by ``key``; new ones need both."""

    id: str | None = Field(default=None, alias="_id", max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    variables: JsonObject | None = Field(default=None, max_length=MAX_VARIABLES)


class UpdateVariation(DvBody):
    id: str | None = Field(default=None, alias="_id", max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    variables: JsonObject | None = Field(default=None, max_length=MAX_VARIABLES)


class Distribution(Strict):
    variation: str = Field(alias="_variation", min_length=1, max_length=100)
    percentage: float = Field(ge=0, le=1)


class RolloutStage(Strict):
    type: Literal["linear", "discrete"]
    date: str = Field(min_length=1, max_length=40)
    percentage: float = Field(ge=0, le=1)


class Rollout(Strict):
    type: Literal["schedule", "gradual", "stepped"]
    startPercentage: float | None = Field(default=None, ge=0, le=1)
    startDate: str = Field(min_length=1, max_length=40)
    stages: list[RolloutStage] | None = Field(default=None, max_length=100)


class TargetAudience(Strict):
    name: str | None = Field(default=None, max_length=100)
    filters: JsonObject


class Target(Strict):
    id: str | None = Field(default=None, alias="_id", pattern=ID_PATTERN)
    name: str | None = Field(default=None, max_length=100)
    audience: TargetAudience
    rollout: Rollout | None = None
    distribution: list[Distribution] = Field(min_length=1, max_length=MAX_VARIATIONS)
    bucketingKey: str | None = Field(default=None, min_length=1, max_length=100)


class ReflagRule(Strict):
    filter: JsonObject


class ReflagTargeting(Strict):
    version: int | None = Field(default=None, description="Ignored: the server keeps the version")
    rules: list[ReflagRule] = Field(max_length=1000)


class ReflagVariant(Strict):
    key: str = Field(min_length=1, max_length=100)
    filter: JsonObject | None = None
    payload: Json = None


class ReflagConfig(Strict):
    version: int | None = Field(default=None, description="Ignored: the server keeps the version")
    variants: list[ReflagVariant] = Field(max_length=MAX_VARIATIONS)


class ConfigurationFields(Strict):
    """One environment's configuration: DevCycle ``targets``, or Reflag ``targeting`` (+ ``config``)."""

    status: Literal["active", "inactive"] | None = None
    targets: list[Target] | None = Field(default=None, max_length=MAX_TARGETS)
    targeting: ReflagTargeting | None = None
    config: ReflagConfig | None = None


class UpdateConfiguration(ConfigurationFields, DvBody):
    pass


class FeatureSettings(Strict):
    publicName: str | None = Field(default=None, max_length=100)
    publicDescription: str | None = Field(default=None, max_length=1000)
    optInEnabled: bool | None = None


class SdkVisibility(Strict):
    mobile: bool | None = None
    client: bool | None = None
    server: bool | None = None


class SummaryLink(Strict):
    url: str = Field(min_length=1, max_length=2000)
    title: str | None = Field(default=None, max_length=200)


class Summary(Strict):
    maintainers: Tags | None = None
    links: list[SummaryLink] | None = Field(default=None, max_length=100)
    markdown: str | None = Field(default=None, max_length=10_000)


class FeatureFields(Strict):
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    type: FeatureType = "release"
    tags: Tags | None = None
    variations: list[VariationFields] | None = Field(default=None, max_length=MAX_VARIATIONS)
    controlVariation: str | None = Field(default=None, max_length=100)
    variables: list[VariableFields] | None = Field(default=None, max_length=MAX_VARIABLES)
    settings: FeatureSettings | None = None
    sdkVisibility: SdkVisibility | None = None
    summary: Summary | None = None
    staleness: JsonObject | None = None
    configurations: dict[str, ConfigurationFields] | None = Field(
        default=None, max_length=100, description="Keyed by environment key or id"
    )


class CreateFeature(FeatureFields, DvBody):
    pass


class CreateFeatures(RootModel[list[FeatureFields]]):
    root: list[FeatureFields] = Field(min_length=1, max_length=1000)


class UpdateFeature(DvBody):
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    type: FeatureType | None = None
    tags: Tags | None = None
    variations: list[VariationUpdate] | None = Field(default=None, max_length=MAX_VARIATIONS)
    controlVariation: str | None = Field(default=None, max_length=100)
    variables: list[VariableFields] | None = Field(default=None, max_length=MAX_VARIABLES)
    settings: FeatureSettings | None = None
    sdkVisibility: SdkVisibility | None = None
    summary: Summary | None = None
    staleness: JsonObject | None = None
    configurations: dict[str, ConfigurationFields] | None = Field(default=None, max_length=100)


class FeatureStatus(DvBody):
    status: FeatureStatusName
    staticVariation: str | None = Field(default=None, max_length=100)


class FeatureListQuery(ListQuery):
    type: FeatureType | None = None
    status: FeatureStatusName | None = None
    keys: str | None = Field(default=None, max_length=10_000, description="Comma-separated feature keys")
    includeLatestUpdate: bool | None = None
    staleness: str | None = Field(default=None, max_length=20)


class VariableListQuery(ListQuery):
    feature: str | None = Field(default=None, max_length=100)
    type: VariableType | None = None
    status: Literal["active", "archived"] | None = None


class EnvironmentQuery(BaseModel):
    environment: str | None = Field(default=None, min_length=1, max_length=100)


class DeleteFeatureQuery(BaseModel):
    deleteVariables: bool = False
