"""Queue functions: `probe_shard` watches one shard of the fleet for one window.

Layer: edge. The probe timer (`handlers.timers.probe_servers`) enqueues one message per shard on
the `probe-shards` queue of the app's storage account; Azure Functions hands each message to one
instance (hidden from the others while it runs) and adds instances as the queue grows. host.json
(`extensions.queues`) sets how many shards one instance takes at once. A message is a slot: it
watches the shard of its tick it claims (`failover.shard_claims`), the one whose servers this
instance watched last tick when that one is still free.

What it must not do: raise for a malformed or late message (it would be retried and then moved to
the poison queue for nothing: such a message is logged and dropped), or watch past the message's
`not_after` by more than the recording grace (the next tick's message for the same servers starts
after that). What one server's checks could not do is on the report and on /api/health, never an
exception; an unexpected error raises, and the host retries the message (within what is left of
its window) up to `maxDequeueCount`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import azure.functions as func

from failover.shards import PROBE_QUEUE
from handlers._runtime import get_runtime

if TYPE_CHECKING:
    from failover.shards import Shard
    from failover.wiring import Runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=PROBE_QUEUE, connection="AzureWebJobsStorage")
def probe_shard(message: func.QueueMessage) -> None:
    from failover.shards import Shard

    try:
        shard = Shard.from_json(message.get_body().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        log.error("probe shard message %s dropped: %s", message.id, exc)
        return
    runtime = get_runtime()
    if _window_left(runtime, shard) is None:
        log.warning(
            "probe shard %d/%d of %s arrived after its window; the next tick covers its servers",
            shard.index + 1,
            shard.count,
            shard.issued_at.isoformat(),
        )
        return
    taken = runtime.shard_claims.take(shard, holder=message.id or "")
    window = _window_left(runtime, shard)  # what is left once claimed (Table round trips)
    if taken is None or window is None:
        log.info(
            "probe shard message %s: every shard of its tick is claimed by others, or its window ended",
            message.id,
        )
        return
    report = runtime.prober.run_once(targets=taken.targets, window=window)
    log.info(
        "probe shard %d/%d (message for %d): %s",
        taken.index + 1,
        taken.count,
        shard.index + 1,
        report.summary(),
    )


def _window_left(runtime: Runtime, shard: Shard) -> timedelta | None:
    return shard.window_at(
        runtime.clock(), min(runtime.settings.probe_window, shard.not_after - shard.issued_at)
    )
