"""`python -m failover`: tables for people, the API JSON with --json, exit codes, no tracebacks.

Runs `failover.cli.main` in-process against a real Azurite table (incidents recorded through the real
service), and the real `python -m failover` entry point in a subprocess twice (working, storage down).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from failover import cli, lookups
from failover.adapters.table_store import TableStore
from failover.config import Settings
from failover.model import Cause, SignalKind, Source
from failover.service import Responder
from tests.builders import T0, signal
from tests.conftest import FakeClock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVER = "pg-cli-01"
NOW = T0 + timedelta(minutes=20)
DEAD_STORAGE = (  # nothing listens on port 9
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1"
)


@dataclass
class Setup:
    store: TableStore
    settings: Settings
    env: dict[str, str]
    incident_id: str


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def setup(azurite: str) -> Iterator[Setup]:
    env = {"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": f"cli{uuid.uuid4().hex[:12]}"}
    settings = cli.cli_settings(env)
    store = TableStore.from_connection_string(azurite, settings.table_name)
    store.ensure_table()
    view = {"primary_zone": "2", "standby_zone": "1", "ha_state": "Healthy"}
    responder = Responder(store=store, clock=FakeClock(NOW))
    outcomes = responder.record_all(
        [
            replace(
                signal(
                    SignalKind.FAILOVER_STARTED,
                    0,
                    server=SERVER,
                    cause=Cause.PLANNED,
                    confidence=3,
                    details={"zone_before": "1"},
                ),
                summary="restart with failover started \x1b[31mby ops\x1b[0m",
            ),
            signal(SignalKind.WRITE_UNAVAILABLE, 14, server=SERVER, source=Source.DB_PROBE),
            signal(
                SignalKind.WRITE_RESTORED,
                26.6,
                server=SERVER,
                source=Source.DB_PROBE,
                details={"downtime_seconds": 12.4},
            ),
            signal(
                SignalKind.FAILOVER_COMPLETED,
                28,
                server=SERVER,
                source=Source.ARM_PROBE,
                details={"view": view},
            ),
            signal(SignalKind.HEALTH_AVAILABLE, 96, server=SERVER),
            # a second, later failover of the same server, still open
            signal(SignalKind.HEALTH_DEGRADED, 3600, server=SERVER, cause=Cause.UNPLANNED, confidence=2),
        ]
    )
    yield Setup(store, settings, env, outcomes[0].incident_id or "")
    store._client.delete_table()


def run(setup: Setup, *argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        list(argv), store=setup.store, settings=setup.settings, clock=lambda: NOW, out=out, err=err
    )
    return Run(code, out.getvalue(), err.getvalue())


def assert_aligned(text: str) -> None:
    """Every column of a table starts at the same offset on every line."""
    lines = [line for line in text.splitlines() if line.strip()]
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[0])]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)


def test_incident_list_is_an_aligned_table(setup: Setup) -> None:
    result = run(setup, "incidents", "--server", SERVER)
    assert result.code == 0, result.err
    table, summary = result.out.split("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == [
        "INCIDENT",
        "STATUS",
        "CAUSE",
        "OPENED",
        "(UTC)",
        "RESTORED",
        "RESOLVED",
        "WRITES",
        "DOWN",
        "ZONES",
    ]
    assert len(lines) == 3
    assert_aligned(table)
    newest, first = lines[1], lines[2]
    assert "open" in newest and "unplanned" in newest and "not measured" in newest
    assert setup.incident_id in first
    assert "resolved" in first and "planned" in first and "2026-11-25 07:16:02" in first
    assert "12.4 s" in first and "1 → 2 (standby 1)" in first and "+26.6 s" in first
    assert summary.strip() == "2 incidents"


def test_json_is_exactly_the_api_json(setup: Setup) -> None:
    listing = run(setup, "incidents", "--server", SERVER, "--json")
    assert json.loads(listing.out) == lookups.list_incidents(
        setup.store, setup.settings, server=SERVER, now=NOW
    )
    one = run(setup, "incident", setup.incident_id, "--json")
    assert json.loads(one.out) == lookups.get_incident(setup.store, setup.settings, setup.incident_id)
    server = run(setup, "server", SERVER, "--json")
    assert json.loads(server.out) == lookups.get_server(setup.store, SERVER)


def test_pages_continue_with_the_printed_token(setup: Setup) -> None:
    first = run(setup, "incidents", "--server", SERVER, "--limit", "1")
    token = re.search(r"^more: --continuation (\S+)$", first.out, re.M)
    assert token is not None
    second = run(setup, "incidents", "--server", SERVER, "--limit", "1", "--continuation", token.group(1))
    assert second.code == 0 and setup.incident_id in second.out


def test_one_incident_reads_like_a_report(setup: Setup) -> None:
    result = run(setup, "incident", setup.incident_id)
    assert result.code == 0
    assert re.search(r"^Write downtime\s+12\.4 s$", result.out, re.M)
    assert re.search(r"^Zones\s+1 → 2 \(standby 1\)$", result.out, re.M)
    assert re.search(r"^Cause\s+planned failover$", result.out, re.M)  # the card's words
    phases = result.out.split("Phases\n")[1].split("\n\n")[0]
    assert [line.split("  ")[0] for line in phases.splitlines()[1:]] == [
        "Detected",
        "Failing over",
        "Writes unavailable",
        "Primary restored",
        "Resolved",
    ]
    assert re.search(r"^Writes unavailable\s+2026-11-25 07:16:16\s+12\.4 s$", phases, re.M)
    assert re.search(r"^Primary restored\s+2026-11-25 07:16:28 UTC \(\+26\.6 s\)$", result.out, re.M)
    timeline = result.out.split("Timeline\n")[1]
    assert timeline.splitlines()[0].split() == ["#", "TIME", "(UTC)", "SOURCE", "KIND", "SUMMARY"]
    assert_aligned(timeline)
    assert "2026-11-25 07:16:02.000" in timeline and "write_restored" in timeline
    assert "\x1b" not in result.out and "?[31mby ops?[0m" in result.out  # no terminal escapes


def test_timeline_as_table_and_as_html(setup: Setup, tmp_path: Path) -> None:
    table = run(setup, "timeline", setup.incident_id)
    assert table.code == 0 and "failover_started" in table.out
    page = tmp_path / "timeline.html"
    result = run(setup, "timeline", setup.incident_id, "--html", str(page))
    assert result.code == 0 and result.out == f"wrote {page}\n"
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "12.4 s" in html


def test_server_state(setup: Setup) -> None:
    result = run(setup, "server", SERVER)
    assert result.code == 0
    assert re.search(r"^Primary zone\s+2$", result.out, re.M)
    assert re.search(rf"^Open incident\s+{SERVER}~\S+$", result.out, re.M)
    assert setup.incident_id in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ("incidents", "--limit", "0"),
        ("incidents", "--server", "PG'"),
        ("incidents", "--since", "yesterday"),
        ("incidents", "--server", SERVER, "--continuation", "forged.token"),
        ("incident", "../state"),
        ("server", "x"),
        ("bogus",),
        (),
        ("incident",),
    ],
)
def test_bad_input_exits_2_with_a_message(setup: Setup, argv: tuple[str, ...]) -> None:
    result = run(setup, *argv)
    assert result.code == 2
    assert result.out == ""
    assert result.err.strip() and "Traceback" not in result.err


def test_unknown_things_exit_1(setup: Setup) -> None:
    for argv in (("incident", "pg-cli-01~20200101T000000Z"), ("server", "pg-nobody")):
        result = run(setup, *argv)
        assert result.code == 1
        assert result.err.startswith("not found: ")


def test_help_and_missing_settings(setup: Setup) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["--help"], out=out, err=err) == 0
    assert "incidents" in out.getvalue() and err.getvalue() == ""
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["server", SERVER], env={}, out=out, err=err) == 2
    assert "AzureWebJobsStorage" in err.getvalue()
    # unrelated settings (probes, Redis, Teams) are not read by the CLI
    env = {**setup.env, "PG_AUTH": "nonsense", "PROBE_MAX_WORKERS": "many"}
    assert cli.main(["server", SERVER], env=env, out=io.StringIO(), err=io.StringIO()) == 0


def test_importing_the_entry_point_does_nothing() -> None:
    module = importlib.import_module("failover.__main__")
    assert module.main is cli.main


def _python_m(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "FAILOVER_TABLE")}
    return subprocess.run(
        [sys.executable, "-m", "failover", *argv],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_real_entry_point(setup: Setup) -> None:
    working = _python_m("incident", setup.incident_id, "--json", env=setup.env)
    assert working.returncode == 0, working.stderr
    assert json.loads(working.stdout)["incident_id"] == setup.incident_id
    down = _python_m(
        "server",
        SERVER,
        env={"AzureWebJobsStorage": DEAD_STORAGE},
    )
    assert down.returncode == 1
    assert down.stderr.startswith("error: table storage unreachable")
    assert "Traceback" not in down.stderr and "a2V5" not in down.stderr
