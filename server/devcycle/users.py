"""DevCycle users as the edge receives them, checked and reduced to what bucketing reads.

Three ways in, one shape out (a DevCycle user dict for ``Snapshot.devcycle_json``):

* :func:`from_query`: ``GET /v1/sdkConfig`` as ``@devcycle/js-client-sdk`` sends it (every user
  property a query parameter; ``customData``/``privateCustomData`` JSON text, so their values
  keep their types; ``isAnonymous`` ``true``/``false``; dates as epoch milliseconds);
* :func:`from_body`: the bucketing API's JSON body (a DevCycle populated user);
* :func:`from_openfeature`: a flat OpenFeature evaluation context, mapped the way DevCycle's own
  OpenFeature provider (``DevCycleProvider.devcycleUserFromContext`` of
  ``@devcycle/nodejs-server-sdk``) maps it: ``targetingKey`` (else ``user_id``, else ``userId``)
  is the user id; ``email``, ``name``, ``language``, ``country``, ``appVersion`` (strings) and
  ``appBuild`` (a number) are user properties, dropped when of another type; ``customData`` and
  ``privateCustomData`` objects are merged in (their flat values only); every other key with a
  string, number, boolean or null value goes into ``customData``, objects and arrays are dropped.

Bad input is an :class:`Invalid` naming the field; the routes answer it as 400 in their API's
shape (DevCycle's, or OFREP's ``INVALID_CONTEXT``/``TARGETING_KEY_MISSING``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

User = dict[str, Any]

# The user properties DevCycle's bucketing reads or carries, by JSON type.
STRING_FIELDS = (
    "user_id",
    "email",
    "name",
    "language",
    "country",
    "appVersion",
    "platform",
    "platformVersion",
    "deviceModel",
    "sdkType",
    "sdkVersion",
    "sdkPlatform",
    "hostname",
)
NUMBER_FIELDS = ("appBuild",)
DATA_FIELDS = ("customData", "privateCustomData")

MAX_TEXT_CHARS = 1024
# DevCycleUser refuses longer ids.
MAX_USER_ID_CHARS = 200
MAX_DATA_KEYS = 500
MAX_DATA_TEXT_CHARS = 10_000

# DevCycleProvider's DVCKnownPropertyKeyTypes: OpenFeature context keys that are user properties.
OPENFEATURE_STRINGS = ("email", "name", "language", "country", "appVersion")
OPENFEATURE_NUMBERS = ("appBuild",)
OPENFEATURE_ID_KEYS = ("targetingKey", "user_id", "userId")


class Invalid(ValueError):
    """A user that cannot be bucketed: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = f"{field} {message}"


class MissingUserId(Invalid):
    """No usable user id (OFREP answers it as TARGETING_KEY_MISSING)."""


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise Invalid(field, f"must be at most {MAX_TEXT_CHARS} characters")
    return value


def _number(field: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(field, "must be a finite number")
    return value


def _data(field: str, value: Any) -> dict[str, Any]:
    """customData: an object of strings, finite numbers, booleans and nulls (DevCycle's flat JSON)."""
    if not isinstance(value, dict):
        raise Invalid(field, "must be a JSON object")
    if len(value) > MAX_DATA_KEYS:
        raise Invalid(field, f"must have at most {MAX_DATA_KEYS} keys")
    for key, item in value.items():
        if isinstance(item, str):
            if len(item) > MAX_DATA_TEXT_CHARS:
                raise Invalid(f"{field}.{key}", f"must be at most {MAX_DATA_TEXT_CHARS} characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise Invalid(f"{field}.{key}", "must be a finite number")
        elif item is not None and not isinstance(item, bool | int | float):
            raise Invalid(f"{field}.{key}", "must be a string, number, boolean or null")
    return value


def _require_id(user: User, field: str = "user_id") -> User:
    user_id = user.get("user_id")
    if not user_id:
        raise MissingUserId(field, "is required")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise Invalid(field, f"must be at most {MAX_USER_ID_CHARS} characters")
    return user


def from_body(body: Any) -> User:
    """The user of a bucketing-API request body."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object (a DevCycle user)")
    user: User = {}
    for name in STRING_FIELDS:
        if body.get(name) is not None:
            user[name] = _text(name, body[name])
    for name in NUMBER_FIELDS:
        if body.get(name) is not None:
            user[name] = _number(name, body[name])
    for name in DATA_FIELDS:
        if body.get(name) is not None:
            user[name] = _data(name, body[name])
    if body.get("isAnonymous") is not None:
        if not isinstance(body["isAnonymous"], bool):
            raise Invalid("isAnonymous", "must be a boolean")
        user["isAnonymous"] = body["isAnonymous"]
    return _require_id(user)


def from_query(pairs: Iterable[tuple[str, str]]) -> User:
    """The user of ``GET /v1/sdkConfig`` from its query parameters (the last of a repeated one)."""
    params = dict(pairs)
    user: User = {}
    for name in STRING_FIELDS:
        if name in params:
            user[name] = _text(name, params[name])
    for name in NUMBER_FIELDS:
        if name in params:
            try:
                user[name] = _number(name, float(params[name]))
            except ValueError:
                raise Invalid(name, "must be a number") from None
    for name in DATA_FIELDS:
        if name in params:
            try:
                user[name] = _data(name, orjson.loads(params[name]))
            except orjson.JSONDecodeError:
                raise Invalid(name, "must be a JSON object") from None
    if "isAnonymous" in params:
        if params["isAnonymous"] not in ("true", "false"):
            raise Invalid("isAnonymous", "must be true or false")
        user["isAnonymous"] = params["isAnonymous"] == "true"
    return _require_id(user)


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """convertToDVCCustomDataJSON: the string, number, boolean and null values of an object."""
    return {k: v for k, v in values.items() if v is None or isinstance(v, str | bool | int | float)}


def from_openfeature(context: Mapping[str, Any]) -> User:
    """The DevCycle user of a flat OpenFeature context, as DevCycle's OpenFeature provider maps it."""
    user_id = next((context[k] for k in OPENFEATURE_ID_KEYS if context.get(k)), None)
    if user_id is None:
        raise MissingUserId("targetingKey", "is required (or user_id / userId)")
    if not isinstance(user_id, str):
        raise MissingUserId("targetingKey", "must be a string")
    user: User = {"user_id": _text("targetingKey", user_id)}
    custom: dict[str, Any] = {}
    private: dict[str, Any] = {}
    for key, value in context.items():
        if key in OPENFEATURE_ID_KEYS:
            continue
        if key in OPENFEATURE_STRINGS:
            if isinstance(value, str):
                user[key] = _text(key, value)
        elif key in OPENFEATURE_NUMBERS:
            if isinstance(value, int | float) and not isinstance(value, bool):
                user[key] = _number(key, value)
        elif key == "customData":
            if isinstance(value, dict):
                custom.update(_flat(value))
        elif key == "privateCustomData":
            if isinstance(value, dict):
                private = _flat(value)
        elif value is None or isinstance(value, str | bool | int | float):
            custom[key] = value
    if custom:
        user["customData"] = _data("customData", custom)
    if private:
        user["privateCustomData"] = _data("privateCustomData", private)
    return _require_id(user, "targetingKey")
