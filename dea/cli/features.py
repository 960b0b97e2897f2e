"""``dea features``: build the feature matrix for a config, store it, and summarise it.

The summary's rank correlation with the next-period return is a sanity check (does a feature
carry *any* information, does it have the expected sign), not a claim of predictive power.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="build the feature matrix of a config and print a per-feature summary",
        description=(
            "Assemble the config's panel, build its feature set (batch), write the matrix as Parquet to "
            "<data.store>/features/<name>-<spec hash>.parquet, and print per feature: warm-up, NaN share "
            "after warm-up, and Spearman rank correlation with the next-period return."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="Parquet file to write (default: in the data store)")
    p.set_defaults(handler=_run)


def next_period_returns(price: "object") -> "object":
    """log(p[t+1] / p[t]) per instrument ([T, N]; last row NaN)."""
    import numpy as np

    price = np.asarray(price, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = np.where(price > 0, np.log(np.where(price > 0, price, 1.0)), np.nan)
    out = np.full_like(lp, np.nan)
    out[:-1] = lp[1:] - lp[:-1]
    return out


def feature_summary(matrix: "object", panel: "object") -> list[dict[str, object]]:
    """Per feature: warm-up, NaN share after warm-up, Spearman correlation with the next return
    (its own instrument's for ``name@SYM`` columns; the equal-weight mean for global ones)."""
    import numpy as np
    from scipy.stats import spearmanr

    fwd = next_period_returns(panel.fields["price"])
    fin = np.isfinite(fwd)
    count = fin.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd_mean = np.where(count > 0, np.where(fin, fwd, 0.0).sum(axis=1) / count, np.nan)
    shares = matrix.nan_share()
    rows = []
    for j, name in enumerate(matrix.names):
        _, _, sym = name.partition("@")
        target = fwd[:, panel.instruments.index(sym)] if sym else fwd_mean
        x = matrix.values[:, j]
        ok = np.isfinite(x) & np.isfinite(target)
        rho = float("nan")
        if ok.sum() >= 10 and np.ptp(x[ok]) > 0:
            rho = float(spearmanr(x[ok], target[ok]).statistic)
        rows.append({"feature": name, "warmup": matrix.warmups[j], "nan_share": shares[name], "spearman_next": rho})
    return rows


def _run(args: argparse.Namespace) -> int:
    from dea.config import load_config
    from dea.data.panel import build_panel
    from dea.features import FeatureSet

    cfg = load_config(args.config, args.overrides)
    panel = build_panel(cfg)
    fs = FeatureSet.from_config(cfg.features, panel.instruments)
    matrix = fs.batch(panel)
    from dea.data.store import store_root

    out = args.out or store_root(cfg) / "features" / f"{cfg.name}-{fs.spec_hash[:12]}.parquet"
    print(f"dea features: writing to {out.resolve()}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    matrix.write_parquet(out)
    rows = feature_summary(matrix, panel)
    width = max(len(r["feature"]) for r in rows)
    print(f"panel: {len(panel):,} rows x {len(panel.instruments)} instruments, fingerprint {panel.fingerprint[:12]}")
    print(f"features: {len(fs.names)} columns, warm-up {fs.warmup} rows, spec hash {fs.spec_hash[:12]}")
    print(f"wrote {out}")
    print(f"\n{'feature':<{width}}  {'warmup':>7}  {'nan_share':>9}  {'spearman_next':>13}")
    for r in rows:
        rho = r["spearman_next"]
        rho_s = "nan" if rho != rho else f"{rho:+.4f}"  # constant or empty column: undefined
        print(f"{r['feature']:<{width}}  {r['warmup']:>7}  {r['nan_share']:>9.3f}  {rho_s:>13}")
    return 0
