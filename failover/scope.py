"""Which servers the app records: the trust boundary for alerts and events (pure).

Layer: pure core. A value built from settings; no I/O. Alerts and Event Grid events are recorded only
for watched servers (`MONITORED_SERVERS`) and for servers inside `ALERT_SCOPES` or `DISCOVERY_SCOPES`
(`/subscriptions/{id}` or `/subscriptions/{id}/resourceGroups/{rg}`); with none of these settings
everything is accepted and `/api/health` warns. The probes watch only watched servers, so their
signals are always inside. A known server's resource id is authoritative (`Responder.record`).
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_MONITORED = "not a monitored server"
OTHER_RESOURCE = "resource id does not match the known server"


@dataclass(frozen=True)
class AcceptedScope:
    watched: frozenset[str] = frozenset()  # lower-case resource ids
    scopes: tuple[str, ...] = ()  # lower-case subscription or resource group ids

    @classmethod
    def of(cls, watched: tuple[str, ...], scopes: tuple[str, ...]) -> AcceptedScope:
        return cls(frozenset(w.lower() for w in watched), tuple(s.lower().rstrip("/") for s in scopes))

    @property
    def open(self) -> bool:
        """Nothing configured: every server is accepted (health warns)."""
        return not self.watched and not self.scopes

    def refusal(self, resource_id: str) -> str | None:
        """None when signals about `resource_id` may be recorded, else the reason they are not."""
        rid = resource_id.lower()
        if self.open or rid in self.watched or any(rid.startswith(f"{s}/") for s in self.scopes):
            return None
        return NOT_MONITORED
