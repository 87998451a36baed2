"""Request bodies and queries of the Airborne routes, one section per resource family; the route
modules import them from here. Free-form JSON fields are bounded (depth and encoded size)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from control_plane.models import Body
from control_plane.routes.airborne.common import MAX_FILE_KEY, NAME_PATTERN, TAG_PATTERN, PageQuery, check_json_value

MAX_METADATA_BYTES = 16_384
MAX_SCHEMA_BYTES = 32_768
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
MAX_PROPERTIES_BYTES = 65_536
DEFAULT_TIMEOUT_MS = 4000
FileKeyStr = Annotated[str, Field(min_length=1, max_length=MAX_FILE_KEY)]
DimensionName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Member = Annotated[str, Field(min_length=1, max_length=256)]
DimensionKey = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
DimensionValue = Annotated[str, Field(max_length=256)] | bool | int | float
Timeout = Annotated[int, Field(ge=0, le=3_600_000)]


# ---------------------------------------------------------------------------------------------
# Files and packages


# A file path is in two unique indexes (with its version, with its tag) and, as part of a file key,
# in an idempotency key: PostgreSQL holds an index entry of at most about 2.7 kB, so 1024
# characters of 3- or 4-byte UTF-8 could not be stored. ASCII paths keep their 1024 characters.
MAX_FILE_PATH_BYTES = 2048


class AirborneFileFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    file_path: str = Field(min_length=1, max_length=1024, description="File path identifier")
    url: str = Field(min_length=1, max_length=2048, description="URL where the file can be downloaded")
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN, description="Tag, e.g. latest or stable")
    metadata: dict[str, Any] | None = Field(default=None, description="Additional metadata")
    size: int | None = Field(default=None, ge=1, le=2**53, description="Size in bytes (with checksum)")
    checksum: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{64}$", description="SHA-256 hex (with size)")

    @field_validator("file_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v != v.strip() or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("must not have surrounding whitespace or control characters")
        if "@version:" in v or "@tag:" in v:
            raise ValueError("must not contain @version: or @tag:")
        if len(v.encode("utf-8", "surrogatepass")) > MAX_FILE_PATH_BYTES:
            raise ValueError(f"must be at most {MAX_FILE_PATH_BYTES} bytes in UTF-8")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")) or any(c.isspace() for c in v):
            raise ValueError("must be an http(s) URL without whitespace")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_json_value(v, MAX_METADATA_BYTES)
        return v

    @model_validator(mode="after")
    def _size_and_checksum(self) -> AirborneFileFields:
        if (self.size is None) != (self.checksum is None):
            raise ValueError("size and checksum must be given together, or neither")
        return self


class AirborneCreateFile(AirborneFileFields, Body):
    pass


class AirborneBulkFiles(Body):
    files: list[AirborneFileFields] = Field(min_length=1, max_length=500)
    skip_duplicates: bool = Field(description="Skip files whose path and tag already exist instead of failing")


class AirborneRetagFile(Body):
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN, description="New tag for the file")


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_key: str = Field(min_length=1, max_length=MAX_FILE_KEY, description="path@version:N or path@tag:T")


class FileListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=256, description="Substring of the path or URL")


class AirborneCreatePackage(Body):
    index: str = Field(min_length=1, max_length=MAX_FILE_KEY, description="File key of the package index")
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN)
    files: list[FileKeyStr] = Field(max_length=1000, description="File keys (path@version:N or path@tag:T)")


class PackageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    package_key: str = Field(min_length=1, max_length=200, description="tag:T or version:N")


class PackageListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=256, description="Substring of the index file path")


# ---------------------------------------------------------------------------------------------
# Dimensions and cohorts


class AirborneCreateDimension(Body):
    dimension: DimensionName = Field(description="Dimension name")
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON schema of the values (standard dimensions only)"
    )
    description: str = Field(max_length=1000)
    dimension_type: Literal["standard", "cohort"] = "standard"
    depends_on: DimensionName | None = Field(default=None, description="Standard dimension a cohort segments")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        check_json_value(v, MAX_SCHEMA_BYTES)
        types = v.get("type")
        listed = types if isinstance(types, list) else [types] if types is not None else []
        if not all(isinstance(t, str) and t in JSON_TYPES for t in listed) or (isinstance(types, list) and not types):
            raise ValueError(f"type must be one of {sorted(JSON_TYPES)} or a list of them")
        if "enum" in v and (not isinstance(v["enum"], list) or not v["enum"]):
            raise ValueError("enum must be a non-empty list")
        return v


class AirborneUpdateDimension(Body):
    position: int | None = Field(default=None, ge=1, le=10_000, description="New position (1 = first)")
    change_reason: str = Field(min_length=1, max_length=1000)


class AirborneCreateCheckpoint(Body):
    name: DimensionName = Field(description="Cohort name")
    value: str = Field(min_length=1, max_length=256, description="Version or string to compare against")
    comparator: Literal["semver_gt", "semver_ge", "str_gt", "str_ge"]


class AirborneCreateGroup(Body):
    name: DimensionName = Field(description="Cohort name")
    members: list[Member] = Field(min_length=1, max_length=10_000, description="Values of the dimension")


class AirbornePriorityMap(Body):
    priority_map: dict[Annotated[str, Field(max_length=64)], Annotated[int, Field(ge=0, le=10_000)]] = Field(
        max_length=1000, description="Group name to priority (0 = evaluated first)"
    )


# ---------------------------------------------------------------------------------------------
# Application configs and releases


def _bounded(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is not None:
        check_json_value(v, MAX_PROPERTIES_BYTES)
    return v


class AirborneAppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    version: str = Field(min_length=1, max_length=64, description="Config version name")
    boot_timeout: Timeout = Field(default=DEFAULT_TIMEOUT_MS, description="Milliseconds")
    package_timeout: Timeout = Field(default=DEFAULT_TIMEOUT_MS, description="Milliseconds")


class AirborneCreateConfig(Body):
    config: AirborneAppConfig
    tenant_info: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None

    _check = field_validator("tenant_info", "properties")(_bounded)


class AirborneReleaseConfig(BaseModel):
    """A release's config overrides; the fields Airborne's CLI sends (``release_config_timeout``,
    ``version``) are accepted too."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    version: str | None = Field(
        default=None, max_length=64, description="Config version name (default: the application config's)"
    )
    boot_timeout: Timeout | None = None
    package_timeout: Timeout | None = None
    release_config_timeout: Timeout | None = Field(
        default=None, description="How long the SDK waits for the release config (served as sent)"
    )
    properties: dict[str, Any] | None = Field(default=None, description="Merged over the application config's")

    _check = field_validator("properties")(_bounded)


class AirborneReleasePackage(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    name: str | None = Field(default=None, max_length=128, description="Package name (Airborne's CLI: its namespace)")
    properties: dict[str, Any] | None = None
    important: list[FileKeyStr] | None = Field(default=None, max_length=1000)
    lazy: list[FileKeyStr] | None = Field(default=None, max_length=1000)

    _check = field_validator("properties")(_bounded)


class AirborneCreateRelease(Body):
    config: AirborneReleaseConfig | None = None
    package_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="version:N or tag:T (default: the newest package)"
    )
    package: AirborneReleasePackage | None = None
    dimensions: dict[DimensionKey, DimensionValue] | None = Field(default=None, max_length=32)
    resources: list[FileKeyStr] | None = Field(default=None, max_length=1000)


class AirborneRamp(Body):
    traffic_percentage: int = Field(ge=0, le=100, description="Percent of traffic on the experimental variant")


class AirborneConclude(Body):
    chosen_variant: str = Field(min_length=1, max_length=200, description="Variant id (or control/experimental)")


class AirborneDiscard(Body):
    pass


class ReleaseListQuery(PageQuery):
    status: str | None = Field(default=None, max_length=20, description="CREATED, INPROGRESS, CONCLUDED or DISCARDED")
