"""``dea serve``: run the live allocator loop (replay or live feed, paper or real exchange).

Examples::

    dea serve --config configs/demo.yaml --model models:/dea-demo@champion --feed replay --exchange paper
    dea serve --config ob.yaml --model policy.onnx --feed replay:../shared/data/orderbook/binance_ws_2024 --exchange paper
    dea serve --config ob.yaml --model models:/ob@champion --feed binance:BTCUSDT --exchange ccxt:binanceusdm
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the live allocator loop on a replayed or live feed",
        description=(
            "Event -> streaming features -> ONNX policy -> risk engine -> orders -> exchange, with a SQLite "
            "journal (restart-safe), Prometheus metrics and JSON logs."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML (features, instruments, risk, serving)")
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or PATH.onnx")
    p.add_argument(
        "--feed", default="replay",
        help="replay | replay:PATH[,PATH] (capture files/folder or a store) | binance:SYMBOLS[:usdm|spot|coinm] | ccxt:VENUE:SYMBOLS",
    )
    p.add_argument("--exchange", default="paper", help="paper | ccxt:VENUE")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--journal", help="state journal path (default: serving.journal)")
    p.add_argument("--max-events", type=int, help="stop after this many events")
    p.add_argument("--start", help="replay: first decision that trades (earlier rows only warm features up)")
    p.add_argument("--end", help="replay: last decision time")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ sources")
    p.add_argument("--metrics-port", type=int, help="expose Prometheus metrics on this port")
    p.add_argument("--metrics-host", help="address the metrics endpoint binds (default: serving.metrics_host)")
    p.add_argument("--allow-model-change", action="store_true",
                   help="restart on a journal written by a different model (SHA-256); the change is journaled")
    p.add_argument("--standby", action="store_true",
                   help="hot standby: follow the journal and the feed (features warm, nothing sent) until "
                        "the writer's lease expires, then take over and reconcile with the venue")
    p.add_argument("--raw-summary", action="store_true", help="print the loop's raw counters instead of the summary")
    # logs: --log-format (every command's output flag), json by default here for log collectors
    p.set_defaults(handler=_handle, default_log_format="json")


def _handle(args: argparse.Namespace) -> int:
    from dea.config import load_config
    from serving.app import run_serve

    cfg = load_config(args.config, args.overrides)
    tracking = args.tracking_uri or cfg.tracking.uri
    with _graceful_stop() as stop:
        summary = run_serve(
            cfg,
            model=args.model,
            feed=args.feed,
            exchange=args.exchange,
            journal=args.journal,
            max_events=args.max_events,
            start=args.start,
            end=args.end,
            tracking_uri=tracking,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            allow_model_change=args.allow_model_change,
            standby=args.standby,
            stop_event=stop,
        )
    out = summary.as_dict() if args.raw_summary or summary.report is None else summary.report
    print(json.dumps(out, default=str, indent=2), flush=True)
    return 0


class _StopEvent(threading.Event):
    """Set by SIGTERM/SIGINT; ``reason`` names the signal (journaled as the shutdown reason)."""

    reason = "stop requested"


@contextlib.contextmanager
def _graceful_stop() -> Iterator[_StopEvent]:
    """While serving, SIGTERM and SIGINT (and SIGHUP) ask the loop to stop after the current event
    instead of raising inside it (a KeyboardInterrupt in a journal COMMIT): the loop then flushes,
    journals the stop, handles open orders as configured, and ``dea serve`` prints its summary
    and exits 0. Outside the main thread (tests) signals are left alone."""
    stop = _StopEvent()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    names = ("SIGTERM", "SIGINT", "SIGHUP")
    sigs = [s for s in (getattr(signal, n, None) for n in names) if s is not None]
    previous = {s: signal.getsignal(s) for s in sigs}

    def handler(signum: int, _frame: object) -> None:
        stop.reason = f"signal {signal.Signals(signum).name}"
        stop.set()

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
