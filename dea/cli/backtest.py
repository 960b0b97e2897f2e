"""``dea backtest``: backtest a policy (a baseline or an exported ONNX model) against every baseline
on the same data, costs and risk rules; print the metrics table and write the tearsheet."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="backtest a policy against the baselines; print metrics, write a tearsheet",
        description=(
            "Build the panel from the config, compute the policy's target exposures (a baseline, or "
            "an ONNX policy run step by step on the config's features), backtest them and every "
            "configured baseline with the same fees, spread, impact, funding, latency and risk rules, "
            "print the metrics side by side and write tearsheet.png / tearsheet.html / metrics.json."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="experiment YAML (e.g. configs/demo.yaml)")
    p.add_argument("--policy", required=True, help="baseline:NAME (e.g. baseline:hrp) or PATH.onnx")
    p.add_argument("--out", type=Path, default=None, help="tearsheet folder (default backtests/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set costs.latency=1m (repeatable)")
    p.add_argument("--start", default=None, help="evaluate from this time on (ISO); earlier rows only warm up")
    p.add_argument("--end", default=None, help="evaluate up to this time (ISO, inclusive)")
    p.add_argument("--engine", choices=("numba", "reference"), default=None,
                   help="vectorised numba kernel (default) or the event-driven reference replay")
    p.add_argument("--closed-loop", action="store_true",
                   help="ONNX policy: feed back the exposure the account holds (event-driven replay) instead "
                        "of the previous target (training's rollout)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="configurations tried before this one: adds the deflated Sharpe ratio")
    p.add_argument("--trials-sharpe-var", type=float, default=None,
                   help="variance of the tried configurations' annualised Sharpe ratios (with --n-trials)")
    p.add_argument("--no-baselines", action="store_true", help="backtest the policy only")
    p.set_defaults(handler=_handle)


def _span(clock, start: str | None, end: str | None) -> tuple[int, int]:  # noqa: ANN001
    import numpy as np

    from dea.errors import ConfigError
    from dea.timeutil import parse_timestamp

    a = 0 if start is None else int(np.searchsorted(clock, parse_timestamp(start), side="left"))
    b = len(clock) if end is None else int(np.searchsorted(clock, parse_timestamp(end), side="right"))
    if b - a < 2:
        raise ConfigError(f"--start/--end leave {max(b - a, 0)} decision rows; need at least 2")
    return a, b


def _execution_backtest(cfg, sub, closed, targets, dispersion, a: int, b: int, name: str, out_dir: Path):  # noqa: ANN001, ANN202
    """The policy through :class:`dea.backtest.event_exec.ExecutionBacktester` on the config's
    book captures: (result, note naming the execution journal written to ``out_dir``)."""
    import numpy as np

    from dea.backtest.baselines import targets_from
    from dea.backtest.config import latency_from_config
    from dea.backtest.event import TargetSchedule
    from dea.backtest.event_exec import ExecutionBacktester, capture_stream
    from dea.execution.replay import journal_records
    from dea.timeutil import NS_PER_YEAR

    if closed is not None:
        policy = closed
    else:
        disp = None if dispersion is None else np.nan_to_num(dispersion[a:b], nan=0.0)
        policy = TargetSchedule(np.asarray(targets_from(targets, a)[: b - a], dtype=np.float64), dispersion=disp)
    bt = ExecutionBacktester(cfg.data.instruments, cfg.costs, cfg.risk, policy, execution=cfg.execution,
                             latency_ns=latency_from_config(cfg), accounts=cfg.accounts, impact_k=sub.impact_k,
                             name=name, periods_per_year=cfg.backtest.periods_per_year or NS_PER_YEAR / sub.step_ns)
    res = bt.run_capture(capture_stream(cfg.data.sources, cfg.data.symbols, cfg.resolve_path, cfg.execution), (int(t) for t in sub.clock))
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = out_dir / "execution.sqlite"
    journal.unlink(missing_ok=True)
    n = journal_records(bt.parent_records(), journal)
    return res, (f"{name}: {n} parent orders worked by execution.algo={cfg.execution.algo} on the capture's book "
                 f"(queue-aware fills); execution journal {journal} (dea execution-report)")


def _handle(args: argparse.Namespace) -> int:
    import numpy as np

    from dea.backtest.baselines import BASELINES, targets_from
    from dea.backtest.config import latency_from_config
    from dea.backtest.market import prepare_market, slice_market
    from dea.backtest.vectorized import backtest_config
    from dea.config import load_config
    from dea.data.panel import build_panel
    from dea.errors import ConfigError
    from dea.metrics import compute_metrics
    from dea.report import format_metrics_table, write_tearsheet

    cfg = load_config(args.config, list(args.overrides))
    if args.engine:
        cfg = cfg.with_overrides([f"backtest.engine={args.engine}"])
    if (args.n_trials is None) != (args.trials_sharpe_var is None):
        raise ConfigError("--n-trials and --trials-sharpe-var go together")
    print(f"dea backtest {cfg.name}: writing the tearsheet and series to {args.out or Path('backtests') / cfg.name}", flush=True)
    panel = build_panel(cfg)
    market = prepare_market(panel, cfg.data.instruments, cfg.costs)
    a, b = _span(market.clock, args.start, args.end)
    sub = slice_market(market, a, b)
    notes: list[str] = []

    policy = args.policy
    dispersion = None
    closed = None
    if policy.startswith("baseline:"):
        name = policy.split(":", 1)[1]
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; available: {sorted(BASELINES)}")
        targets = BASELINES[name](panel, cfg.backtest.baseline)
        policy_name = name
    else:
        path = Path(policy)
        if path.suffix != ".onnx":
            raise ConfigError(f"--policy must be baseline:NAME or a .onnx file, got {policy!r}")
        from dea.backtest.policy_eval import OnnxPolicy, onnx_policy_targets, prepare_features
        from dea.features.featureset import FeatureSet

        fs = FeatureSet.from_config(cfg.features, panel.instruments)
        matrix = fs.batch(panel)
        policy_name = path.stem
        if args.closed_loop:
            X, mask, _ = prepare_features(matrix, cfg.features.missing)
            closed = OnnxPolicy(path, X[a:b], mask[a:b], instruments=panel.instruments)
            targets = None
        else:
            # the model trades from flat at --start: earlier rows only warm the features up, exactly
            # as training's report evaluates each test block (so the two agree)
            # and it is consulted only where the market is tradable (forward return, funding and
            # impact known), holding what it has drifted to elsewhere, as in training's rollout
            span = np.zeros(len(market.clock), dtype=bool)
            span[a:b] = True
            out = onnx_policy_targets(path, matrix, missing=cfg.features.missing, instruments=panel.instruments,
                                      row_mask=span & market.tradable, returns=market.forward_returns)
            targets, dispersion = out.targets, out.dispersion
            if out.nan_outputs:
                notes.append(f"{out.nan_outputs} NaN model outputs held the exposure")
            meta = out.metadata
            if meta is not None and meta.train_window:
                notes.append(f"model trained on {meta.train_window}; evaluate on later rows (--start) to stay out of sample")

    results = {}
    out_dir = args.out or Path("backtests") / cfg.name
    if cfg.execution.worked:
        # orders worked as parents by the configured schedule on the capture's book (queue-aware
        # fills), the event backtest's decisions and risk engine; the parents go to a journal
        # that `dea execution-report` reads (routed instruments: split across execution.routes)
        results[policy_name], note = _execution_backtest(cfg, sub, closed, targets, dispersion, a, b, policy_name,
                                                         out_dir)
        notes.append(note)
    elif closed is not None:
        from dea.backtest.event import EventBacktester, market_events
        from dea.timeutil import NS_PER_YEAR

        bt = EventBacktester(cfg.data.instruments, cfg.costs, cfg.risk, closed, latency_ns=latency_from_config(cfg),
                             accounts=cfg.accounts,
                             impact_k=sub.impact_k, name=policy_name,
                             periods_per_year=cfg.backtest.periods_per_year or NS_PER_YEAR / sub.step_ns)
        results[policy_name] = bt.run(market_events(sub), (int(t) for t in sub.clock))
    else:
        tg = targets_from(targets, a)[: b - a]
        disp = None if dispersion is None else np.nan_to_num(dispersion[a:b], nan=0.0)
        results[policy_name] = backtest_config(cfg, sub, tg, hold_nan=True, dispersion=disp, name=policy_name)
    if not args.no_baselines:
        for name in cfg.backtest.baselines:
            if name == policy_name or name not in BASELINES:
                if name not in BASELINES:
                    raise ConfigError(f"backtest.baselines names unknown baseline {name!r}; available: {sorted(BASELINES)}")
                continue
            tg = targets_from(BASELINES[name](panel, cfg.backtest.baseline), a)[: b - a]
            results[name] = backtest_config(cfg, sub, tg, hold_nan=True, name=name)

    metrics = {}
    for name, res in results.items():
        if name == policy_name and args.n_trials is not None:
            metrics[name] = compute_metrics(res, n_trials=args.n_trials, trials_sharpe_variance=args.trials_sharpe_var)
        else:
            metrics[name] = compute_metrics(res)
    title = f"{cfg.name}: {policy_name} vs baselines"
    paths = write_tearsheet(results, out_dir, title, metrics)
    from dea.backtest.series_out import write_series

    series = {name: write_series(res, out_dir) for name, res in results.items()}
    print(title)
    print(format_metrics_table(metrics))
    seen: dict[str, None] = {}
    for n in notes + [note for res in results.values() for note in res.notes]:
        seen.setdefault(n, None)
    for n in seen:
        print(f"note: {n}")
    print(f"tearsheet: {paths['html']}  ({paths['png']}, {paths['metrics']})")
    print(f"series: {len(series)} strategies' exposure and equity CSVs in {out_dir}")
    return 0
