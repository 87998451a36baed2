"""What DevCycle's SDKs post, checked and handed to the edge's intake (``server.events``).

* ``POST /v1/events/batch`` (server SDKs, ``eventsAPIURI``): ``{"batch": [{"user", "events"}]}``;
* ``POST /v1/events`` (client SDKs, ``apiProxyURL``): ``{"events": [...], "user"}``;
* ``POST /v1/track`` (the cloud bucketing API, ``bucketingAPIURI``): ``{"user", "events"}``.

The key comes in ``Authorization`` (DevCycle's SDKs send the bare key). Each DevCycle event
becomes one intake record of type :data:`EVENT_TYPE` whose event holds DevCycle's own fields
(``type``, ``customType``, ``target``, ``value``, ``date``, ``clientDate``, ``featureVars``,
``metaData``; a ``type`` that is not one of DevCycle's becomes a ``customEvent`` of that
``customType``), ``userId`` (the event's ``user_id``, else its user's) and the ``user`` it was
sent with; the control plane stores it like every SDK event. The answer is DevCycle's: ``201``
with ``{"message": "Successfully received N events."}`` (the server SDK treats anything but 201
as a failed flush and retries it).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from contract.sdk_keys import KINDS
from server.auth import authorization_token, devcycle_key
from server.events import MAX_BULK_ITEMS, MAX_ID_CHARS, MAX_NAME_CHARS, Event, EventIntake, Fields, Invalid

EVENT_TYPE = "devcycle-event"
# DevCycle's own event types; any other ``type`` is a custom event of that type (the client SDK
# converts it before sending, the cloud bucketing API's /v1/track on receipt: so does the edge).
BUILT_IN_TYPES = frozenset(
    {
        "customEvent",
        "variableEvaluated",
        "variableDefaulted",
        "aggVariableEvaluated",
        "aggVariableDefaulted",
        "sdkConfig",
    }
)
MAX_DATE_CHARS = 64


def _number(f: Fields, name: str) -> None:
    value = f.body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise f.fail(name, "must be a finite number")
    f.out[name] = value


def _date(f: Fields, name: str) -> None:
    """Epoch milliseconds, or a date string (the SDKs send either, depending on the route)."""
    value = f.body.get(name)
    if value is None:
        return
    if isinstance(value, str):
        f.text(name, required=False, limit=MAX_DATE_CHARS)
    else:
        _number(f, name)


def _feature_vars(f: Fields) -> None:
    value = f.body.get("featureVars")
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise f.fail("featureVars", "must be an object of feature id → variation id")
    f.obj("featureVars")


def _event(body: Any, prefix: str, user: dict[str, Any] | None) -> Event:
    f = Fields(body, prefix)
    kind = f.text("type", required=True, limit=MAX_NAME_CHARS)
    f.text("customType", required=False)
    if kind not in BUILT_IN_TYPES:
        f.out["type"], f.out["customType"] = "customEvent", kind
    f.text("target", required=False)
    _number(f, "value")
    _date(f, "date")
    _date(f, "clientDate")
    _feature_vars(f)
    f.obj("metaData")
    user_id = f.body.get("user_id")
    if user_id is None and user is not None:
        user_id = user.get("user_id")
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_ID_CHARS:
        raise f.fail("user_id", f"must be a string of 1 to {MAX_ID_CHARS} characters (on the event or its user)")
    f.out["userId"] = user_id
    if user is not None:
        f.out["user"] = user
    return Event(EVENT_TYPE, f.out, None)


def _user(body: Any, prefix: str) -> dict[str, Any] | None:
    """The (populated) user the events were sent with, as an object of bounded size."""
    if not isinstance(body, dict) or body.get("user") is None:
        return None
    f = Fields(body, prefix)
    f.obj("user")
    user: dict[str, Any] = f.out["user"]
    return user


def _events(items: Any, field: str, user: dict[str, Any] | None, out: list[Event]) -> None:
    if not isinstance(items, list):
        raise Invalid(field, "must be an array of events")
    if len(out) + len(items) > MAX_BULK_ITEMS:
        raise Invalid(field, f"at most {MAX_BULK_ITEMS} events per request")
    for i, item in enumerate(items):
        out.append(_event(item, f"{field}[{i}].", user))


def parse_batch(body: Any) -> list[Event]:
    """``{"batch": [{"user": {...}, "events": [...]}, ...]}`` (server SDKs)."""
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise Invalid("batch", "must be an array of {user, events}")
    events: list[Event] = []
    for i, record in enumerate(body["batch"]):
        prefix = f"batch[{i}]."
        if not isinstance(record, dict):
            raise Invalid(f"batch[{i}]", "must be an object {user, events}")
        user = _user(record, prefix)
        if user is None:
            raise Invalid(f"{prefix}user", "is required")
        _events(record.get("events"), f"{prefix}events", user, events)
    return events


def parse_user_events(body: Any) -> list[Event]:
    """``{"user": {...}, "events": [...]}`` (client SDKs' ``/v1/events``, the API's ``/v1/track``)."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object {user, events}")
    events: list[Event] = []
    _events(body.get("events"), "events", _user(body, ""), events)
    return events


def accepted_message(count: int) -> dict[str, str]:
    return {"message": f"Successfully received {count} events."}


Parse = Callable[[Any], list[Event]]


class EventRoutes:
    """The DevCycle event handlers of one worker, over the worker's one intake."""

    def __init__(self, intake: EventIntake) -> None:
        self.intake = intake
        # /v1/events/batch (server SDKs); /v1/events (client SDKs) and /v1/track (bucketing API).
        self.batch = self._endpoint(parse_batch)
        self.user_events = self._endpoint(parse_user_events)

    def _endpoint(self, parse: Parse) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            view = self.intake.edge.state.view
            key = devcycle_key(view, authorization_token(request), KINDS, where="the Authorization header")
            count = await self.intake.admit(request, key, parse, bulk=True)
            body = orjson.dumps(accepted_message(count))
            return Response(body, status_code=201, media_type="application/json")

        return receive
