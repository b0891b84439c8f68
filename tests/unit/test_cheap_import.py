"""Invariant 8: importing the app does no I/O and loads no SDK it does not need to index functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "azure.mgmt",
    "azure.data",
    "azure.identity",
    "azure.core",
    "redis",
    "psycopg",
    "requests",
    "urllib3",
)

PROBE = """
import json, socket, sys
opened = []
real_connect = socket.socket.connect
def spy(self, address):
    opened.append(repr(address))
    return real_connect(self, address)
socket.socket.connect = spy
real_open = open
import builtins
files = []
def open_spy(file, *args, **kwargs):
    files.append(str(file))
    return real_open(file, *args, **kwargs)
builtins.open = open_spy
import function_app
builtins.open = real_open
print(json.dumps({"modules": sorted(sys.modules), "connections": opened, "files": files}))
"""


def _import_report() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_loads_no_client_sdk_and_does_no_io():
    report = _import_report()
    loaded = [m for m in report["modules"] if m.startswith(FORBIDDEN)]
    assert loaded == []
    assert report["connections"] == []
    assert report["files"] == []
