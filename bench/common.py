"""What every benchmark shares: result records, percentiles, the machine description, local services.

Layer: benchmark support (never deployed, never imported by the app). Figures are ratios against a
baseline measured in the same run wherever the machine's noise would otherwise dominate.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


@dataclass
class Figure:
    """One measured figure, its target and whether the target is met (None: no target)."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None
    notes: str = ""


@dataclass
class Result:
    name: str
    title: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    invocation: str = ""  # the command line that measured it
    date: str = ""

    def add(self, name: str, value: str, target: str = "", met: bool | None = None, notes: str = "") -> None:
        self.figures.append(Figure(name, value, target, met, notes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _version(command: list[str], pattern: str = r"(\d+\.\d+(\.\d+)?)") -> str:
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        return "not installed"
    try:
        text = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    found = re.search(pattern, text)
    return found.group(1) if found else text.strip()[:40] or "unknown"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """The machine and the versions the figures were measured with."""
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = "unknown"
    try:
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    from local.services import AZURITE_VERSION

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "azure-functions": _package("azure-functions"),
        "azure-data-tables": _package("azure-data-tables"),
        "azure-core": _package("azure-core"),
        "redis (py)": _package("redis"),
        "psycopg": _package("psycopg"),
        "werkzeug": _package("werkzeug"),
        "requests": _package("requests"),
        "azurite": AZURITE_VERSION,
        "node": _version(["node", "--version"]),
        "redis-server": _version(["redis-server", "--version"], r"v=(\S+)"),
        "postgresql": _version(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
    }


def save_json(name: str, data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def python() -> str:
    return sys.executable
