"""Prometheus metrics for the live loop.

Every loop owns its own :class:`~prometheus_client.CollectorRegistry` (no process-global
state: two loops in one process, or a test, never mix their counters). ``serve(port)`` exposes it
over HTTP for scraping. Its structured logs (one JSON object per line, ``dea serve``'s default)
are the one log handler every command has: :func:`dea.cli.output.configure_logging`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

# decision latency buckets in seconds: 2 µs .. 10 ms
LATENCY_BUCKETS = (2e-6, 5e-6, 1e-5, 1.5e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, float("inf"))


class LoopMetrics:
    """The loop's Prometheus metrics (names prefixed ``dea_``)."""

    def __init__(self, instruments: Sequence[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decision_latency = Histogram(
            "dea_decision_latency_seconds", "features ready -> target exposure after risk", buckets=LATENCY_BUCKETS, registry=r
        )
        self.event_to_decision = Histogram(
            "dea_event_to_decision_seconds", "triggering event applied -> orders generated", buckets=LATENCY_BUCKETS, registry=r
        )
        self.events = Counter("dea_events_total", "market events processed", ["kind"], registry=r)
        self.events_per_second = Gauge("dea_events_per_second", "market events per second (last window)", registry=r)
        self.decisions = Counter("dea_decisions_total", "decisions taken", ["action"], registry=r)
        self.fallbacks = Counter("dea_fallbacks_total", "safe actions taken instead of the model", ["reason"], registry=r)
        self.risk_interventions = Counter("dea_risk_interventions_total", "risk rule interventions", ["rule"], registry=r)
        self.orders = Counter("dea_orders_total", "orders by outcome", ["status"], registry=r)
        self.fills = Counter("dea_fills_total", "fills", registry=r)
        self.exposure = Gauge("dea_exposure", "current exposure (notional / equity)", ["instrument"], registry=r)
        self.target = Gauge("dea_target_exposure", "exposure allowed by risk at the last decision", ["instrument"], registry=r)
        self.equity = Gauge("dea_equity", "account equity (quote currency)", registry=r)
        self.pnl = Gauge("dea_pnl", "equity minus initial equity", registry=r)
        self.model_version = Gauge("dea_model_info", "loaded model (value 1)", ["version", "source", "sha256"],
                                   registry=r)
        self.model_swaps = Counter("dea_model_swaps_total", "model hot swaps", ["outcome"], registry=r)
        self.feed_staleness = Gauge("dea_feed_staleness_seconds", "age of the oldest input at the last decision", registry=r)
        self.halted = Gauge("dea_halted", "1 while the risk kill switch halts trading", registry=r)
        self.guards = Counter("dea_guard_quarantined_total", "market-data values quarantined by the guards", ["guard"], registry=r)
        self._instruments = tuple(instruments)
        self._window_t = time.monotonic()
        self._window_n = 0
        self._current_model: tuple[str, str] | None = None
        self._children: dict[int, list[Any]] = {}
        self._labelled: dict[tuple[int, str], Any] = {}

    def count_event(self, kind: str) -> None:
        self.events.labels(kind).inc()
        self._window_n += 1
        now = time.monotonic()
        if now - self._window_t >= 1.0:
            self.events_per_second.set(self._window_n / (now - self._window_t))
            self._window_t, self._window_n = now, 0

    def set_model(self, version: str, source: str, sha256: str | None = None) -> None:
        if self._current_model is not None:
            self.model_version.remove(*self._current_model)
        self._current_model = (str(version), str(source), str(sha256 or ""))
        self.model_version.labels(*self._current_model).set(1)

    def child(self, metric: Any, label: str) -> Any:
        """``metric.labels(label)``, cached (label lookups cost microseconds per decision)."""
        key = (id(metric), label)
        c = self._labelled.get(key)
        if c is None:
            c = self._labelled[key] = metric.labels(label)
        return c

    def set_vector(self, gauge: Gauge, values: Sequence[float]) -> None:
        """Set a per-instrument gauge (labelled children cached: this runs every decision)."""
        children = self._children.get(id(gauge))
        if children is None:
            children = self._children[id(gauge)] = [gauge.labels(sym) for sym in self._instruments]
        for child, v in zip(children, values, strict=True):
            child.set(float(v))

    def render(self) -> bytes:
        """The text exposition format (what a scrape returns)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Expose ``/metrics`` on ``addr:port``; returns the server (``.shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
