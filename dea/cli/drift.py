"""``dea drift --model M --data D``: per-feature drift of data D against model M's training data.

M is an exported ONNX policy (its training-time feature distribution is stored in its metadata,
or beside it as ``<model>.drift.json``) or a registry URI ``models:/NAME@champion``. D is a table
of feature values with one column per model feature (Parquet, Feather/Arrow or CSV, e.g. the
output of ``dea features``), or an experiment YAML, whose features are then computed over its
data. Exit 0 when nothing drifted, 3 when some feature did (so a cron job can alert on it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXIT_DRIFT = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "drift",
        help="per-feature PSI / KS drift report of data against a model's training distribution",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--model", required=True, help="ONNX file or models:/NAME@ALIAS")
    p.add_argument("--data", required=True, type=Path, help="features table (.parquet/.feather/.arrow/.csv) or experiment YAML")
    p.add_argument("--last", type=int, default=None, metavar="N", help="score only the newest N rows")
    p.add_argument("--psi", type=float, default=None, help="PSI threshold (default drift.psi_threshold or 0.25)")
    p.add_argument("--ks", type=float, default=None, help="KS distance threshold (default drift.ks_threshold or 0.15)")
    p.add_argument("--reference", type=Path, default=None, help="drift reference JSON (default: from the model)")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI for models:/ sources")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(handler=_handle)


def _resolve_model(model: str, tracking_uri: str | None) -> Path:
    if model.startswith(("models:/", "runs:/")):
        from serving.model_source import resolve_model  # lazy: needs mlflow

        return Path(resolve_model(model, tracking_uri=tracking_uri).path)
    return Path(model)


def read_feature_table(path: Path, names: list[str]):  # noqa: ANN201 - numpy array
    """Columns ``names`` of a features file as float64 [rows, F], in that order."""
    import numpy as np

    from dea.errors import DataFormatError, ModelError

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".feather", ".arrow", ".ipc"):
            import pyarrow.feather as feather

            table = feather.read_table(path)
        elif suffix in (".csv", ".gz"):
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
        else:
            raise DataFormatError(f"{path}: unknown features file type {suffix!r} (parquet, feather, csv or a YAML config)")
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read: {exc}") from None
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ModelError(f"{path}: lacks {len(missing)} of the model's features, e.g. {missing[:5]}")
    return np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in names])


def _features_from_config(path: Path, names: list[str]):  # noqa: ANN201
    """Model inputs computed from an experiment's data, exactly as training prepares them."""
    from dea.config import load_config
    from dea.errors import ModelError
    from training.prepare import prepare_data  # lazy: batch feature pipeline

    data = prepare_data(load_config(path)).data
    col = {n: j for j, n in enumerate(data.feature_names)}
    missing = [n for n in names if n not in col]
    if missing:
        raise ModelError(f"{path}: the config's features do not include the model's {missing[:5]}")
    return data.features[:, [col[n] for n in names]].astype("float64")


def _handle(args: argparse.Namespace) -> int:
    from dea.drift import DriftReference, DriftThresholds, compare, format_report, load_reference

    model = _resolve_model(args.model, args.tracking_uri)
    if args.reference is not None:
        ref = DriftReference.from_json(args.reference.read_text(encoding="utf-8"), str(args.reference))
    else:
        ref = load_reference(model)
    psi, ks = args.psi, args.ks
    if args.data.suffix.lower() in (".yaml", ".yml"):
        from dea.config import load_config

        dc = load_config(args.data).drift
        psi = psi if psi is not None else dc.psi_threshold
        ks = ks if ks is not None else dc.ks_threshold
        values = _features_from_config(args.data, ref.names)
    else:
        values = read_feature_table(args.data, ref.names)
    if args.last:
        values = values[-args.last :]
    th = DriftThresholds(psi=psi if psi is not None else 0.25, ks=ks if ks is not None else 0.15, min_samples=1)
    rows = compare(ref, values, thresholds=th)
    print(f"drift of {args.data} ({values.shape[0]} rows) against {model}'s training distribution")
    print(format_report(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=float))
    return EXIT_DRIFT if any(r.flagged for r in rows) else 0
