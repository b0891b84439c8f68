"""Cold start: the wall time of importing the app against importing the bare Functions library.

`python -c "import function_app"` is what the Python worker does to index the app; the baseline is
`python -c "import azure.functions"`, which every Functions app pays anyway. Both run alternately in
fresh interpreters, and the figure is the ratio of the medians.

Measured as a deployed worker pays it: the app is imported from `dist/app.zip` unpacked into a
fresh folder (what run-from-package mounts), with `PYTHONDONTWRITEBYTECODE=1` (the mount is
read-only, so nothing compiled at start is kept). The package ships unchecked-hash bytecode
(scripts/package.py); the same package built without it, measured in the same run, shows what
compiling every module on every cold start costs. Target: at most 1.1x.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from bench.common import Result, python, save_json

BASELINE = "import azure.functions"
APP = "import function_app"
TARGET = 1.1


def _env(app_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a read-only mount: nothing compiled at start is kept
    env["PYTHONPATH"] = str(app_dir)
    return env


def _unpacked(folder: Path, *, bytecode: bool) -> Path:
    """dist/app.zip as scripts/package.py builds it, unpacked into `folder`."""
    from scripts.package import build

    archive = folder / ("app.zip" if bytecode else "app-nobytecode.zip")
    build(archive, bytecode=bytecode)
    target = folder / archive.stem
    with zipfile.ZipFile(archive) as unzip:
        unzip.extractall(target)
    return target


def _once(code: str, env: dict[str, str], cwd: Path) -> float:
    """Wall time of one fresh interpreter running `code`.

    A blocking wait, not `subprocess.run(timeout=...)`: with a timeout, `Popen.wait` polls with
    sleeps of up to 50 ms, which would quantise a 100 ms measurement. A timer kills a child that
    hangs, so the wait is still bounded.
    """
    started = time.perf_counter()
    process = subprocess.Popen([python(), "-c", code], cwd=cwd, env=env)
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        returncode = process.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"{code!r} exited with {returncode}")
    return elapsed


def _import_costs(env: dict[str, str], cwd: Path) -> tuple[float, list[tuple[str, float]]]:
    """Self import time of every module the app loads beyond azure.functions: total and the largest."""

    def table(code: str) -> dict[str, float]:
        done = subprocess.run(
            [python(), "-X", "importtime", "-c", code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        costs: dict[str, float] = {}
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| *(\S+)", line)
            if match:
                costs[match.group(3)] = int(match.group(1)) / 1e6
        return costs

    base, app = table(BASELINE), table(APP)
    extra = {name: seconds for name, seconds in app.items() if name not in base}
    return sum(extra.values()), sorted(extra.items(), key=lambda item: -item[1])[:8]


def run(*, quick: bool = False) -> Result:
    runs = 15 if quick else 25
    result = Result(
        "cold_start",
        "Cold start: importing the app from the deployment package vs importing azure.functions",
        f'python -c "{APP}" from dist/app.zip unpacked, PYTHONDONTWRITEBYTECODE=1, vs python -c "{BASELINE}",'
        f" {runs} alternating runs each",
    )
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        shipped = _unpacked(Path(tmp), bytecode=True)
        bare = _unpacked(Path(tmp), bytecode=False)
        cases = {
            "baseline": (BASELINE, _env(shipped), shipped),
            "app": (APP, _env(shipped), shipped),
            "app without bytecode": (APP, _env(bare), bare),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for name in (*cases, *cases):  # warm the page cache
            _once(*cases[name])
        for n in range(runs):
            order = list(cases) if n % 2 == 0 else list(reversed(cases))
            for name in order:
                times[name].append(_once(*cases[name]))
        total, largest = _import_costs(_env(shipped), shipped)
    base, app, bare_app = times["baseline"], times["app"], times["app without bytecode"]
    ratio = statistics.median(app) / statistics.median(base)
    result.add("import function_app (median)", f"{statistics.median(app) * 1000:.1f} ms")
    result.add("import azure.functions (median, baseline)", f"{statistics.median(base) * 1000:.1f} ms")
    result.add(
        "ratio app / baseline",
        f"{ratio:.2f}x",
        f"<= {TARGET}x",
        ratio <= TARGET,
        f"{runs} runs each; spread app {min(app) * 1000:.0f}-{max(app) * 1000:.0f} ms, "
        f"baseline {min(base) * 1000:.0f}-{max(base) * 1000:.0f} ms",
    )
    result.add("ratio of the fastest runs", f"{min(app) / min(base):.2f}x", notes="less sensitive to noise")
    result.add(
        "the same package without bytecode (compiled at every start): ratio",
        f"{statistics.median(bare_app) / statistics.median(base):.2f}x",
        notes=f"median {statistics.median(bare_app) * 1000:.1f} ms; what the package shipped before",
    )
    result.notes.append(
        f"Modules the app loads beyond azure.functions take {total * 1000:.1f} ms of import time in all"
        " (`-X importtime`, self time, from the package with bytecode); the largest: "
        + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in largest)
        + ". No SDK client is imported."
    )
    save_json(
        "cold_start.json",
        {
            "app": app,
            "baseline": base,
            "app_without_bytecode": bare_app,
            "extra_total": total,
            "extra_largest": largest,
        },
    )
    return result
