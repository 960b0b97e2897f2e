"""``dea serve``: run the live allocator loop (replay or live feed, paper or real exchange).

Examples::

    dea serve --config configs/demo.yaml --model models:/dea-demo@champion --feed replay --exchange paper
    dea serve --config ob.yaml --model policy.onnx --feed replay:../shared/data/orderbook/binance_ws_2024 --exchange paper
    dea serve --config ob.yaml --model models:/ob@champion --feed binance:BTCUSDT --exchange ccxt:binanceusdm
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    import logging

    from dea.config import load_config

    cfg = load_config(args.config, args.overrides)
    from serving.app import run_serve
    from serving.observability import configure_json_logging

    if args.log_format == "json":
        configure_json_logging(logging.INFO)
    else:
        logging.basicConfig(level=logging.INFO)
    tracking = args.tracking_uri or cfg.tracking.uri
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
    )
    print(json.dumps(summary.as_dict(), default=str, indent=2))
    return 0
