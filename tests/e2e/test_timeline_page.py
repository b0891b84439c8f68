"""The timeline page in a real browser: headless Chromium renders it offline and runs nothing from it.

A realistic planned failover (restart with failover, Resource Health degraded, HA FailingOver, zones
1 -> 2, writes unavailable 12.4 s, writes back, HA ReplicatingData, Resource Health available, standby
rebuilt, resolved; verification steps; Teams and PagerDuty notifications) with two hostile payload
values, built from the domain values the lookups hand the page. Chromium
(`/usr/lib/chromium/chromium`, never a downloaded browser; network pointed at a dead loopback proxy)
dumps the DOM after load and takes a screenshot.
The test fails, never skips, when Chromium is missing.

    UPDATE_DOCS=1 .venv/bin/python -m pytest tests/e2e/test_timeline_page.py   # rewrites docs/timeline.png
                                                   # and docs/timeline-verification.png

A second page: one server of a zone outage, with its six verification steps worded by
`failover.verification.judge` and the zone-outage digest it was part of (links to the digest and
to the other servers' timelines).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.model import EffectStatus, Notification, TimelineEntry, Transition
from failover.presentation import DigestLink, DigestMember, IncidentView, VerificationStep
from failover.timeline_html import render_timeline_page
from tests.builders import incident as planned_incident

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/lib/chromium/chromium"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=NetworkTimeServiceQuerying",
    "--proxy-server=127.0.0.1:9",  # nothing leaves the machine; file:// is not proxied
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WINDOW = (1280, 2640)
T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)
SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "<img src=x onerror=\"document.title='PWNED-IMG';document.body.dataset.pwned=1\">"
SERVER = "pg-prod-01"
RESOURCE = (
    "/subscriptions/5f1c0000-0000-0000-0000-00000000c0de/resourceGroups/rg-payments-data/providers/"
    f"Microsoft.DBforPostgreSQL/flexibleServers/{SERVER}"
)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _entry(
    seconds: float, source: str, kind: str, summary: str, signal_id: str, **details: Any
) -> TimelineEntry:
    return TimelineEntry(_at(seconds), source, kind, summary, signal_id, details)


def _ha(seconds: float, before: str, after: str, version: int) -> TimelineEntry:
    return _entry(
        seconds,
        "arm_probe",
        "ha_state_changed",
        f"Management API: High availability state {before} -> {after}",
        f"arm_probe:pg-prod-01:ha_state:{before}>{after}:v{version}",
        ha_state=after,
        previous_ha_state=before,
    )


def planned_failover() -> IncidentView:
    """A planned failover as the lookups see it (domain values), with two hostile values inside."""
    timeline = [
        _entry(
            0.0,
            "monitor_alert",
            "failover_started",
            f"Activity Log: restart with failover (PlannedFailover) started by {SCRIPT}",
            "monitor_alert:activitylog:3f2a9c1e-7d44-4b0e-9a51-1f0c2d3e4f5a",
        ),
        _entry(
            5.8,
            "monitor_alert",
            "health_degraded",
            "Resource Health: Degraded (UserInitiated): a planned failover is in progress",
            "monitor_alert:resourcehealth:8c1b2a3d-0e4f-4a5b-8c6d-7e8f9a0b1c2d",
        ),
        _ha(9.6, "Healthy", "FailingOver", 41),
        _entry(
            14.2,
            "db_probe",
            "write_unavailable",
            "Database probe: writes refused (server closed the connection unexpectedly)",
            "db_probe:pg-prod-01:write_unavailable:20261125T071616Z",
        ),
        _entry(
            26.6,
            "db_probe",
            "write_restored",
            "Database probe: writes succeed again after 12.4 s (new primary, not in recovery)",
            "db_probe:pg-prod-01:write_restored:20261125T071628Z",
            downtime_seconds=12.4,
        ),
        _entry(
            28.3,
            "arm_probe",
            "failover_completed",
            "Management API: Primary moved from zone 1 to zone 2 (standby zone 1)",
            "arm_probe:pg-prod-01:primary_zone:1>2:v42",
            ha_state="FailingOver",
            zone_before="1",
        ),
        _entry(
            29.1,
            "db_probe",
            "postmaster_restarted",
            "Database probe: PostgreSQL started at 07:16:29 (postmaster restarted)",
            "db_probe:pg-prod-01:postmaster_restarted:20261125T071629Z",
        ),
        _entry(
            41.7,
            "event_grid",
            "failover_completed",
            "Event Grid: restart with failover succeeded (ResourceActionSuccess)",
            f"event_grid:9d3e0f1a-2b4c-4d5e-8f60-718293a4b5c6 {IMG}",
        ),
        _ha(58.0, "FailingOver", "ReplicatingData", 43),
        _entry(
            96.0,
            "monitor_alert",
            "health_available",
            "Resource Health: Available: the server is running normally",
            "monitor_alert:resourcehealth:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        ),
        _ha(318.4, "ReplicatingData", "Healthy", 44),
        _entry(
            318.4,
            "arm_probe",
            "server_state_changed",
            "Management API: Server state Updating -> Ready",
            "arm_probe:pg-prod-01:state:Updating>Ready:v44",
            ha_state="Healthy",
        ),
    ]
    incident = planned_incident(
        Transition.RESOLVED,
        server=SERVER,
        resource_id=RESOURCE,
        last_signal_at=_at(318.4),
        primary_restored_at=_at(26.6),
        resolved_at=_at(318.4),
        primary_zone_before="1",
        primary_zone_after="2",
        standby_zone_after="1",
        ha_state="Healthy",
        write_downtime_seconds=12.4,
        signal_count=len(timeline),
        detected_at=_at(14.9),
        azure_alert_at=_at(131.0),
        notifications=(
            Notification(Transition.OPENED, EffectStatus.DONE, _at(15.9)),
            Notification(Transition.OPENED, EffectStatus.DONE, _at(16.2), channel="pagerduty"),
            Notification(Transition.PRIMARY_RESTORED, EffectStatus.DONE, _at(27.8)),
            Notification(Transition.RESOLVED, EffectStatus.DONE, _at(619.0)),
            Notification(Transition.RESOLVED, EffectStatus.DONE, _at(619.4), channel="pagerduty"),
        ),
    )
    return IncidentView.of(incident, timeline, verification=VERIFICATION)


VERIFICATION = tuple(
    VerificationStep(check, status, _at(seconds), detail)
    for check, status, seconds, detail in (
        ("writer_writable", "passed", 27.0, "zone 2 accepts writes and is not in recovery"),
        ("standby_healthy", "passed", 318.4, "HA Healthy again; the standby took 4 min 50 s to rebuild"),
        ("replicas_following", "passed", 331.0, "pg-prod-01-r1 Active, lag 0.4 s"),
        ("slots_synced", "skipped", 331.0, "no logical replication slots"),
        (
            "zone_alignment",
            "failed",
            331.0,
            "primary in zone 2, applications in zone 1: plan a failover back",
        ),
    )
)


def run_chromium(page: Path, *, screenshot: Path | None = None, window: tuple[int, int] = WINDOW) -> str:
    """The DOM after the load event (and a window-sized PNG when asked)."""
    assert CHROMIUM.exists(), (
        f"Chromium not found at {CHROMIUM}: apt-get install -y --no-install-recommends chromium"
    )
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        args = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        args += ["--dump-dom", page.as_uri()]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), "Chromium dumped an empty DOM"
    return proc.stdout


def _page_file(view: IncidentView, path: Path) -> tuple[str, Path]:
    """The page of `view` as the lookups render it 15 minutes after the opening, written to `path`."""
    page = render_timeline_page(view, now=T0 + timedelta(minutes=15))
    path.write_text(page, encoding="utf-8")
    return page, path


def _check_screenshot(png: Path, window: tuple[int, int], docs_name: str) -> None:
    """A window-sized PNG of a rendered page (not a blank window); copied to docs/ with UPDATE_DOCS=1."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == window
    assert len(data) > 60_000
    if os.environ.get("UPDATE_DOCS") == "1":
        shutil.copyfile(png, REPO / "docs" / docs_name)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The page rendered once with its CSP (screenshot), once without it (escaping alone)."""
    folder = tmp_path_factory.mktemp("timeline")
    page, with_csp = _page_file(planned_failover(), folder / "timeline.html")
    csp_meta = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', page)
    assert csp_meta is not None
    without_csp = folder / "timeline-no-csp.html"
    without_csp.write_text(page.replace(csp_meta.group(0), ""), encoding="utf-8")
    shot = folder / "timeline.png"
    return {
        "html": page,
        "dom": run_chromium(with_csp, screenshot=shot),
        "dom_without_csp": run_chromium(without_csp),
        "png": shot,
    }


def _title(dom: str) -> str:
    match = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert match is not None
    return html.unescape(match.group(1))


def _text(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def test_phases_downtime_and_zones_are_shown(rendered: dict[str, Any]) -> None:
    text = _text(rendered["dom"])
    for label in (
        "Detected",
        "Failing over",
        "Writes unavailable",
        "Primary restored",
        "Standby rebuilt",
        "Resolved",
    ):
        assert label in text, label
    assert "Client write downtime" in text
    assert "12.4 s" in text
    assert "1 → 2" in text
    assert "planned" in text
    for source in ("Monitor alerts", "Event Grid", "Management API probe", "Database probe", "Responder"):
        assert source in text, source
    assert "HA state" in text and "ReplicatingData" in text  # from the entries' details
    assert "Verification after the failover" in text and "Zone alignment" in text
    assert "PagerDuty" in text
    # verification, notifications and entries tables: header row and one row each
    assert rendered["dom"].count("<tr") == (1 + 5) + (1 + 5) + (1 + 12)


def test_injected_markup_never_runs_even_without_csp(rendered: dict[str, Any]) -> None:
    for dom in (rendered["dom"], rendered["dom_without_csp"]):
        assert _title(dom) == "Failover of pg-prod-01 2026-11-25 07:16 UTC (resolved)"
        assert "PWNED" not in _title(dom)
        assert "data-pwned" not in dom
        assert "<script" not in dom.lower()
        assert "<img" not in dom.lower()
        # The hostile values are shown as text, for people to read.
        assert SCRIPT in _text(dom)
        assert IMG in _text(dom)


def test_page_loads_nothing_and_has_no_script(rendered: dict[str, Any]) -> None:
    page = rendered["html"]
    assert not re.search(r"<(script|link|iframe|object|embed|img)\b", page, re.I)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\s(src|href|on[a-z]+)\s*=", t, re.I)]
    assert "url(" not in page
    assert "@import" not in page


def test_screenshot_is_written_and_saved_for_docs(rendered: dict[str, Any]) -> None:
    _check_screenshot(rendered["png"], WINDOW, "timeline.png")


# --- a server of a zone outage, verified step by step (docs/timeline-verification.png) -------------

ZONE_SERVER = "pg-orders-prod"
ZONE_NAMES = ("billing", "catalog", "checkout", "inventory", "ledger", "loyalty", "orders", "payments")
VERIFY_WINDOW = (1280, 2600)
ORDERS_OPENED = T0 + timedelta(seconds=6 * ZONE_NAMES.index("orders"))


def _verified_steps() -> tuple[VerificationStep, ...]:
    """The six steps as `failover.verification.judge` words them: two looks after primary restored."""
    from failover.ports import DbObservation, ReplicaView, ServerView, SlotView
    from failover.verification import Observation, Step, VerifyPolicy, judge

    def view(ha: str) -> ServerView:
        replicas = tuple(
            ReplicaView(f"{ZONE_SERVER}-r{n}", f"{RESOURCE}-r{n}", None, "westeurope", "Active")
            for n in (1, 2)
        )
        return ServerView(RESOURCE, ZONE_SERVER, "westeurope", "Ready", "ZoneRedundant", ha, "2", "1", None,
                          "Primary", replicas)  # fmt: skip

    db = DbObservation(
        True, True, False, slots=(SlotView("debezium_orders", "pgoutput", True, True, True),),
        tables_with_reset_counters=14,
    )  # fmt: skip
    restored = ORDERS_OPENED + timedelta(seconds=25.0)  # the orders server's primary restored
    policy = VerifyPolicy(app_zones=("1",))
    looks = ((27.0, "ReplicatingData"), (312.4, "Healthy"))
    steps: tuple[Step, ...] = ()
    for seconds, ha in looks:
        seen = Observation(ORDERS_OPENED + timedelta(seconds=seconds), view(ha), db)
        steps = judge(seen, steps, restored_at=restored, policy=policy)
    found = (VerificationStep.from_public(s.to_public()) for s in steps)
    return tuple(step for step in found if step is not None)


def _zone_digest() -> DigestLink:
    """The digest window of the eight servers, one opening every 6 s from T0."""
    ids = [
        f"pg-{name}-prod~{T0 + timedelta(seconds=6 * n):%Y%m%dT%H%M%SZ}" for n, name in enumerate(ZONE_NAMES)
    ]
    outage = f"westeurope~{T0:%Y%m%dT%H%M%SZ}"
    members = tuple(
        DigestMember(f"pg-{name}-prod", incident_id, "unplanned", "resolved")
        for name, incident_id in zip(ZONE_NAMES, ids, strict=True)
    )
    return DigestLink(outage, f"{outage}~w0", T0, T0 + timedelta(seconds=120), members)


def zone_outage_failover() -> IncidentView:
    """One of eight servers of westeurope that failed over together, verified after the failover."""
    from failover.model import Cause

    at = ORDERS_OPENED
    moved = (at - T0).total_seconds()

    def ha(seconds: float, before: str, after: str) -> TimelineEntry:
        return _entry(
            moved + seconds,
            "arm_probe",
            "ha_state_changed",
            f"Management API: High availability state {before} -> {after}",
            f"arm_probe:{ZONE_SERVER}:ha_state:{before}>{after}",
            ha_state=after,
            previous_ha_state=before,
        )

    timeline = [
        _entry(moved, "monitor_alert", "health_degraded",
               "Resource Health: Degraded (PlatformInitiated): the availability zone is unavailable",
               "monitor_alert:resourcehealth:5e2a9c1e-7d44-4b0e-9a51-1f0c2d3e4f5a"),
        ha(2.1, "Healthy", "FailingOver"),
        _entry(moved + 3.0, "db_probe", "write_unavailable", "Database probe: writes refused (refused)",
               f"db_probe:{ZONE_SERVER}:write_unavailable:{at + timedelta(seconds=3):%Y%m%dT%H%M%SZ}"),
        _entry(moved + 25.0, "db_probe", "write_restored", "Database probe: writes succeed after 22.0 s",
               f"db_probe:{ZONE_SERVER}:write_restored:{at + timedelta(seconds=25):%Y%m%dT%H%M%SZ}",
               downtime_seconds=22.0),
        _entry(moved + 27.5, "arm_probe", "failover_completed",
               "Management API: Primary moved from zone 1 to zone 2 (standby zone 1)",
               f"arm_probe:{ZONE_SERVER}:primary_zone:1>2", ha_state="FailingOver", zone_before="1"),
        ha(52.0, "FailingOver", "ReplicatingData"),
        ha(312.4, "ReplicatingData", "Healthy"),
    ]  # fmt: skip
    incident = planned_incident(
        Transition.RESOLVED,
        server=ZONE_SERVER,
        incident_id=f"{ZONE_SERVER}~{at:%Y%m%dT%H%M%SZ}",
        resource_id=RESOURCE.replace(SERVER, ZONE_SERVER),
        cause=Cause.UNPLANNED,
        opened_at=at,
        last_signal_at=at + timedelta(seconds=312.4),
        primary_restored_at=at + timedelta(seconds=25.0),
        resolved_at=at + timedelta(seconds=312.4),
        ha_state="Healthy",
        write_downtime_seconds=22.0,
        signal_count=len(timeline),
        detected_at=at + timedelta(seconds=3.5),
        azure_alert_at=at + timedelta(seconds=140.0),
        notifications=(),
    )
    return IncidentView.of(incident, timeline, verification=_verified_steps(), digest=_zone_digest())


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("verified")
    page, path = _page_file(zone_outage_failover(), folder / "timeline-verification.html")
    shot = folder / "timeline-verification.png"
    return {"html": page, "dom": run_chromium(path, screenshot=shot, window=VERIFY_WINDOW), "png": shot}


def test_the_verification_steps_and_the_zone_digest_are_on_the_page(verified: dict[str, Any]) -> None:
    text = _text(verified["dom"])
    assert "Verification after the failover" in text
    for check in ("Writer writable", "Standby healthy", "Replicas following", "Slots synced", "Statistics",
                  "Zone alignment"):  # fmt: skip
        assert check in text, check
    assert "run ANALYZE (the whole database)" in text and "plan a planned failover back" in text
    assert "Zone outage" in text and "tells them in one Teams card per window" in text
    dom = verified["dom"]
    assert 'href="../../digests/westeurope~20261125T071602Z"' in dom
    others = [n for n in ZONE_NAMES if n != "orders"]
    assert all(re.search(rf'href="../pg-{n}-prod~20261125T0716\d\dZ/timeline"', dom) for n in others)
    assert "(this page)" in text


def test_the_verification_screenshot_is_written_and_saved_for_docs(verified: dict[str, Any]) -> None:
    _check_screenshot(verified["png"], VERIFY_WINDOW, "timeline-verification.png")
