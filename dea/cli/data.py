"""``dea data``: ingest configured sources into the canonical store; inspect files or sources."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="ingest sources into the canonical Parquet store, or inspect data files",
        description="Ingest an experiment's data sources into the canonical store, or summarise data files.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    ing = sub.add_parser(
        "ingest",
        help="load, validate and store every source of a config (idempotent)",
        description=(
            "Load and validate every source in the config's data section and write it to data.store "
            "(one Parquet file per dataset and kind, plus manifest.json). Sources whose fingerprint is "
            "already stored are skipped."
        ),
    )
    ing.add_argument("--config", required=True, type=Path, help="experiment YAML")
    ing.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value (repeatable)")
    ing.add_argument("--store", type=Path, default=None,
                     help="store folder (default: data.store, relative to the config file's folder)")
    ing.add_argument("--allow-shrink", action="store_true",
                     help="allow replacing a stored dataset by an empty or much smaller one (refused otherwise)")
    ing.set_defaults(handler=_ingest)

    ins = sub.add_parser(
        "inspect",
        help="summarise data files (format auto-detected) or a config's sources",
        description=(
            "Summarise every data file under PATH (format recognised from name and columns) or every "
            "source of --config: instruments/series, time range, rows, step, gaps, NaN share, depth "
            "sequence gaps and the validation report."
        ),
    )
    ins.add_argument("path", nargs="?", type=Path, help="a data file or folder")
    ins.add_argument("--config", type=Path, default=None, help="experiment YAML (inspect its sources as configured)")
    ins.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value (repeatable)")
    ins.add_argument("--coverage", action="store_true",
                     help="with --config: also build the panel and print its coverage (funding imputed or "
                          "uncharged per perpetual, clock rows without a value per exogenous series)")
    ins.add_argument("--series", action="store_true", help="one line per exogenous series instead of per entity")
    ins.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the summary as JSON ('-' for stdout)")
    ins.set_defaults(handler=_inspect)
    p.set_defaults(handler=lambda args: (p.print_help(), 1)[1])


def _ingest(args: argparse.Namespace) -> int:
    from dea.config import load_config
    from dea.data.store import DataStore, store_root
    from dea.errors import DeaError

    cfg = load_config(args.config, args.overrides)
    store = DataStore(args.store or store_root(cfg))
    print(f"dea data ingest: writing to store {store.root.resolve()}", flush=True)
    rows, failures = [], []
    for src, out in zip(cfg.data.sources, store.ingest_sources(list(cfg.data.sources), cfg.base_dir, args.allow_shrink)):
        if isinstance(out, DeaError):
            failures.append(f"  {src.name}: {out}")
            continue
        entry = store.entry(out.name, out.kind) or {}
        issues = len((entry.get("report") or {}).get("issues", []))
        rows.append([out.name, out.kind, out.status, f"{out.rows:,}", str(entry.get("start", "-"))[:19],
                     str(entry.get("end", "-"))[:19], out.fingerprint[:12], str(issues)])
    from dea.data.inspect import format_table

    if rows:
        print(format_table(rows, ["dataset", "kind", "status", "rows", "start", "end", "fingerprint", "issues"]))
    if failures:
        print("\nrefused:", file=sys.stderr)
        print("\n".join(failures), file=sys.stderr)
        return 2
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from dea.data.inspect import inspect_config, inspect_path

    if (args.path is None) == (args.config is None):
        print("dea data inspect: give either PATH or --config FILE", file=sys.stderr)
        return 2
    if args.coverage and args.config is None:
        print("dea data inspect: --coverage needs --config FILE", file=sys.stderr)
        return 2
    cfg = None
    if args.config is not None:
        from dea.config import load_config

        cfg = load_config(args.config, args.overrides)
        result = inspect_config(cfg, by_series=args.series)
    else:
        result = inspect_path(args.path, by_series=args.series)
    print(result.format())
    if cfg is not None:
        print("\n" + format_instruments(cfg))
    if args.coverage and cfg is not None:
        from dea.data.coverage import coverage_report
        from dea.data.panel import build_panel

        print("\ncoverage on the decision clock:")
        print(coverage_report(build_panel(cfg)).format())
    if args.json_out is not None:
        doc = result.to_dict()
        if cfg is not None:
            doc = {**doc, "instruments": instrument_terms(cfg)}
        text = json.dumps(doc, indent=1, default=str)
        if str(args.json_out) == "-":
            print(text)
        else:
            args.json_out.write_text(text)
    refused = [e for e in result.entries if e.status == "refused"]
    return 2 if refused else 0


def instrument_terms(cfg) -> list[dict]:  # noqa: ANN001 - dea.config.ExperimentConfig
    """Each instrument's kind, contract terms, account and exposure bounds, as ``inspect`` shows."""
    from dea.config.accounts import resolve_accounts

    accs = resolve_accounts(cfg.data.instruments, cfg.accounts)
    opts = any(i.kind == "option" for i in cfg.data.instruments)
    if not opts:
        from dea.risk.engine import exposure_bounds

        lower, upper = exposure_bounds(cfg.data.instruments, cfg.accounts, cfg.risk)
    rows = []
    for j, (inst, acc) in enumerate(zip(cfg.data.instruments, accs)):
        row = {"symbol": inst.symbol, **inst.terms(), "account": acc.name, "collateral": acc.collateral,
               "margin": acc.margin, "margin_mode": acc.margin_mode}
        if not opts:
            row["bounds"] = [float(lower[j]), float(upper[j])]
        rows.append(row)
    return rows


def format_instruments(cfg) -> str:  # noqa: ANN001
    """One line per instrument: kind, contract (linear/inverse, size, settlement), expiry/roll,
    account and collateral, and the exposure bounds the risk engine enforces."""
    lines = ["instruments:"]
    for r in instrument_terms(cfg):
        parts = [f"{r['symbol']}: {r['kind']} at {r['venue']}", f"{r['base'] or '?'}/{r['quote']}"]
        if "contract" in r:
            unit = r["quote"] if r["contract"] == "inverse" else (r["base"] or "base")
            parts.append(f"{r['contract']}, contract {r['contract_size']:g} {unit}, settles in {r['settlement']}, "
                         f"maintenance margin {r['maintenance_margin']:g}")
        if r.get("funding") is not None:
            parts.append(f"funding {r['funding']}")
        if r.get("expiry") is not None:
            roll = f", rolls to {r['roll_to']} {r['roll_before']} before" if r.get("roll_to") else ""
            parts.append(f"expires {r['expiry']}{roll}")
        parts.append(f"account {r['account']} ({r['collateral']}, {'margin' if r['margin'] else 'cash'}, "
                     f"{r['margin_mode']})")
        if "bounds" in r:
            lo, hi = r["bounds"]
            parts.append(f"exposure [{lo:g}, {hi:g}]" + (" long-only" if lo == 0.0 else ""))
        else:
            parts.append("options: handled by the options overlay")
        lines.append("  " + "; ".join(parts))
    return "\n".join(lines)
