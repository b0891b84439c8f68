"""Cold start: the wall time of importing the app against importing the bare Functions library.

`python -c "import function_app"` is what the Python worker does to index the app; the baseline is
`python -c "import azure.functions"`, which every Functions app pays anyway. Both run alternately in
fresh interpreters (same venv, warm .pyc: a warm-up run writes the bytecode first), and the figure
is the ratio of the medians. Target: at most 1.3x.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time

from bench.common import ROOT, Result, python, save_json

BASELINE = "import azure.functions"
APP = "import function_app"
TARGET = 1.3


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm .pyc, as on a deployed worker
    env["PYTHONPATH"] = str(ROOT)
    return env


def _once(code: str, env: dict[str, str]) -> float:
    """Wall time of one fresh interpreter running `code`.

    A blocking wait, not `subprocess.run(timeout=...)`: with a timeout, `Popen.wait` polls with
    sleeps of up to 50 ms, which would quantise a 100 ms measurement. A timer kills a child that
    hangs, so the wait is still bounded.
    """
    started = time.perf_counter()
    process = subprocess.Popen([python(), "-c", code], cwd=ROOT, env=env)
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


def _import_costs(env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """Self import time of every module the app loads beyond azure.functions: total and the largest."""

    def table(code: str) -> dict[str, float]:
        done = subprocess.run(
            [python(), "-X", "importtime", "-c", code],
            cwd=ROOT,
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
        "Cold start: importing the app vs importing azure.functions",
        f'python -c "{APP}" vs python -c "{BASELINE}", {runs} alternating runs each, warm .pyc',
    )
    env = _env()
    for code in (BASELINE, APP, BASELINE, APP):  # write bytecode, warm the page cache
        _once(code, env)
    base: list[float] = []
    app: list[float] = []
    for n in range(runs):
        order = [(BASELINE, base), (APP, app)] if n % 2 == 0 else [(APP, app), (BASELINE, base)]
        for code, bucket in order:
            bucket.append(_once(code, env))
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
    total, largest = _import_costs(env)
    result.notes.append(
        f"Modules the app loads beyond azure.functions take {total * 1000:.1f} ms of import time in all"
        " (`-X importtime`, self time); the largest: "
        + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in largest)
        + ". They are the project's own pure modules (dataclasses, enums, regexes);"
        " no SDK client is imported."
    )
    save_json(
        "cold_start.json", {"app": app, "baseline": base, "extra_total": total, "extra_largest": largest}
    )
    return result
