"""Request bodies and queries of the DevCycle management API (field names as DevCycle spells them),
one section per resource; the route modules import them from here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, RootModel

from control_plane.models import KEY_PATTERN
from control_plane.routes.devcycle.common import ID_PATTERN, DvBody, Json, JsonObject, ListQuery, Strict, Tags

FeatureType = Literal["release", "experiment", "permission", "ops"]
FeatureStatusName = Literal["active", "complete", "archived"]
VariableType = Literal["String", "Boolean", "Number", "JSON"]
COLOR = r"^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{4}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$"
EnvType = Literal["development", "staging", "production", "disaster_recovery"]
PropertyType = Literal["String", "Boolean", "Number"]
MAX_VARIATIONS = 100
MAX_VARIABLES = 100
MAX_TARGETS = 100


# ---------------------------------------------------------------------------------------------
# Projects


class Enabled(Strict):
    enabled: bool | None = None


class OptInColors(Strict):
    primary: str | None = Field(default=None, max_length=50)
    secondary: str | None = Field(default=None, max_length=50)


class OptIn(Strict):
    enabled: bool | None = None
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    imageURL: str | None = Field(default=None, max_length=2000)
    colors: OptInColors | None = None
    poweredByAlignment: str | None = Field(default=None, max_length=20)


class SdkTypeVisibility(Strict):
    enabledInFeatureSettings: bool | None = None


class LifeCycle(Strict):
    disableCodeRefChecks: bool | None = None


class Obfuscation(Strict):
    enabled: bool | None = None
    required: bool | None = None


class Dynatrace(Strict):
    enabled: bool | None = None
    environmentMap: dict[str, str] | None = Field(default=None, max_length=100)


class ApprovalWorkflow(Strict):
    enabled: bool | None = None
    allowPublisherBypass: bool | None = None
    defaultReviewers: Tags | None = None


class StalenessEmail(Strict):
    enabled: bool | None = None
    frequency: Literal["weekly", "biweekly", "monthly"] | None = None
    users: Tags | None = None


class Staleness(Strict):
    enabled: bool | None = None
    released: Enabled | None = None
    unmodifiedLong: Enabled | None = None
    unmodifiedShort: Enabled | None = None
    unused: Enabled | None = None
    email: StalenessEmail | None = None


class ProjectSettings(Strict):
    edgeDB: Enabled | None = None
    optIn: OptIn | None = None
    sdkTypeVisibility: SdkTypeVisibility | None = None
    lifeCycle: LifeCycle | None = None
    obfuscation: Obfuscation | None = None
    disablePassthroughRollouts: bool | None = None
    dynatrace: Dynatrace | None = None
    featureApprovalWorkflow: ApprovalWorkflow | None = None
    staleness: Staleness | None = None


class CreateProject(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    settings: ProjectSettings | None = None


class UpdateProject(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    settings: ProjectSettings | None = None


# ---------------------------------------------------------------------------------------------
# Environments and SDK keys


class EnvironmentSettings(Strict):
    appIconURI: str | None = Field(default=None, max_length=2000)


class CreateEnvironment(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    type: EnvType
    settings: EnvironmentSettings | None = None


class UpdateEnvironment(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    color: str | None = Field(default=None, max_length=9, pattern=COLOR)
    type: EnvType | None = None
    settings: EnvironmentSettings | None = None


class GenerateKeys(DvBody):
    client: bool = False
    server: bool = False
    mobile: bool = False


# ---------------------------------------------------------------------------------------------
# Features, variations, variables, configurations


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
    filter: JsonObject | None = Field(
        default=None,
        description='Absent: every context. GET /features serves it as {"type": "constant", "value": true},'
        " the shape Reflag SDKs require",
    )
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
    customStatus: str | None = Field(default=None, max_length=100)
    # Repeated (?keys=a&keys=b) or comma-separated; the handler reads every occurrence.
    keys: str | None = Field(default=None, max_length=10_000, description="Feature keys, repeated or comma-separated")
    includeLatestUpdate: bool = False
    staleness: Literal["all", "unused", "released", "unmodified", "notStale"] | None = None


class VariableListQuery(ListQuery):
    feature: str | None = Field(default=None, max_length=100)
    type: VariableType | None = None
    status: Literal["active", "archived"] | None = None


class EnvironmentQuery(BaseModel):
    environment: str | None = Field(default=None, min_length=1, max_length=100)


class DeleteFeatureQuery(BaseModel):
    deleteVariables: bool = False


# ---------------------------------------------------------------------------------------------
# Audiences and custom properties


class CreateAudience(DvBody):
    # Both optional, as the document has them: a missing key comes from the name (audiences.py).
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    filters: JsonObject
    tags: Tags | None = None


class UpdateAudience(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    filters: JsonObject | None = None
    tags: Tags | None = None


class AudienceListQuery(ListQuery):
    includeUsage: bool = False


class AllowedValue(Strict):
    label: str = Field(max_length=200)
    value: Json = None


class EnumSchema(Strict):
    allowedValues: list[AllowedValue] = Field(default_factory=list, max_length=1000)
    allowAdditionalValues: bool | None = None


class PropertySchema(Strict):
    schemaType: Literal["enum"] | None = None
    required: bool | None = None
    enumSchema: EnumSchema | None = None


class CreateCustomProperty(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: PropertyType
    propertyKey: str = Field(min_length=1, max_length=200)
    schema_: PropertySchema | None = Field(default=None, alias="schema")


class UpdateCustomProperty(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: PropertyType | None = None
    propertyKey: str | None = Field(default=None, min_length=1, max_length=200)
    schema_: PropertySchema | None = Field(default=None, alias="schema")


class PropertyListQuery(ListQuery):
    type: PropertyType | None = None
    includeUsage: bool = False
