"""Render Adaptive Cards with the official `adaptivecards` JS renderer in headless Chromium.

Layer: test support (never deployed). Installs npm `adaptivecards` into `.cache/node/` of the repo
when missing (`npm install`, registry client only), writes a file:// page that parses the cards with
`SerializationContext(Versions.v1_4)`, validates, renders, and reports every parse/validation event
and JS error; runs the system Chromium (`/usr/lib/chromium/chromium`, never a downloaded browser)
with its network pointed at a dead loopback proxy. See shared reference functions-and-cards-local.md, Part B.

    python -m tests.e2e.cardrender --screenshot     # writes docs/card-{opened,resolved,digest}.png
    python -m tests.e2e.cardrender --card card.json # prints the events for any card
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "node"
ADAPTIVECARDS_VERSION = "3.0.6"
BUNDLE = CACHE / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/lib/chromium/chromium"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=NetworkTimeServiceQuerying",
    "--proxy-server=127.0.0.1:9",  # nothing leaves the machine; file:// is not proxied
    "--hide-scrollbars",
)
CARD_WIDTH = 520  # px: a Teams channel message column is about this wide

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>AC:PENDING</title>
<style>
  html, body { margin: 0; background: #f5f5f5; }
  body { font-family: "Segoe UI", "Helvetica Neue", "DejaVu Sans", sans-serif; padding: 16px; }
  .card { width: __WIDTH__px; background: #fff; border-radius: 6px; margin-bottom: 16px;
          box-shadow: 0 1px 3px rgba(0,0,0,.18); overflow: hidden; }
  .ac-pushButton { border: 1px solid #c8c6c4; background: #fff; border-radius: 4px; padding: 6px 12px;
                   font-weight: 600; color: #242424; cursor: pointer; }
</style>
<script src="adaptivecards.min.js"></script>
</head><body>
<div id="cards"></div>
<pre id="ac-result" style="display:none"></pre>
<script type="application/json" id="payload">__PAYLOAD__</script>
<script>
(function () {
  var jsErrors = [];
  window.addEventListener("error", function (e) { jsErrors.push(String(e.message || e)); });
  var results = [];
  try {
    var AC = window.AdaptiveCards;
    // Teams light theme colours, so screenshots look like what people see.
    var style = function (background) {
      var pair = function (c) { return { default: c, subtle: c + "b3" }; };
      return {
        backgroundColor: background,
        foregroundColors: {
          default: { default: "#242424", subtle: "#616161" }, dark: pair("#242424"), light: pair("#ffffff"),
          accent: pair("#5b5fc7"), good: pair("#237b4b"), warning: pair("#835c00"), attention: pair("#c4314b")
        }
      };
    };
    if (!AC) { throw new Error("adaptivecards bundle did not load"); }
    var hostConfig = new AC.HostConfig({
      fontFamily: "Segoe UI, Helvetica Neue, DejaVu Sans, sans-serif",
      spacing: { small: 4, default: 8, medium: 14, large: 20, extraLarge: 28, padding: 16 },
      factSet: { title: { weight: "Bolder", wrap: true, maxWidth: 190 }, value: { wrap: true }, spacing: 10 },
      actions: { actionsOrientation: "Horizontal", buttonSpacing: 8, maxActions: 6, spacing: "Medium" },
      containerStyles: {
        default: style("#ffffff"), emphasis: style("#f5f5f5"), accent: style("#e8ebfa"),
        good: style("#f1faf1"), warning: style("#fff9f0"), attention: style("#fdf3f4")
      }
    });
    var describe = function (e) {
      return { phase: AC.ValidationPhase[e.phase], event: AC.ValidationEvent[e.event], message: e.message };
    };
    var texts = function (root, selector) {
      var nodes = root.querySelectorAll(selector);
      return Array.prototype.map.call(nodes, function (n) { return n.textContent; });
    };
    var cards = JSON.parse(document.getElementById("payload").textContent);
    cards.forEach(function (payload, index) {
      var result = { index: index, parseEvents: [], validationEvents: [], rendered: false, jsErrors: [] };
      try {
        var card = new AC.AdaptiveCard();
        card.hostConfig = hostConfig;
        var ctx = new AC.SerializationContext(AC.Versions.v1_4);
        card.parse(payload, ctx);
        for (var i = 0; i < ctx.eventCount; i++) {
          var e = ctx.getEventAt(i);
          result.parseEvents.push(describe(e));
        }
        card.validateProperties().validationEvents.forEach(function (e) {
          result.validationEvents.push(describe(e));
        });
        var holder = document.createElement("div");
        holder.className = "card";
        holder.id = "card-" + index;
        document.getElementById("cards").appendChild(holder);
        var element = card.render();
        if (element) { holder.appendChild(element); result.rendered = true; }
        result.version = card.version ? card.version.toString() : null;
        result.factSets = holder.querySelectorAll(".ac-factset").length;
        result.facts = texts(holder, ".ac-fact-title");
        result.textBlocks = holder.querySelectorAll(".ac-textBlock").length;
        result.actions = texts(holder, ".ac-pushButton");
        result.text = holder.textContent;
        result.height = Math.ceil(holder.getBoundingClientRect().height);
      } catch (err) {
        result.jsErrors.push(String(err && err.stack || err));
      }
      results.push(result);
    });
  } catch (err) {
    jsErrors.push(String(err && err.stack || err));
  }
  var ok = jsErrors.length === 0 && results.every(function (r) {
    return r.rendered && !r.parseEvents.length && !r.validationEvents.length && !r.jsErrors.length;
  });
  document.getElementById("ac-result").textContent = JSON.stringify({ results: results, jsErrors: jsErrors });
  document.title = ok ? "AC:OK" : "AC:ERRORS";
})();
</script>
</body></html>
"""


@dataclass(frozen=True)
class RenderResult:
    """What the renderer said about one card."""

    parse_events: list[dict[str, Any]]
    validation_events: list[dict[str, Any]]
    js_errors: list[str]
    rendered: bool
    version: str | None = None
    fact_sets: int = 0
    facts: list[str] = field(default_factory=list)
    text_blocks: int = 0
    actions: list[str] = field(default_factory=list)
    text: str = ""
    height: int = 0
    screenshot: Path | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.parse_events + self.validation_events

    @property
    def ok(self) -> bool:
        return self.rendered and not self.events and not self.js_errors


class RenderError(RuntimeError):
    """Chromium or the page failed before any card result came back."""


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_version() -> str | None:
    package = BUNDLE.parents[1] / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_adaptivecards() -> Path:
    """The `adaptivecards` browser bundle, installed with npm into `.cache/node/` when missing."""
    if BUNDLE.exists() and _installed_version() == ADAPTIVECARDS_VERSION:
        return BUNDLE
    npm = shutil.which("npm")
    if npm is None:
        raise RenderError(
            "npm is not installed: apt-get install nodejs npm (needed for the adaptivecards renderer)"
        )
    with _install_lock():
        if BUNDLE.exists() and _installed_version() == ADAPTIVECARDS_VERSION:
            return BUNDLE
        proc = subprocess.run(
            [
                npm, "install", "--prefix", str(CACHE), "--no-save", "--no-package-lock",
                "--no-audit", "--no-fund", "--loglevel=error", f"adaptivecards@{ADAPTIVECARDS_VERSION}",
            ],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or not BUNDLE.exists():
            raise RenderError(
                f"npm install adaptivecards@{ADAPTIVECARDS_VERSION} failed: {proc.stderr[-2000:]}"
            )
    return BUNDLE


def _page(cards: Sequence[dict[str, Any]], width: int) -> str:
    payload = json.dumps(list(cards), ensure_ascii=True).replace("</", "<\\/")
    return _PAGE.replace("__WIDTH__", str(width)).replace("__PAYLOAD__", payload)


def _run_chromium(page: Path, *, window: tuple[int, int], screenshot: Path | None, scale: float) -> str:
    if not CHROMIUM.exists():
        raise RenderError(
            f"Chromium not found at {CHROMIUM}: apt-get install -y --no-install-recommends chromium"
        )
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            f"--force-device-scale-factor={scale}",
        ]
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        args += ["--dump-dom", page.as_uri()]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 or "ac-result" not in proc.stdout:
        raise RenderError(f"chromium exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def _results(dom: str) -> tuple[list[dict[str, Any]], list[str]]:
    match = re.search(r'<pre id="ac-result"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    if match is None or not match.group(1).strip():
        title = re.search(r"<title>(.*?)</title>", dom)
        raise RenderError(f"the page produced no result (title {title.group(1) if title else '?'})")
    data = json.loads(html.unescape(match.group(1)))
    return list(data["results"]), [str(e) for e in data["jsErrors"]]


def render_many(
    cards: Sequence[dict[str, Any]],
    *,
    screenshot: Path | None = None,
    width: int = CARD_WIDTH,
    scale: float = 1.0,
) -> list[RenderResult]:
    """Parse, validate and render each card (Adaptive Cards 1.4 context) in one Chromium run.

    With `screenshot`, a second run saves a PNG sized to fit the rendered cards.
    """
    bundle = ensure_adaptivecards()
    with tempfile.TemporaryDirectory(prefix="cardrender-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(bundle, folder / "adaptivecards.min.js")
        page = folder / "cards.html"
        page.write_text(_page(cards, width), encoding="utf-8")
        window_width = width + 32
        raw, js_errors = _results(_run_chromium(page, window=(window_width, 800), screenshot=None, scale=1.0))
        if screenshot is not None:
            height = sum(int(r.get("height") or 0) + 16 for r in raw) + 16
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _run_chromium(
                page, window=(window_width, max(height, 100)), screenshot=screenshot.resolve(), scale=scale
            )
    results = []
    for item in raw:
        results.append(
            RenderResult(
                parse_events=list(item.get("parseEvents", [])),
                validation_events=list(item.get("validationEvents", [])),
                js_errors=js_errors + [str(e) for e in item.get("jsErrors", [])],
                rendered=bool(item.get("rendered")),
                version=item.get("version"),
                fact_sets=int(item.get("factSets") or 0),
                facts=[str(f) for f in item.get("facts", [])],
                text_blocks=int(item.get("textBlocks") or 0),
                actions=[str(a) for a in item.get("actions", [])],
                text=str(item.get("text", "")),
                height=int(item.get("height") or 0),
                screenshot=screenshot,
            )
        )
    if len(results) != len(cards):
        raise RenderError(f"expected {len(cards)} results, got {len(results)}; JS errors: {js_errors}")
    return results


def render(card: dict[str, Any], *, screenshot: Path | None = None, scale: float = 1.0) -> RenderResult:
    """Render one card; see `render_many`."""
    return render_many([card], screenshot=screenshot, scale=scale)[0]


def sample_cards() -> dict[str, dict[str, Any]]:
    """Realistic cards for each transition of one planned failover of pg-prod-01."""
    from dataclasses import replace

    from failover.model import Transition
    from failover.notify.teams.card import render_card
    from failover.presentation import IncidentView, portal_url
    from tests.builders import incident

    rid = (
        "/subscriptions/6f1c2a9e-0000-4b8e-9d55-2f1e0c3a7b11/resourceGroups/rg-payments-db"
        "/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-prod-01"
    )
    timeline = "https://func-pgfo-prod.azurewebsites.net/api/incidents/pg-prod-01~20261125T071602Z/timeline"
    links = {"timeline_url": timeline, "portal_url": portal_url(rid)}
    return {
        transition.value: render_card(
            IncidentView.of(replace(incident(transition), resource_id=rid)), transition, **links
        )
        for transition in (Transition.OPENED, Transition.PRIMARY_RESTORED, Transition.RESOLVED)
    }


def sample_digest_card() -> dict[str, Any]:
    """The zone-outage digest card of a window in which twelve servers of westeurope failed over."""
    from datetime import datetime, timedelta, timezone

    from failover.digest import Opening, Post, digest_card

    start = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)
    names = ["billing", "catalog", "checkout", "inventory", "ledger", "loyalty", "orders", "payments",
             "pricing", "search", "shipping", "users"]  # fmt: skip
    stages = ["primary_restored"] * 9 + ["opened"] * 3
    members = tuple(
        Opening(
            "westeurope",
            f"pg-{name}-prod",
            f"pg-{name}-prod~{start + timedelta(seconds=7 * n):%Y%m%dT%H%M%SZ}",
            start + timedelta(seconds=7 * n),
            "unplanned",
            "open",
            stages[n],
        )
        for n, name in enumerate(names)
    )
    outage = f"westeurope~{start:%Y%m%dT%H%M%SZ}"
    return digest_card(
        Post(f"{outage}~w0", "window", outage, members),
        digest_url=f"https://func-pgfo-prod.azurewebsites.net/api/digests/{outage}",  # as wired
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render Adaptive Cards offline in headless Chromium.")
    parser.add_argument(
        "--screenshot",
        action="store_true",
        help="write docs/card-opened.png, card-resolved.png, card-digest.png",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the screenshots")
    parser.add_argument("--card", type=Path, help="render this card JSON file and print its events")
    args = parser.parse_args(argv)

    if args.card is not None:
        result = render(json.loads(args.card.read_text(encoding="utf-8")))
        print(json.dumps({"ok": result.ok, "events": result.events, "js_errors": result.js_errors}, indent=2))
        return 0 if result.ok else 1

    samples = sample_cards()
    failed = False
    for name in ("opened", "primary_restored", "resolved"):
        target = args.out / f"card-{name.replace('_', '-')}.png" if args.screenshot else None
        if target is not None and name == "primary_restored":
            target = None  # the docs show the first and the last card
        result = render(samples[name], screenshot=target, scale=2.0)
        state = "OK" if result.ok else f"ERRORS {result.events} {result.js_errors}"
        print(f"{name}: {state}" + (f" -> {target}" if target else ""))
        failed = failed or not result.ok
    target = args.out / "card-digest.png" if args.screenshot else None
    result = render(sample_digest_card(), screenshot=target, scale=2.0)
    print(
        f"digest: {'OK' if result.ok else f'ERRORS {result.events} {result.js_errors}'}"
        + (f" -> {target}" if target else "")
    )
    return 1 if failed or not result.ok else 0


if __name__ == "__main__":
    sys.exit(main())
