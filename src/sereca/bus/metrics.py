"""Bus counters: plain integers on the hot path, exported to Prometheus by a collector."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

REJECT_REASONS = ("malformed", "tampered", "replayed", "reordered", "stale", "unauthenticated", "misaddressed")


class BusMetrics:
    """Counts of sent, delivered and rejected messages (by reason)."""

    def __init__(self) -> None:
        self.sent = 0
        self.delivered = 0
        self.duplicates = 0
        self.handler_errors = 0
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {"sent": self.sent, "delivered": self.delivered, "duplicates": self.duplicates,
                "handler_errors": self.handler_errors, "rejected": dict(self.rejected)}

    def register(self, registry: Any, prefix: str = "sereca_bus") -> None:
        """Expose the counters in a ``prometheus_client.CollectorRegistry``."""
        registry.register(_Collector(self, prefix))


class _Collector:
    def __init__(self, metrics: BusMetrics, prefix: str) -> None:
        self._m = metrics
        self._prefix = prefix

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        m, p = self._m, self._prefix
        for name, value, doc in (("sent", m.sent, "messages sealed and handed to the transport"),
                                 ("delivered", m.delivered, "messages accepted and passed to a handler"),
                                 ("duplicates", m.duplicates, "durable redeliveries suppressed as duplicates"),
                                 ("handler_errors", m.handler_errors, "handler exceptions")):
            yield CounterMetricFamily(f"{p}_{name}", doc, value=value)
        fam = CounterMetricFamily(f"{p}_rejected", "inbound messages rejected, by reason", labels=["reason"])
        for reason, value in m.rejected.items():
            fam.add_metric([reason], value)
        yield fam
