"""Assemble a live loop from ``dea serve`` arguments: model source, feed, exchange, journal,
metrics endpoint, hot-swap watcher.

Feed specs: ``replay`` (the config's sources, from the Parquet store when it holds them),
``replay:PATH`` (a capture file/folder ``<ns> <json>`` lines, several joined by ``,``; or a
canonical store folder), ``binance:SYM1,SYM2[:market]`` (live, direct), ``ccxt:VENUE:SYM1,SYM2``
(live, any ccxt venue). Exchange specs: ``paper``, ``ccxt:VENUE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dea.config.experiment import ExperimentConfig
from dea.errors import ConfigError
from dea.timeutil import parse_duration, parse_timestamp
from serving.exchanges.paper import PaperExchange
from serving.hotswap import ModelSlot, ModelWatcher, file_probe, registry_probe
from serving.journal import Journal
from serving.loop import LiveLoop, LoopSummary, live_spec, resolve_latency_ns
from serving.model_source import is_registry_uri, parse_models_uri
from serving.observability import LoopMetrics
from serving.runner import PolicyRunner

log = logging.getLogger("dea.serving.app")
#: a replay's progress line at most this often (seconds) in a log; a terminal gets tqdm's bar
REPLAY_PROGRESS_INTERVAL_S = 10.0


@dataclass
class ServeSetup:
    loop: LiveLoop
    feed: Any
    exchange: Any
    watcher: ModelWatcher | None
    metrics_server: Any


def _symbol_of_capture(path: Path) -> str | None:
    from serving.feeds.replay import capture_file_events

    for i, msg in enumerate(capture_file_events(path, 0)):
        sym = getattr(msg.event, "symbol", "")
        if sym:
            return sym.upper()
        if i > 1000:
            break
    return None


def build_replay(spec: str, cfg: ExperimentConfig, *, start: int | None, end: int | None) -> tuple[Any, dict[str, Any]]:
    """(events factory taking the loop, LiveLoop keyword arguments) for a replay spec."""
    from serving.feeds.replay import TableReplay, capture_events

    path_text = spec[len("replay:"):] if spec.startswith("replay:") else ""
    if not path_text:
        store = Path(cfg.resolve_path(cfg.data.store))  # relative to the config's folder, as `dea data` writes it
        rep = TableReplay.from_config(cfg, store=store if (store / "manifest.json").is_file() else None, end=end)
        return (lambda loop: rep.events(loop.panel)), {"clock_start": rep.clock_start, "clock_end": rep.clock_end,
                            "native_steps": rep.native_steps}
    paths = [Path(p).expanduser() for p in path_text.split(",")]
    if len(paths) == 1 and paths[0].is_dir() and (paths[0] / "manifest.json").is_file():
        rep = TableReplay.from_config(cfg, store=paths[0], end=end)
        return (lambda loop: rep.events(loop.panel)), {"clock_start": rep.clock_start, "clock_end": rep.clock_end,
                            "native_steps": rep.native_steps}
    files: list[tuple[Path, int]] = []
    symbols = [s.upper() for s in cfg.data.symbols]
    for p in paths:
        group = sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith(("LICENSE", "README"))) if p.is_dir() else [p]
        for f in group:
            if not f.is_file():
                raise ConfigError(f"replay file not found: {f}")
            sym = _symbol_of_capture(f)
            if sym in symbols:
                files.append((f, symbols.index(sym)))
            else:
                log.info("replay: skipping %s (symbol %s is not an instrument)", f, sym)
    if not files:
        raise ConfigError(f"replay {path_text!r}: no capture file for instruments {symbols}")
    return (lambda loop: capture_events(files, until=end)), {"clock_end": end}


def build_exchange(spec: str, cfg: ExperimentConfig, journal_path: Path | None = None) -> Any:
    """The venue for ``spec``; with ``execution.algo`` other than ``immediate`` it is wrapped in
    :class:`serving.exchanges.worked.WorkedExchange` (orders worked as parents by the schedule;
    the paper venue then fills on the queue-aware simulator), journaling its child orders and
    parents into ``journal_path``'s execution tables."""
    from serving.exchanges.worked import needs_worked_exchange

    if needs_worked_exchange(cfg.execution):
        return _worked_exchange(spec, cfg, journal_path)
    return _plain_exchange(spec, cfg)


def _worked_exchange(spec: str, cfg: ExperimentConfig, journal_path: Path | None) -> Any:
    from dea.execution.store import ExecutionStore
    from serving.exchanges.worked import WorkedExchange

    if not any(s.kind == "book" for s in cfg.data.sources):
        raise ConfigError(f"execution.algo {cfg.execution.algo!r} works orders on the order book: the config needs a "
                          "data source of kind book (or execution.algo: immediate)")
    route_adapters: dict[str, Any] = {}
    if spec == "paper":
        adapter = None
    elif spec.startswith("ccxt:"):
        adapter = _plain_exchange(spec, cfg)  # markets checked against the config there
        route_adapters = _route_adapters(spec.split(":", 1)[1], cfg, adapter)
    else:
        raise ConfigError(f"unknown exchange {spec!r}: use paper or ccxt:VENUE")
    store = ExecutionStore(journal_path) if journal_path is not None else None
    return WorkedExchange(cfg.data.instruments, cfg.execution, adapter=adapter, store=store,
                          id_prefix=cfg.serving.client_id_prefix, route_adapters=route_adapters)


def _route_adapters(venue: str, cfg: ExperimentConfig, adapter: Any) -> dict[str, Any]:
    """One ccxt adapter per venue of ``execution.routes`` (its ccxt id ``exchange``, default
    ``venue``; its endpoints ``urls``; credentials of that ccxt id): a route with neither is
    ``--exchange``'s own adapter. Markets are checked against the config for each."""
    from serving.exchanges.ccxt_exchange import CcxtExchange
    from serving.secrets import load_credentials

    by_name: dict[str, list[tuple[Any, Any]]] = {}
    for inst in cfg.data.instruments:
        for r in cfg.execution.routes.get(inst.symbol) or ():
            by_name.setdefault(r.venue, []).append((inst, r))
    out: dict[str, Any] = {}
    secrets = cfg.resolve_path(cfg.serving.secrets_file) if cfg.serving.secrets_file else None
    for name, uses in by_name.items():
        exchanges = {r.exchange or venue for _, r in uses}
        urls = [dict(r.urls) for _, r in uses]
        if len(exchanges) > 1 or any(u != urls[0] for u in urls):
            raise ConfigError(f"execution.routes venue {name!r}: its routes disagree on exchange/urls")
        exchange = exchanges.pop()
        if exchange == venue and not urls[0]:
            out[name] = adapter
            continue
        symbols = {i.symbol: r.symbol or cfg.serving.venue_symbols.get(i.symbol, i.symbol) for i, r in uses}
        ex = CcxtExchange(exchange, symbols, credentials=load_credentials(exchange, secrets_file=secrets),
                          testnet=cfg.serving.testnet, options=cfg.serving.venue_config, api_urls=urls[0] or None)
        ex.check_markets([i for i, _ in uses])
        out[name] = ex
    return out


def bind_worked_exchange(ex: Any, loop: LiveLoop, cfg: ExperimentConfig) -> None:
    """Every child of a worked venue passes a risk engine of its own (same config as the
    loop's, whose state stays per decision) on the loop's account and prices."""
    from serving.exchanges.worked import WorkedExchange

    if isinstance(ex, WorkedExchange):
        from dea.risk.engine import RiskEngine

        engine = RiskEngine(cfg.risk, cfg.data.instruments, cfg.accounts)
        # an options overlay under risk.greeks: a child counts the option delta as the decision did
        ex.bind_risk(engine, lambda: loop.account.qty, loop.equity, lambda: loop.raw_px,
                     lambda e: loop._option_greeks(e).get("option_greeks"))


def _plain_exchange(spec: str, cfg: ExperimentConfig) -> Any:
    if spec == "paper":
        k = None
        if cfg.costs.impact.k is None:
            if cfg.serving.impact_k is None:
                raise ConfigError("paper exchange: costs.impact.k is null (estimated in backtests); set serving.impact_k")
            k = [cfg.serving.impact_k] * len(cfg.data.symbols)
        return PaperExchange(cfg.data.instruments, cfg.costs, latency_ns=resolve_latency_ns(cfg), impact_k=k,
                             accounts=cfg.accounts)
    if spec.startswith("ccxt:"):
        from serving.exchanges.ccxt_exchange import CcxtExchange
        from serving.secrets import load_credentials

        venue = spec.split(":", 1)[1]
        secrets = cfg.resolve_path(cfg.serving.secrets_file) if cfg.serving.secrets_file else None
        creds = load_credentials(venue, secrets_file=secrets)
        symbols = {s: cfg.serving.venue_symbols.get(s, s) for s in cfg.data.symbols}
        ex = CcxtExchange(venue, symbols, credentials=creds, testnet=cfg.serving.testnet,
                          options=cfg.serving.venue_config, api_urls=cfg.serving.venue_urls)
        # contract size, tick, lot and min notional from the venue's load_markets against the
        # config (a mismatch refuses to start); the contract sizes are adopted for order units
        ex.check_markets(cfg.data.instruments)
        return ex
    raise ConfigError(f"unknown exchange {spec!r}: use paper or ccxt:VENUE")


def build_option_venue(cfg: ExperimentConfig) -> Any:
    """The paper option venue of ``serving.options_overlay`` (None without the section)."""
    ov = cfg.serving.options_overlay
    if ov is None:
        return None
    from serving.exchanges.paper_options import PaperOptionVenue

    return PaperOptionVenue(ov.fees, multiplier=ov.leg.multiplier)


def build_live_feed(spec: str, cfg: ExperimentConfig, loop: LiveLoop) -> Any:
    tick = parse_duration(cfg.serving.tick) / 1e9
    if spec.startswith("binance:"):
        from serving.feeds.binance import BinanceFeed

        parts = spec.split(":")
        symbols = parts[1].split(",")
        market = parts[2] if len(parts) > 2 else "usdm"
        _check_symbols(symbols, cfg)
        return BinanceFeed(symbols, market=market, tick_s=tick,
                           book_state=loop.books.sync_state if loop.books is not None else None)
    if spec.startswith("ccxt:"):
        from serving.feeds.ccxt_feed import CcxtFeed

        _, venue, syms = spec.split(":", 2)
        markets = syms.split(",")
        if len(markets) != len(cfg.data.symbols):
            raise ConfigError(f"feed {spec!r}: give one market per instrument {list(cfg.data.symbols)}, in order")
        return CcxtFeed(venue, markets, tick_s=tick, funding=any(i.has_funding for i in cfg.data.instruments))
    raise ConfigError(f"unknown feed {spec!r}: use replay, replay:PATH, binance:SYMBOLS or ccxt:VENUE:SYMBOLS")


def _check_symbols(symbols: list[str], cfg: ExperimentConfig) -> None:
    want = [s.upper() for s in cfg.data.symbols]
    if [s.upper() for s in symbols] != want:
        raise ConfigError(f"feed symbols {symbols} must be the config's instruments {want}, in order")


def load_model(source: str, cfg: ExperimentConfig, spec: Any, tracking_uri: str | None) -> tuple[PolicyRunner, ModelSlot, ModelWatcher | None]:
    """Load and verify the model (digest, signature per ``serving``), and the hot-swap slot that
    verifies every replacement the same way."""
    trust = cfg.serving.trust_policy()
    runner = PolicyRunner.load(source, spec, tracking_uri=tracking_uri, trust=trust)
    slot = ModelSlot(runner, lambda src: PolicyRunner.load(src, spec, tracking_uri=tracking_uri, trust=trust))
    watcher = None
    if cfg.serving.model_poll is not None:
        interval = parse_duration(cfg.serving.model_poll) / 1e9
        if is_registry_uri(source) and source.startswith("models:/"):
            ref = parse_models_uri(source)
            if ref.alias:
                watcher = ModelWatcher(slot, registry_probe(ref.name, ref.alias, tracking_uri),
                                       lambda v, name=ref.name: f"models:/{name}/{v}",
                                       interval_s=interval, initial=runner.version)
        elif not is_registry_uri(source):
            probe = file_probe(source)
            watcher = ModelWatcher(slot, probe, lambda _t: source, interval_s=interval, initial=probe())
    return runner, slot, watcher


def guard_drift(loop: LiveLoop, cfg: ExperimentConfig, runner: PolicyRunner, metrics: LoopMetrics) -> Any:
    """Attach drift monitoring when enabled and the model carries its training distribution.

    A model exported without a drift reference still serves (logged), so older artefacts keep
    working; the guard's metrics go to the loop's Prometheus registry.
    """
    if not cfg.drift.enabled:
        return None
    from dea.drift.reference import reference_from_metadata, sidecar_path
    from serving.drift_monitor import DriftGuard, attach_to_loop

    meta = runner.session.get_modelmeta().custom_metadata_map
    ref = reference_from_metadata(meta, runner.source)
    side = sidecar_path(runner.source) if "://" not in runner.source else None
    if ref is None and side is not None and side.is_file():
        from dea.drift.reference import DriftReference

        ref = DriftReference.from_json(side.read_text(encoding="utf-8"), str(side))
    if ref is None:
        log.warning("model %s has no drift reference: drift monitoring is off", runner.source)
        return None
    guard = DriftGuard(ref, cfg.drift, feature_names=runner.feature_names, registry=metrics.registry,
                       model_version=str(runner.version))
    return attach_to_loop(loop, guard)


def replay_progress(loop: LiveLoop) -> Any:
    """The one-line progress of a replay (:mod:`dea.progress`, as every long step shows it),
    counted in decisions: the total is known when the clock's start and end are (a table
    replay), otherwise the line counts without an estimate. A log line at most every
    :data:`REPLAY_PROGRESS_INTERVAL_S`, so a replay of years writes a handful, not thousands."""
    from dea.progress import Progress

    total = None
    if loop.next_t is not None and loop.clock_end is not None and loop.clock_end >= loop.next_t:
        total = (loop.clock_end - loop.next_t) // loop.step + 1
    return Progress("replay", total, unit="decision", min_interval=REPLAY_PROGRESS_INTERVAL_S)


def run_serve(
    cfg: ExperimentConfig,
    *,
    model: str,
    feed: str,
    exchange: str,
    journal: str | None = None,
    max_events: int | None = None,
    start: str | None = None,
    end: str | None = None,
    tracking_uri: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    allow_model_change: bool = False,
    standby: bool = False,
    stop_event: Any = None,
) -> LoopSummary:
    """What ``dea serve`` does; returns the loop's summary (``.report``: the human summary).

    The journal's lease is taken before anything is written to it: a second writer is refused
    (:class:`serving.journal.LeaseHeldError`); a ``standby`` (:class:`serving.standby.StandbyLoop`)
    follows the journal and the feed with its features warm, and when the lease expires takes it,
    loads the journal like a restart, reconciles with the venue and decides on.
    ``stop_event`` (a ``threading.Event``, set by the CLI's SIGTERM/SIGINT handler) stops the
    loop cleanly after the current event."""
    from dea.features.featureset import FeatureSet
    from serving.lease import LeaseKeeper
    from serving.options_overlay import check_option_venue
    from serving.summary import serve_report

    check_option_venue(exchange, cfg)  # before anything is loaded or journaled
    fs = FeatureSet.from_config(cfg.features, cfg.data.symbols)
    spec = live_spec(cfg, fs)
    runner, slot, watcher = load_model(model, cfg, spec, tracking_uri)
    journal_path = Path(journal) if journal else Path(cfg.serving.journal)
    jr = Journal(journal_path, synchronous=cfg.serving.journal_sync.upper())
    keeper = LeaseKeeper(jr, parse_duration(cfg.serving.lease_ttl))
    if not standby:
        keeper.acquire()
    ex = None
    servers: list[Any] = []
    try:
        ex = build_exchange(exchange, cfg, journal_path)
        t_start = parse_timestamp(start) if start else None
        t_end = parse_timestamp(end) if end else None
        metrics = LoopMetrics(cfg.data.symbols)
        port = metrics_port if metrics_port is not None else cfg.serving.metrics_port
        host = metrics_host or cfg.serving.metrics_host
        # a standby on the primary's host would collide on its port: it serves metrics once it took over

        def start_metrics() -> None:
            if port is not None and not servers:
                servers.append(metrics.serve(port, host))
                if standby:
                    log.info("metrics on http://%s:%s/metrics", host, servers[0].server_port)

        if not standby:
            start_metrics()
        server = servers[0] if servers else None
        common: dict[str, Any] = dict(feature_set=fs, metrics=metrics, allow_model_change=allow_model_change,
                                      option_venue=build_option_venue(cfg))
        if hasattr(ex, "on_depth"):
            common["order_books"] = True  # the worked venue needs the feed's book events
        make: Any = LiveLoop
        if standby:  # follows the journal and the feed (warm), takes over when the lease expires
            from serving.standby import StandbyLoop

            make, common["keeper"] = StandbyLoop, keeper
        if feed == "replay" or feed.startswith("replay:"):
            events, kwargs = build_replay(feed, cfg, start=t_start, end=t_end)
            loop = make(cfg, slot, ex, jr, trade_from=t_start, **common, **kwargs)
            loop.progress = replay_progress(loop)
            source = events(loop)
        else:
            loop = make(cfg, slot, ex, jr, **common)
            source = build_live_feed(feed, cfg, loop)
        loop.lease, loop.stop_event = keeper, stop_event
        bind_worked_exchange(ex, loop, cfg)
        if standby:
            loop.on_takeover = start_metrics
        address = f"http://{host}:{server.server_port}/metrics" if server is not None else None
        ident = runner.describe()
        # a registry source has a registry version; a file has only the run that trained it
        version = (f"version {ident['version']}" if ident["version"] != ident["model_version"]
                   else f"from a file (trained in run {ident['model_version']})")
        log.info(
            "serving model %s %s sha256 %s | feed %s | venue %s | journal %s | metrics %s%s",
            ident["model_name"], version, ident["sha256"], feed, exchange, journal_path, address or "off",
            " | standby: following until the lease expires" if standby else "",
            extra={"event": "start", "model_name": ident["model_name"], "model_version": ident["version"],
                   "sha256": ident["sha256"], "feed": feed, "venue": exchange, "metrics": address,
                   "journal": str(journal_path), "lease_holder": keeper.holder},
        )
        guard_drift(loop, cfg, slot.current, metrics)
        if watcher is not None:
            watcher.start()
        try:
            summary = loop.run(source, max_events=max_events)
        finally:
            if loop.progress is not None:
                loop.progress.close()
            stop = getattr(source, "stop", None)
            if stop is not None:
                stop()
        summary.report = serve_report(jr, summary, step_ns=loop.step, model=slot.current.describe())
        return summary
    finally:
        if watcher is not None:
            watcher.stop()
        for srv in servers:
            srv.shutdown()
        if ex is not None:
            ex.close()
        keeper.release()
