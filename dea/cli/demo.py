"""``dea demo``: the main job on the embedded defaults (what ``make demo`` runs).

It chains exactly the steps a user would run by hand, on ``configs/demo.yaml`` (real Coin Metrics
and FRED data bundled in ``data/``, a local SQLite MLflow store, no server):

1. ``dea data ingest``: load and validate every source into the canonical Parquet store.
2. ``dea train``: walk-forward training on the cost-aware objective, out-of-sample evaluation
   against the baselines, tearsheet, MLflow run, ONNX export behind the parity gate and
   registration as ``challenger``.
3. ``dea serve``: the exported model replays the data it never saw (the last walk-forward test
   block, which the exported last-fold model was not trained on) through the live allocator loop
   with the paper exchange — the same code path production runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="main job on the bundled data: ingest, train, evaluate, export, replay live",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "demo.yaml",
                   help="experiment YAML (default configs/demo.yaml of this checkout)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every step, e.g. --set training.epochs=3 (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<name>-<time>)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db)")
    p.add_argument("--readme", type=Path, default=None, metavar="README.md",
                   help="also write the out-of-sample table into this file's generated 'demo' results block")
    p.set_defaults(handler=_handle)


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _output_flags(args: argparse.Namespace) -> list[str]:
    """The demo's --quiet/--verbose, passed on to the commands it runs (each sets up logging)."""
    if getattr(args, "quiet", False):
        return ["--quiet"]
    return ["--verbose"] * int(getattr(args, "verbose", 0) or 0)


def _handle(args: argparse.Namespace) -> int:
    from dea.cli.main import main as dea_main
    from dea.config import load_config
    from dea.timeutil import iso

    common = ["--config", str(args.config)] + [f"--set={o}" for o in args.overrides]
    flags = _output_flags(args)

    _banner(f"1/3 ingest: dea data ingest --config {args.config}")
    code = dea_main([*flags, "data", "ingest", *common])
    if code:
        return code

    _banner("2/3 train, evaluate against baselines, export and register: dea train")
    # The exported model is the last fold's, so the last test block is data it never saw.
    cfg = load_config(args.config, [*args.overrides, "training.final_refit=false"])
    from training.pipeline import train
    from training.report import format_summary

    result = train(cfg, tracking_uri=args.tracking_uri, out_dir=args.out)
    print(format_summary(result))
    if args.readme is not None:
        from training.report import results_block, update_results_block

        changed = update_results_block(args.readme, "demo", "dea demo --readme README.md", results_block(result))
        print(f"{args.readme}: demo results block {'updated' if changed else 'unchanged'}")
    onnx_path = result.paths.get("onnx")
    if onnx_path is None:
        print("no ONNX model was exported (training.export_onnx or tracking disabled): skipping the replay")
        return 0

    last = result.folds[-1].fold
    start, end = result.clock[last.test[0]], result.clock[last.test[1] - 1]
    journal = Path(result.out_dir) / "journal.sqlite"
    serve_argv = [
        "serve", *common, "--model", str(onnx_path), "--feed", "replay", "--exchange", "paper",
        "--start", iso(int(start)), "--end", iso(int(end)), "--journal", str(journal), "--log-format", "text",
    ]
    _banner("3/3 replay held-out data through the live loop: dea " + " ".join(serve_argv))
    return dea_main([*flags, *serve_argv])
