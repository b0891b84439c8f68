"""Run the benchmarks, print their figures and write docs/benchmarks.md.

    python -m bench.run                 # everything, full size (about 15 minutes on 2 cores)
    python -m bench.run --quick         # smaller storm and 20,000 lookup rows (about 2 minutes)
    python -m bench.run --only storm    # one benchmark (any name in BENCHMARKS)
    python -m bench.run --render-only   # rewrite docs/benchmarks.md from docs/benchmarks.json

Each benchmark starts the local services it needs (its own Azurite, redis-server, Teams sink,
PostgreSQL pair, ARM emulator) on loopback and stops them. A benchmark that fails is reported as
such and the others still run. With --only, the other benchmarks' sections already in
docs/benchmarks.md are kept (read back from docs/benchmarks.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone

from bench import (
    cold_start,
    detection,
    downtime,
    fleet,
    history,
    hostile,
    lookups,
    redaction,
    redis_cluster,
    storm,
    zone_digest,
)
from bench.common import ROOT, Figure, Result, machine

BENCHMARKS: dict[str, Callable[..., Result]] = {
    "cold_start": cold_start.run,
    "storm": storm.run,
    "hostile": hostile.run,
    "lookups": lookups.run,
    "downtime": downtime.run,
    "detection": detection.run,
    "redis_cluster": redis_cluster.run,
    "redaction": redaction.run,
    "history": history.run,
    "zone_digest": zone_digest.run,
    "fleet": fleet.run,
}
DOC = ROOT / "docs" / "benchmarks.md"
# The figures behind the page, committed beside it so that `--only` works on a fresh clone.
RESULTS = ROOT / "docs" / "benchmarks.json"


def _met(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "yes" if figure.met else "**no**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[Result], info: dict[str, str]) -> str:
    started: dict[str, str] = {}
    for result in results:
        started[result.invocation] = min(started.get(result.invocation, result.date), result.date)
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run.py` (`make bench`); do not edit by hand. Measured with:",
        "",
        *[
            f"    {invocation}    # {when}"
            for invocation, when in sorted(started.items(), key=lambda i: i[1])
        ],
        "",
        "Each section says when its benchmark finished.",
        "",
        "Machine: " + ", ".join(f"{key} {value}" for key, value in info.items()) + ".",
        "",
        "Ratios are against a baseline measured in the same run, because the machine is shared and noisy.",
        "",
    ]
    summary = [f for r in results for f in r.figures if f.met is not None]
    met = sum(1 for f in summary if f.met)
    lines += [f"Targets met: {met} of {len(summary)}.", ""]
    for result in results:
        lines += section(result)
    return "\n".join(lines).rstrip() + "\n"


def section(result: Result) -> list[str]:
    """The lines of one benchmark's section of docs/benchmarks.md."""
    lines = [
        f"## {result.title}",
        "",
        f"`{result.invocation}`, finished {result.date} after {result.seconds:.0f} s. {result.command}.",
        "",
    ]
    if result.error:
        lines += [f"**The benchmark failed:** `{_cell(result.error)}`", ""]
    if result.figures:
        lines += ["| Figure | Value | Target | Met? | Notes |", "|---|---|---|---|---|"]
        for f in result.figures:
            cells = [_cell(f.name), _cell(f.value), _cell(f.target), _met(f), _cell(f.notes)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for note in result.notes:
        lines += [note, ""]
    return lines


def print_result(result: Result) -> None:
    print(f"\n== {result.title} ({result.seconds:.0f} s)")
    if result.error:
        print(f"   FAILED: {result.error}")
    for f in result.figures:
        target = f"  [target {f.target}: {'met' if f.met else 'NOT met'}]" if f.met is not None else ""
        print(f"   {f.name}: {f.value}{target}")
        if f.notes:
            print(f"      {f.notes}")
    for note in result.notes:
        print(f"   - {note}")
    sys.stdout.flush()


def _load_previous() -> dict[str, Result]:
    try:
        raw = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for item in raw.get("results", []):
        figures = [Figure(**f) for f in item.pop("figures", [])]
        found[item["name"]] = Result(**item, figures=figures)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a quick look, not the record)")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite docs/benchmarks.md from docs/benchmarks.json",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        previous = _load_previous()
        info = json.loads(RESULTS.read_text()).get("machine", {})
        DOC.write_text(render([previous[n] for n in BENCHMARKS if n in previous], info))
        print(f"wrote {DOC.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")
        return 0
    if args.only and DOC.exists() and not RESULTS.exists():
        # The other sections live only in the page: rewriting it from this run alone would drop them.
        print(
            f"error: --only needs {RESULTS.relative_to(ROOT)} to keep the other sections of"
            f" {DOC.relative_to(ROOT)}; run `python -m bench.run` once (or `make bench`)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.only or list(BENCHMARKS)
    command = (
        "python -m bench.run"
        + "".join(f" --only {n}" for n in args.only or [])
        + (" --quick" if args.quick else "")
    )
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    results: dict[str, Result] = _load_previous() if args.only else {}
    for name in names:
        started = time.monotonic()
        print(f"\n... running {name}{' (quick)' if args.quick else ''}", flush=True)
        try:
            result = BENCHMARKS[name](quick=args.quick)
        except Exception as exc:
            traceback.print_exc()
            result = Result(name, name, command, error=f"{type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - started
        result.invocation = command
        result.date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results[name] = result
        print_result(result)
    ordered = [results[n] for n in BENCHMARKS if n in results]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(ordered, info))
    RESULTS.write_text(json.dumps({"results": [r.to_dict() for r in ordered], "machine": info}, indent=2))
    print(f"\nwrote {DOC.relative_to(ROOT)}")
    return 0 if all(r.error is None for r in ordered) else 1


if __name__ == "__main__":
    raise SystemExit(main())
