"""``dea audit JOURNAL --model M``: re-derive every journaled decision from its recorded inputs.

Exit 0 when every stored input re-derives to the journaled output, 1 when any differs (or
nothing could be re-derived: the journal holds only input hashes, set ``serving.audit_inputs``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("audit", help="re-derive a journal's decisions from their recorded model inputs")
    p.add_argument("journal", type=Path, help="the dea serve SQLite journal")
    p.add_argument("--model", required=True, help="PATH.onnx or models:/NAME/VERSION the journal traded with")
    p.add_argument("--tolerance", type=float, default=1e-6, help="max |output difference| (default 1e-6)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ sources")
    p.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    from serving.audit import audit_journal

    rep = audit_journal(args.journal, args.model, tolerance=args.tolerance, tracking_uri=args.tracking_uri)
    for line in rep.lines():
        print(line)
    return 0 if rep.ok else 1
