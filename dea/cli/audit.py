"""``dea audit JOURNAL --model M``: re-derive every journaled decision and report differences.

The work is done by :mod:`serving.audit` (it runs the ONNX model with onnxruntime); like
``dea serve``, this command reaches serving lazily inside its handler, so ``dea`` itself never
imports ``serving``. Exit 0 when every re-derivable decision matches, 1 when any differs.

Example::

    dea audit dea_journal.sqlite --model models:/dea-demo/3
    dea audit dea_journal.sqlite --model hold.onnx --config options.yaml   # with an options overlay
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "audit",
        help="re-derive the journaled decisions of a live loop from their stored inputs",
        description=(
            "Open a serving journal read-only, check each stored decision input against its SHA-256, "
            "re-run the model on it and report every decision whose target differs "
            "(store the inputs with serving.journal_inputs: true)."
        ),
    )
    p.add_argument("journal", type=Path, help="the SQLite state journal written by dea serve")
    p.add_argument("--model", required=True, help="PATH.onnx or models:/NAME/VERSION: the model that made them")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ sources")
    p.add_argument("--config", type=Path, help="the serving config: re-derives an options overlay's option delta and "
                   "greek rule (risk.greeks); without it those decisions are counted as greeks_unchecked")
    p.add_argument("--tolerance", type=float, default=None, help="largest accepted |difference| (default 1e-6)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from serving.audit import TOLERANCE, audit_journal

    rep = audit_journal(args.journal, args.model, tracking_uri=args.tracking_uri,
                        tolerance=TOLERANCE if args.tolerance is None else args.tolerance, config=args.config)
    print(json.dumps(rep.as_dict(), indent=2, default=str), flush=True)
    return 0 if rep.ok else 1
