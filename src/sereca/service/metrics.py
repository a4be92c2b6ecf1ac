"""Prometheus metrics of one service, in a registry of its own.

Each :class:`ServiceMetrics` owns a fresh ``CollectorRegistry`` (never the
process-global one), so several services in one process or one test session
never collide.  Handlers reach it as ``svc.metrics`` and can add their own
counters, gauges and histograms, which ``/metrics`` then serves too.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase


class ServiceMetrics:
    """The runtime's own metrics plus a factory for the application's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._custom: dict[str, MetricWrapperBase] = {}
        r = self.registry
        self.info = Gauge(
            "sereca_service_info",
            "Always 1; labels say which service runs on which platform (simulated=true: no hardware protection).",
            ["service", "instance_id", "platform", "tee", "simulated"],
            registry=r,
        )
        self.simulated = Gauge(
            "sereca_service_simulated", "1 when the service runs on the SIMULATED TEE platform", registry=r
        )
        self.ready = Gauge("sereca_service_ready", "1 while the service accepts messages", registry=r)
        self.received = Counter(
            "sereca_messages_received_total", "Messages delivered to a consumer", ["address"], registry=r
        )
        self.handled = Counter(
            "sereca_messages_handled_total",
            "Messages by outcome: ok, rejected (body failed validation) or error (handler raised)",
            ["address", "outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "sereca_messages_rejected_total",
            "Messages rejected before reaching the handler, by reason",
            ["address", "reason"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "sereca_handler_seconds", "Time spent in a message handler", ["address"], registry=r
        )
        self.in_flight = Gauge("sereca_handlers_in_flight", "Message handlers running now", registry=r)
        self.periodic = Counter(
            "sereca_periodic_runs_total", "Runs of @every tasks by outcome", ["task", "outcome"], registry=r
        )
        self.bridge_connections = Gauge(
            "sereca_bridge_connections", "Open WebSocket bridge connections", registry=r
        )
        self.bridge_frames = Counter(
            "sereca_bridge_frames_total", "WebSocket bridge frames", ["direction", "type"], registry=r
        )
        self.bridge_denied = Counter(
            "sereca_bridge_denied_total", "Refused bridge connections and frames, by reason", ["reason"], registry=r
        )

    # -- application metrics -------------------------------------------------

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._get_or_make(Counter, name, documentation, labelnames)

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._get_or_make(Gauge, name, documentation, labelnames)

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Histogram:
        return self._get_or_make(Histogram, name, documentation, labelnames)

    def _get_or_make(self, kind: type, name: str, documentation: str, labelnames: Sequence[str]):  # type: ignore[no-untyped-def]
        # Get-or-create, so a handler may declare its metric where it uses it.
        existing = self._custom.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"metric {name!r} already exists as a {type(existing).__name__}")
            return existing
        metric = kind(name, documentation, list(labelnames), registry=self.registry)
        self._custom[name] = metric
        return metric

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
