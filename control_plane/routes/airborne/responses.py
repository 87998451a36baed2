"""The success bodies of the Airborne routes, as the seed documents them (plus our fields beside),
for ``/openapi.json`` only: the handlers build plain dicts (``*_view`` in each route module), and
``tests/control_plane/test_fuzz_openapi.py`` checks what they answer against these models.

Every model leaves other properties open (an idempotent replay adds ``replayed``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileResponse(_Open):
    id: str = Field(description="path@version:N")
    file_path: str
    url: str
    version: int
    tag: str | None
    size: int = Field(description="Bytes (0 while pending)")
    checksum: str = Field(description="SHA-256 hex ('' while pending)")
    metadata: Any
    status: str = Field(description="ready, or pending until size and checksum are known")
    created_at: str


class FileList(_Open):
    files: list[FileResponse]
    total: int
    page: int
    per_page: int


class BulkFiles(_Open):
    created_files: list[FileResponse]
    skipped_files: list[Any]
    total_created: int
    total_skipped: int


class PackageResponse(_Open):
    index: str
    tag: str | None
    version: int
    files: list[str]
    created_at: str


class PackageList(_Open):
    data: list[PackageResponse]
    total_items: int
    total_pages: int


class DimensionResponse(_Open):
    dimension: str
    position: int
    schema_: Any = Field(alias="schema")
    description: str
    change_reason: str | None
    dimension_type: str
    depends_on: str | None


class DimensionList(_Open):
    data: list[DimensionResponse]
    total_items: int
    total_pages: int


class CohortsResponse(_Open):
    type: str
    enum: list[str] = Field(description="Cohorts in evaluation order, then otherwise")
    definitions: dict[str, Any] = Field(description="JSON Logic of each cohort")


class CheckpointResponse(_Open):
    name: str
    value: str
    comparator: str


class GroupResponse(_Open):
    name: str
    members: list[str]


class PriorityMap(_Open):
    priority_map: dict[str, int]


class ConfigCreated(_Open):
    success: bool
    config_id: str
    version: int
    config_version: str


class ReleaseFile(_Open):
    file_id: str
    file_path: str
    url: str
    checksum: str
    size: int


class ReleasePackage(_Open):
    version: int
    index: ReleaseFile
    properties: Any
    important: list[ReleaseFile]
    lazy: list[ReleaseFile]


class ReleaseExperiment(_Open):
    experiment_id: str
    package_version: int
    config_version: str
    created_at: str
    traffic_percentage: int
    status: str
    chosen_variant: str | None
    concluded_at: str | None


class ReleaseResponse(_Open):
    id: str
    created_at: str
    config: dict[str, Any]
    package: ReleasePackage
    resources: list[ReleaseFile]
    dimensions: dict[str, Any]
    experiment: ReleaseExperiment


class ReleaseDetail(ReleaseResponse):
    experiment_id: str
    org_id: str
    app_id: str
    package_version: int
    config_version: str
    traffic_percentage: int
    status: str


class ReleaseList(_Open):
    data: list[ReleaseResponse]
    total_items: int
    total_pages: int


class ExperimentChange(_Open):
    success: bool
    message: str
    experiment_id: str


class ServedFile(_Open):
    url: str
    file_path: str
    checksum: str | None = Field(default=None, description="SHA-256 hex, once the file is verified")
    size: int | None = Field(default=None, description="Bytes, once the file is verified")


class ServedConfig(_Open):
    version: int
    boot_timeout: int
    package_timeout: int
    properties: dict[str, Any]


class ServedPackage(_Open):
    version: int
    index: str = Field(description="URL of the package's index file")
    properties: Any
    important: list[ServedFile]
    lazy: list[ServedFile]


class ServedRelease(_Open):
    """What a device gets from ``GET /release/{organisation}/{application}``."""

    version: str = Field(description="Config version name")
    config: ServedConfig
    package: ServedPackage
    resources: list[ServedFile]


class ApplicationResponse(_Open):
    application: str = Field(description="The application's name as created")
    organisation: str
    access: list[str]


class OrganisationResponse(_Open):
    name: str
    applications: list[ApplicationResponse]
    access: list[str]


class Member(_Open):
    username: str
    email: str | None
    roles: list[str]
    user_id: str = Field(description="The member's user id (flagedge: change-request reviewers name members by it)")


class MemberList(_Open):
    users: list[Member]


class UserResponse(_Open):
    user_id: str
    organisations: list[OrganisationResponse]


class UserToken(_Open):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class LoginResponse(UserResponse):
    user_token: UserToken


class OAuthConfig(_Open):
    enabled: bool = Field(description="Whether an OIDC issuer is configured (--oidc-issuer)")
    signup: bool = Field(description="Whether /users/oauth/signup creates accounts (--oidc-signup)")


class OAuthUrl(_Open):
    auth_url: str = Field(description="The identity provider's authorization URL to send the browser to")
    state: str = Field(description="Send it back with the code to /users/oauth/login or /users/oauth/signup")
