"""The registered notification channels: one line per channel.

Layer: wiring. `CHANNELS` maps a channel's name to the module that builds it; that module has a
`build(settings, poster) -> Channel | None` (None: not configured, reported on /api/health).
Importing this module imports no channel (nor `requests`): the effect names are read from it at
import time by the pure core, the channels are built on a worker's first invocation.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.config import Settings
    from failover.notify.channel import Channel
    from failover.notify.http import JsonPoster

CHANNELS: dict[str, str] = {
    "teams": "failover.notify.teams",
    "pagerduty": "failover.notify.pagerduty",
}


def build_channels(settings: Settings, poster: JsonPoster) -> dict[str, Channel]:
    """Every configured channel by name (a ConfigError names a bad routes setting)."""
    built: dict[str, Channel] = {}
    for name, module in CHANNELS.items():
        channel = importlib.import_module(module).build(settings, poster)
        if channel is not None:
            built[name] = channel
    return built
