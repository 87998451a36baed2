"""Locust scenarios that look like real SDK traffic against one edge (run by ``bench/sdk_traffic.py``).

The target data comes from the JSON file named by ``$FLAGEDGE_BENCH_TARGET`` (the runner writes
it after seeding the demo project)::

    {"publishableKeys": [...], "serverKeys": [...], "organisation": "demo", "application": "demo-app",
     "widgetProjectKey": "...", "flags": ["huddle", ...], "waitScale": 1.0,
     "statusCountsPath": "/tmp/.../status_counts.json"}

User classes (weights are shares of ``-u``; the server SDK is a fixed fleet):

* ``BrowserSdk`` (70): a visitor's tab. Each visit has a unique context (user, company, plan,
  country, app version, page) flattened into ``context.*`` query parameters of
  ``GET /features/evaluated?publishableKey=``; the first poll answers 200 with an ETag, the
  following re-polls of the same context send ``If-None-Match`` and expect 304.
* ``MobileApp`` (12): an Airborne app launching and coming to the foreground:
  ``GET /release/{org}/{app}`` with ``x-dimensions`` (both the JSON and the ``k=v;k2=v2`` form) and
  a stable ``toss``, revalidating with ``If-None-Match``.
* ``ReleaseoWidget`` (8): page loads of the feedback widget, ``GET /sdk/config?key=``; returning
  browsers revalidate their cached copy.
* ``EventsTrickle`` (7): a signed-in session identifying itself (``/user``, ``/company``), then
  flag-check events (``/features/events``), tracks (``/event``), now and then ``/feedback`` and a
  batched ``/bulk``.
* ``ServerSdk`` (``fixed_count`` 2 backend instances): ``GET /features`` with the secret key as
  Bearer, refetching with ``If-None-Match``.

Every request is validated in ``catch_response``: the status must be the one the SDK expects
(200, or 304 when it revalidated) and the JSON shape is spot-checked; for the demo's flags the
evaluated answer is checked against the rules (``huddle`` on for business/enterprise plans with
the ``wide`` variant for ``@acme`` e-mails, ``dark-mode`` for DE/AT on app 2.0.0+). A wrong
answer is a failure. Request names are the routes, so the CSV has one row per route. Status
codes per route are counted and written to ``statusCountsPath`` when locust quits, together with
the complete ``PREFIX_final_stats.csv`` (see ``_write_final``).
"""

from __future__ import annotations

import csv
import json
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from locust import FastHttpUser, User, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

TARGET_ENV = "FLAGEDGE_BENCH_TARGET"

# Request names: one locust stats row per route (bench/sdk_traffic.py lists the same names).
EVALUATED = "/features/evaluated"
DEFINITIONS = "/features"
RELEASE = "/release/{organisation}/{application}"
SDK_CONFIG = "/sdk/config"
FLAG_EVENTS = "/features/events"
TRACK = "/event"
USER = "/user"
COMPANY = "/company"
FEEDBACK = "/feedback"
BULK = "/bulk"

PLANS = ("free", "starter", "pro", "business", "enterprise")
COUNTRIES = ("DE", "AT", "FR", "US", "GB", "IN", "BR", "JP")
APP_VERSIONS = {"1.8.2": False, "1.9.0": False, "2.0.0": True, "2.3.1": True, "3.0.0": True}
DOMAINS = ("acme.com", "example.org", "mail.test", "globex.io")
PAGES = ("/", "/pricing", "/app/dashboard", "/app/settings", "/checkout")
PLATFORMS = ("android", "ios")
CITIES = ("Berlin", "Vienna", "Bangalore", "Sao Paulo", "Austin")
ACCEPTED = b'{"success":true}'


@dataclass(frozen=True)
class Target:
    publishable_keys: list[str]
    server_keys: list[str]
    organisation: str
    application: str
    widget_project_key: str
    flags: list[str]
    wait_scale: float
    status_counts_path: Path | None


@cache
def target() -> Target:
    path = os.environ.get(TARGET_ENV)
    if not path:
        raise RuntimeError(f"${TARGET_ENV} must name the target JSON file (bench/sdk_traffic.py writes it)")
    doc = json.loads(Path(path).read_text())
    status = doc.get("statusCountsPath")
    return Target(
        publishable_keys=list(doc["publishableKeys"]),
        server_keys=list(doc["serverKeys"]),
        organisation=str(doc["organisation"]),
        application=str(doc["application"]),
        widget_project_key=str(doc["widgetProjectKey"]),
        flags=list(doc["flags"]),
        wait_scale=float(doc.get("waitScale", 1.0)),
        status_counts_path=Path(status) if status else None,
    )


def wait_between(low: float, high: float) -> Callable[[User], float]:
    """Like ``locust.between``, scaled by the target's ``waitScale`` (read when the user first waits)."""

    def wait(user: User) -> float:
        return target().wait_scale * random.uniform(low, high)

    return wait


# ---------------------------------------------------------------------------------------------
# Status codes per route, for the runner's summary (304s of re-polls in particular).

status_counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))


def _count_status(name: str, response: Any, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    status_counts[name][str(status)] += 1


def _write_final(environment: Environment, **_: Any) -> None:
    """When locust quits (every user stopped): the status counts, and the complete stats tables.

    Locust rewrites ``PREFIX_stats.csv`` once a second while it runs and not again at the end, so
    that file misses the last second; ``PREFIX_final_stats.csv`` (and ``_final_failures.csv``) has
    the same columns with every request (``_final_exceptions.csv`` likewise).
    """
    if os.environ.get(TARGET_ENV):
        path = target().status_counts_path
        if path is not None:
            path.write_text(json.dumps({name: dict(codes) for name, codes in status_counts.items()}, indent=2))
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        tables = StatsCSV(environment, PERCENTILES_TO_REPORT)
        with open(f"{prefix}_final_stats.csv", "w", newline="") as f:
            tables.requests_csv(csv.writer(f))
        with open(f"{prefix}_final_failures.csv", "w", newline="") as f:
            tables.failures_csv(csv.writer(f))
        with open(f"{prefix}_final_exceptions.csv", "w", newline="") as f:
            tables.exceptions_csv(csv.writer(f))


events.request.add_listener(_count_status)
events.quitting.add_listener(_write_final)


# ---------------------------------------------------------------------------------------------
# Validation helpers.


class WrongAnswer(Exception):
    """The edge answered, but not what this SDK expects."""


def _json_object(response: ResponseContextManager) -> dict[str, Any]:
    try:
        doc = json.loads(response.content or b"")
    except ValueError:
        raise WrongAnswer(f"body is not JSON: {(response.content or b'')[:120]!r}") from None
    if not isinstance(doc, dict):
        raise WrongAnswer("body is not a JSON object")
    return doc


def _header(response: ResponseContextManager, name: str) -> str | None:
    headers = response.headers
    if headers is None:
        return None
    value = headers.get(name)
    return value if isinstance(value, str) else None


def _unexpected(response: ResponseContextManager) -> WrongAnswer:
    """The failure for an unexpected status, without per-request details (so failures group)."""
    reason = (response.content or b"")[:120].decode(errors="replace")
    try:
        error = json.loads(response.content or b"")["error"]
        reason = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        pass
    return WrongAnswer(f"status {response.status_code} ({reason})")


def _check_status(response: ResponseContextManager, sent_etag: str | None) -> bool:
    """True for 200, False for a valid 304 (only after If-None-Match, with no body, same ETag)."""
    if response.status_code == 200:
        if not _header(response, "etag"):
            raise WrongAnswer("200 without an ETag")
        return True
    if response.status_code == 304 and sent_etag is not None:
        if response.content:
            raise WrongAnswer("304 with a body")
        if _header(response, "etag") != sent_etag:
            raise WrongAnswer(f"304 with ETag {_header(response, 'etag')!r}, sent {sent_etag!r}")
        return False
    raise _unexpected(response)


def _validated(response: ResponseContextManager, check: Callable[[], None]) -> None:
    """Mark the request failed when ``check`` raises WrongAnswer, else succeeded."""
    try:
        check()
    except WrongAnswer as e:
        response.failure(str(e))
    except Exception as e:  # a body this check did not foresee: still a failed request, never a lost one
        response.failure(f"unexpected answer: {type(e).__name__}: {e}")
    else:
        response.success()


# ---------------------------------------------------------------------------------------------
# Browser SDKs: /features/evaluated with unique flattened contexts and ETags.


def browser_context() -> dict[str, str]:
    """A unique visitor: flattened ``context.*`` attributes as the Reflag browser SDK sends them."""
    visitor = uuid.uuid4().hex[:16]
    company = uuid.uuid4().hex[:12]
    return {
        "user.id": f"u-{visitor}",
        "user.email": f"{visitor[:8]}@{random.choice(DOMAINS)}",
        "user.country": random.choice(COUNTRIES),
        "user.appVersion": random.choice(list(APP_VERSIONS)),
        "company.id": f"c-{company}",
        "company.plan": random.choice(PLANS),
        "company.employees": str(random.choice((3, 12, 45, 250, 1200))),
        "other.page": random.choice(PAGES),
    }


def check_evaluated(doc: dict[str, Any], context: dict[str, str], flags: list[str]) -> None:
    if doc.get("success") is not True or not isinstance(doc.get("flagStateVersion"), int):
        raise WrongAnswer("missing success/flagStateVersion")
    features = doc.get("features")
    if not isinstance(features, dict):
        raise WrongAnswer("features is not an object")
    for key in flags:
        flag = features.get(key)
        if not isinstance(flag, dict) or not isinstance(flag.get("isEnabled"), bool):
            raise WrongAnswer(f"flag {key} missing or without a boolean isEnabled")
    # The demo's rules, where this target has those flags.
    huddle = features.get("huddle")
    if "huddle" in flags and isinstance(huddle, dict):
        expected = context["company.plan"] in ("business", "enterprise")
        if huddle["isEnabled"] is not expected:
            raise WrongAnswer(f"huddle isEnabled={huddle['isEnabled']} for plan {context['company.plan']}")
        if expected:
            variant = "wide" if "@acme" in context["user.email"] else "default"
            config = huddle.get("config")
            if not isinstance(config, dict) or config.get("key") != variant:
                raise WrongAnswer(f"huddle config {config!r}, expected variant {variant}")
    dark = features.get("dark-mode")
    if "dark-mode" in flags and isinstance(dark, dict):
        expected = context["user.country"] in ("DE", "AT") and APP_VERSIONS[context["user.appVersion"]]
        if dark["isEnabled"] is not expected:
            raise WrongAnswer(
                f"dark-mode isEnabled={dark['isEnabled']} for {context['user.country']} {context['user.appVersion']}"
            )


class BrowserSdk(FastHttpUser):
    """A browser tab: one unique context per visit, re-polled with If-None-Match."""

    weight = 70
    wait_time = wait_between(1.0, 3.0)

    def on_start(self) -> None:
        self.new_visit()

    def new_visit(self) -> None:
        t = target()
        # Most traffic is production; a little comes from developers' machines.
        keys = t.publishable_keys
        self.key = keys[0] if len(keys) == 1 or random.random() < 0.9 else random.choice(keys[1:])
        self.visit_context = browser_context()
        query = {"publishableKey": self.key, **{f"context.{k}": v for k, v in self.visit_context.items()}}
        self.url = f"{EVALUATED}?{urlencode(query, quote_via=quote)}"
        self.etag: str | None = None
        self.polls_left = random.randint(3, 8)

    @task
    def poll(self) -> None:
        if self.polls_left <= 0:
            self.new_visit()
        self.polls_left -= 1
        sent = self.etag
        headers = {"If-None-Match": sent} if sent else {}
        flags = target().flags
        with self.client.get(self.url, name=EVALUATED, headers=headers, catch_response=True) as r:

            def check() -> None:
                if _check_status(r, sent):
                    check_evaluated(_json_object(r), self.visit_context, flags)
                    self.etag = _header(r, "etag")

            _validated(r, check)


# ---------------------------------------------------------------------------------------------
# Server SDKs: /features definitions with the secret key, refetched with ETags.


class ServerSdk(FastHttpUser):
    """A backend instance running the Reflag node SDK in local-evaluation mode."""

    fixed_count = 2
    wait_time = wait_between(5.0, 10.0)

    def on_start(self) -> None:
        self.key = target().server_keys[0]
        self.etag: str | None = None

    @task
    def refetch(self) -> None:
        sent = self.etag
        headers = {"Authorization": f"Bearer {self.key}", **({"If-None-Match": sent} if sent else {})}
        flags = target().flags
        with self.client.get(DEFINITIONS, name=DEFINITIONS, headers=headers, catch_response=True) as r:

            def check() -> None:
                if not _check_status(r, sent):
                    return
                doc = _json_object(r)
                features = doc.get("features")
                if doc.get("success") is not True or not isinstance(features, list):
                    raise WrongAnswer("definitions without success/features list")
                keys = {f.get("key") for f in features if isinstance(f, dict)}
                # Flags a Reflag SDK cannot evaluate locally are listed, with the reason, instead.
                remote = doc.get("remoteEvaluationOnly")
                keys |= {f.get("key") for f in remote if isinstance(f, dict)} if isinstance(remote, list) else set()
                if not set(flags) <= keys:
                    raise WrongAnswer(f"definitions lack {sorted(set(flags) - keys)}")
                if not all(isinstance(f, dict) and isinstance(f.get("targeting"), dict) for f in features):
                    raise WrongAnswer("a definition without targeting")
                self.etag = _header(r, "etag")

            _validated(r, check)


# ---------------------------------------------------------------------------------------------
# Mobile apps: Airborne /release/{org}/{app} with x-dimensions.


class MobileApp(FastHttpUser):
    """An Airborne-powered app: release check at launch and on each return to the foreground."""

    weight = 12
    wait_time = wait_between(2.0, 6.0)

    def on_start(self) -> None:
        t = target()
        self.path = f"/release/{quote(t.organisation, safe='')}/{quote(t.application, safe='')}"
        self.toss = str(random.randrange(10**9))
        dimensions = {
            "platform": random.choice(PLATFORMS),
            "app_version": random.choice(list(APP_VERSIONS)),
            "city": random.choice(CITIES),
        }
        if random.random() < 0.5:
            self.dimensions = json.dumps(dimensions)
        else:
            self.dimensions = ";".join(f"{k}={quote(v)}" for k, v in dimensions.items())
        self.etag: str | None = None

    @task
    def launch(self) -> None:
        sent = self.etag
        headers = {"x-dimensions": self.dimensions, **({"If-None-Match": sent} if sent else {})}
        url = f"{self.path}?toss={self.toss}"
        with self.client.get(url, name=RELEASE, headers=headers, catch_response=True) as r:

            def check() -> None:
                if not _check_status(r, sent):
                    return
                doc = _json_object(r)
                config, package = doc.get("config"), doc.get("package")
                if not isinstance(config, dict) or not isinstance(config.get("boot_timeout"), int):
                    raise WrongAnswer("release without config.boot_timeout")
                if not isinstance(package, dict) or not isinstance(package.get("index"), str) or not package["index"]:
                    raise WrongAnswer("release without package.index")
                if not isinstance(doc.get("resources"), list) or not isinstance(package.get("important"), list):
                    raise WrongAnswer("release without resources/important lists")
                self.etag = _header(r, "etag")

            _validated(r, check)


# ---------------------------------------------------------------------------------------------
# Releaseo widget: /sdk/config page loads.


class ReleaseoWidget(FastHttpUser):
    """Page loads embedding the widget: new browsers fetch, returning ones revalidate."""

    weight = 8
    wait_time = wait_between(2.0, 6.0)

    def on_start(self) -> None:
        self.etag: str | None = None

    @task
    def load(self) -> None:
        project_key = target().widget_project_key
        # About a third of page loads come from a browser without the config cached.
        sent = self.etag if random.random() > 0.35 else None
        headers = {"If-None-Match": sent} if sent else {}
        url = f"{SDK_CONFIG}?{urlencode({'key': project_key})}"
        with self.client.get(url, name=SDK_CONFIG, headers=headers, catch_response=True) as r:

            def check() -> None:
                if not _check_status(r, sent):
                    return
                doc = _json_object(r)
                if doc.get("projectKey") != project_key or not isinstance(doc.get("settings"), dict):
                    raise WrongAnswer("widget config without projectKey/settings")
                if _header(r, "cache-control") != "no-cache":
                    # Revalidated on every load: a changed or removed widget is seen at once.
                    raise WrongAnswer("widget config not marked no-cache")
                self.etag = _header(r, "etag")

            _validated(r, check)


# ---------------------------------------------------------------------------------------------
# Events: a trickle of identify, flag-check, track, feedback and bulk posts.


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventsTrickle(FastHttpUser):
    """A signed-in browser session reporting what its user does."""

    weight = 7
    wait_time = wait_between(1.0, 3.0)

    def on_start(self) -> None:
        t = target()
        self.key = t.publishable_keys[0]
        self.user_id = f"u-{uuid.uuid4().hex[:16]}"
        self.company_id = f"c-{uuid.uuid4().hex[:12]}"
        self.plan = random.choice(PLANS)
        self.post(USER, {"userId": self.user_id, "attributes": {"name": "Ada", "plan": self.plan}})
        self.post(
            COMPANY,
            {"companyId": self.company_id, "userId": self.user_id, "attributes": {"plan": self.plan, "seats": 12}},
        )

    def post(self, route: str, body: Any) -> None:
        url = f"{route}?{urlencode({'publishableKey': self.key})}"
        with self.client.post(url, name=route, json=body, catch_response=True) as r:

            def check() -> None:
                if r.status_code != 200:
                    raise _unexpected(r)
                if r.content != ACCEPTED:
                    raise WrongAnswer(f"not accepted: {(r.content or b'')[:200]!r}")

            _validated(r, check)

    def flag_event(self) -> dict[str, Any]:
        flag = random.choice(target().flags)
        enabled = random.random() < 0.5
        return {
            "action": random.choice(("check", "evaluate", "check-config")),
            "key": flag,
            "targetingVersion": 1,
            "evalContext": {"user": {"id": self.user_id}, "company": {"id": self.company_id, "plan": self.plan}},
            "evalResult": enabled,
            "evalRuleResults": [enabled],
            "evalMissingFields": [],
        }

    @task(8)
    def check_flag(self) -> None:
        self.post(FLAG_EVENTS, self.flag_event())

    @task(4)
    def track(self) -> None:
        event = random.choice(("page-viewed", "checkout-started", "huddle-joined", "settings-saved"))
        body = {
            "event": event,
            "userId": self.user_id,
            "companyId": self.company_id,
            "attributes": {"page": random.choice(PAGES)},
            "timestamp": _now(),
        }
        self.post(TRACK, body)

    @task(1)
    def identify(self) -> None:
        self.post(USER, {"userId": self.user_id, "attributes": {"lastSeen": _now()}})

    @task(1)
    def company(self) -> None:
        self.post(COMPANY, {"companyId": self.company_id, "attributes": {"plan": self.plan}})

    @task(1)
    def feedback(self) -> None:
        body = {
            "key": random.choice(target().flags),
            "userId": self.user_id,
            "companyId": self.company_id,
            "score": random.randint(1, 5),
            "comment": random.choice(("", "love it", "the new layout is confusing")) or None,
        }
        self.post(FEEDBACK, body)

    @task(1)
    def bulk(self) -> None:
        items: list[dict[str, Any]] = [{"type": "feature-flag-event", **self.flag_event()} for _ in range(3)]
        items.append({"type": "event", "event": "page-viewed", "userId": self.user_id, "timestamp": _now()})
        self.post(BULK, items)
