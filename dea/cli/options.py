"""``dea options-overlay CONFIG``: a perpetual exposure with a rolled, greek-budgeted option overlay.

Runs :mod:`dea.backtest.options_overlay` with and without the overlay, prints both summaries
(return, drawdown, rolls, rolls the vega budget cut, fees) and with ``--out`` writes the exposure
and equity series and the roll/settlement events.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("options-overlay", help="backtest a perpetual exposure with an option overlay", description=__doc__.split("\n\n", 1)[1])
    p.add_argument("config", type=Path, help="overlay config YAML (e.g. configs/btc_put_overlay.yaml)")
    p.add_argument("--out", type=Path, default=None, help="folder for <name>_exposure.csv, <name>_equity.csv, <name>_summary.json")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from dea.backtest.options_overlay import run_and_write

    print(json.dumps(run_and_write(args.config, args.out), indent=2))
    return 0
