"""Which bundle a device gets, over the real control plane and edge processes (issue 14, items 1-4).

Each test builds its own application through the control plane's HTTP API and asks the edge, as
devices do, for ``GET /release/{org}/{app}``; the expected answer comes from the README's rule
(``tests/e2e/airborne_support.Model``). On the code before issue 14 the specificity, draft, ramp
and ramp-down tests fail (a broad experiment took iOS devices off their iOS release; a 0% draft
blocked Android devices; devices identified only in ``x-dimensions`` never moved; ramping down
answered 400).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.airborne_support import AirborneApp, Device, Owner, fleet, ok, sign_up
from tests.support import services

_apps = itertools.count()


@dataclass
class System:
    admin: httpx.Client
    edge: httpx.Client
    owner: Owner
    organisation: str

    def app(self, *dimensions: str) -> AirborneApp:
        app = AirborneApp(self.owner, self.edge, self.organisation, f"app{next(_apps)}")
        for d in dimensions:
            app.dimension(d)
        app.files()
        return app


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("data")
    with services.control_plane(data) as admin:
        owner = sign_up(admin)
        ok(admin.post("/organisations/create", json={"name": "mobile"}, headers=owner.headers("mobile")))
        with services.edge(data) as edge:
            yield System(admin, edge, owner, "mobile")


def _count(served: dict[str, str | None], devices: list[Device], name: str) -> int:
    return sum(1 for d in devices if served[d.id] == name)


def test_a_broad_experiment_never_overrides_a_more_specific_live_release(system: System) -> None:
    app = system.app("os")
    app.live("pkg2")
    app.live("pkg4", {"os": "ios"})
    broad = app.release("pkg3")
    ok(app.ramp(broad, 50))
    devices = fleet(800, os=["ios", "android"])
    ios = [d for d in devices if d.dims["os"] == "ios"]
    android = [d for d in devices if d.dims["os"] == "android"]
    served = app.served(devices)
    assert _count(served, ios, "pkg4") == len(ios) == 400  # was 207 of 400 on pkg3
    assert 150 <= _count(served, android, "pkg3") <= 250
    assert served == app.expected(devices)


def test_a_draft_or_zero_percent_release_shields_nobody(system: System) -> None:
    app = system.app("os")
    app.live("pkg2")
    broad = app.release("pkg3")
    ok(app.ramp(broad, 50))
    app.release("draft", {"os": "android"})  # forgotten, never ramped
    devices = fleet(400, os=["android"])
    served = app.served(devices)
    assert 150 <= _count(served, devices, "pkg3") <= 250  # was 0 of 400
    assert served == app.expected(devices)


def test_ramps_move_devices_identified_by_toss_or_a_dimension(system: System) -> None:
    app = system.app("os")
    app.live("base")
    nxt = app.release("next")
    devices = fleet(1000, os=["android", "ios"])
    ok(app.ramp(nxt, 30))
    at_30 = app.served(devices)
    for form in range(4):  # ?toss=, device_id, userId and toss dimensions all bucket
        group = [d for d in devices if d.form == form]
        moved = _count(at_30, group, "next")
        assert 0.2 * len(group) <= moved <= 0.4 * len(group), (form, moved)
    assert at_30 == app.expected(devices)
    # A client that sends no identifier at all gets what it would without the experiment until 100%.
    anonymous = app.edge.get(
        f"/release/mobile/{app.application}",
        headers={"x-dimensions": '{"os": "android"}'},
        params={"waitForVersion": app.version()},
    )
    assert ok(anonymous)["config"]["properties"]["which"] == "base"


def test_ramp_down_and_discard_a_ramped_release(system: System) -> None:
    app = system.app("os")
    app.live("base")
    nxt = app.release("next")
    devices = fleet(1000, os=["android"])
    ok(app.ramp(nxt, 30))
    at_30 = app.served(devices)
    ok(app.ramp(nxt, 10))  # was 400: traffic could only go up
    at_10 = app.served(devices)
    assert at_10 == app.served(devices)  # deterministic
    in_30 = {d for d, w in at_30.items() if w == "next"}
    in_10 = {d for d, w in at_10.items() if w == "next"}
    assert in_10 < in_30 and 50 <= len(in_10) <= 150
    assert all(at_10[d] == "base" for d in in_30 - in_10)  # those who left get the live release
    assert at_10 == app.expected(devices)
    ok(app.ramp(nxt, 0))
    assert set(app.served(devices).values()) == {"base"}
    ok(app.ramp(nxt, 20))
    assert app.served(devices) == app.expected(devices)
    app.discard(nxt)  # was 409: only CREATED releases could be discarded
    assert set(app.served(devices).values()) == {"base"}


def test_release_matrix(system: System) -> None:
    """Segment-specific live releases x broad experiments x drafts x ramps up and down, 1,000
    devices, after every step: each device's bundle is the rule's, and raising an experiment's
    traffic only ever moves devices into it."""
    app = system.app("os", "tier")
    devices = fleet(1000, os=["ios", "android", "web"], tier=["free", "pro"])
    steps: list[tuple[str, dict[str, str | None]]] = []

    def check(label: str, raised: str | None = None) -> None:
        served = app.served(devices)
        wrong = {d: (served[d], want) for d, want in app.expected(devices).items() if served[d] != want}
        assert not wrong, f"{label}: {len(wrong)} devices differ from the rule, e.g. {list(wrong.items())[:3]}"
        if raised is not None:
            before = steps[-1][1]
            moved = {d for d in served if served[d] != before[d]}
            assert all(served[d] == raised for d in moved), f"{label}: raising {raised} moved devices elsewhere"
        steps.append((label, served))

    app.live("all-1")
    check("one live release")
    app.live("ios-1", {"os": "ios"})
    check("a live release for iOS")
    broad = app.release("all-2")
    pro = app.release("pro-2", {"tier": "pro"})
    draft = app.release("android-draft", {"os": "android"})
    check("drafts only")
    ok(app.ramp(broad, 20))
    check("broad 20%", raised="all-2")
    ok(app.ramp(broad, 50))
    check("broad 50%", raised="all-2")
    ok(app.ramp(pro, 30))
    check("pro 30%", raised="pro-2")
    ok(app.ramp(pro, 60))
    check("pro 60%", raised="pro-2")
    app.live("web-pro-1", {"os": "web", "tier": "pro"})
    check("a live release for web pro")
    ok(app.ramp(pro, 10))
    check("pro down to 10%")
    ok(app.ramp(broad, 80))
    check("broad 80%", raised="all-2")
    ok(app.ramp(draft, 40))
    check("android 40%", raised="android-draft")
    ok(app.ramp(pro, 0))
    check("pro down to 0%")
    app.discard(broad)
    check("broad discarded")
    ok(app.ramp(draft, 100))
    check("android 100%", raised="android-draft")
    app.conclude(draft, "experimental")
    check("android concluded")
    app.conclude(pro, "control")
    check("pro concluded with control")
    final = steps[-1][1]
    assert {w for d, w in final.items()} == {"all-1", "ios-1", "android-draft", "web-pro-1"}
