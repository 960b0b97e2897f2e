"""Options in the backtest: a linear (perpetual) exposure with a rolled option overlay.

The linear exposure is a constant (``exposure: 1.0``, buy and hold) or a learned one: the path of
the ``<strategy>_exposure.csv`` that ``dea backtest`` writes, with ``exposure_column`` naming the
instrument, read point-in-time (the exposure decided at or before each overlay decision;
:mod:`dea.backtest.exposure_file` refuses a file that does not cover the window).

The overlay holds one option series at a time on the underlying: a protective put (long) or a
covered call (short) on a long linear position (none is opened while the exposure is not long),
``hedge_ratio`` contracts-worth of underlying per unit of the linear position's underlying,
struck at ``moneyness`` × the price at the roll (on a ``strike_step`` grid), expiring at the
first 08:00 UTC listed expiry at or after ``tenor`` later (the instant its name stands for).
The per-decision logic (mark, settle, budgeted roll) is
:class:`dea.options.overlay.OverlayStepper`, which the live loop's overlay
(:mod:`serving.options_overlay`) runs too. Each roll is a pre-trade check against the greek budgets
(:func:`dea.risk.greeks.check_option_order`, with the perpetual's exposure counted in the
delta), so the vega budget sizes the overlay when it binds.

Fills are at the option's mark (or model price) plus the fee: the bid/ask spread of the option is
not modelled. Pricing at each decision time: the option's snapshot mark where a chain snapshot
(the config's ``marks`` source, store kind ``option_chain``) has one no older than
``marks_max_age`` (``mark_price × underlying_price``, the coin premium in USD at the forward it
prices off), otherwise Black-76 on the underlying's price with the implied volatility input
(Deribit DVOL known at that time, or a flat IV). The perpetual price stands in for the forward
(its basis to the dated future is not modelled). At the first decision at or after expiry the
option settles at intrinsic value on that decision's price (cash settlement, as Deribit's
European options), less the delivery fee, and the next series is bought.

Every underlying price and DVOL value passes the market-data guards (:mod:`dea.guards`, the
live loop's checks) before use; a quarantined value is never used and the age of a series counts
from its last good value (a decision whose input is older than its limit is refused).

Accounting is in the quote currency (USD): a coin-settled premium is converted at the underlying
price when paid and the settlement when received, so the USD equity is the same as holding the
coin for no time. Fees: perpetual taker rate × |Δw| (DESIGN.md), option fee = ``rate`` × underlying
notional capped at ``cap_of_premium`` × premium (Deribit's rule), delivery fee likewise. The
perpetual pays its settled funding on the exposure held across each settlement; a config without
a funding source must say ``funding: none``.

Run it: ``dea options-overlay configs/btc_put_overlay.yaml [--out DIR]`` (or ``python -m dea.backtest.options_overlay``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import yaml
from pydantic import Field, ValidationError, model_validator

from dea.config.base import StrictModel, duration_field
from dea.data.config import SourceConfig
from dea.errors import ConfigError, DataError
from dea.guards import GuardsConfig, MarketGuard
from dea.options.overlay import OverlayStepper, option_name
from dea.options.overlay_config import OptionFeeConfig, OverlayLegConfig
from dea.risk.greeks import GreekBudgetConfig
from dea.timeutil import NS_PER_DAY, parse_duration, parse_timestamp


class IVInputConfig(StrictModel):
    """Exactly one of a DVOL file (``dvol``) or a ``flat`` volatility (fraction)."""

    dvol: str | None = None
    flat: float | None = Field(default=None, gt=0)
    publication_lag: str = "0s"
    max_age: str = "2d"

    _dur = duration_field("publication_lag", "max_age")

    @model_validator(mode="after")
    def _one(self) -> "IVInputConfig":
        if (self.dvol is None) == (self.flat is None):
            raise ValueError("give exactly one of iv.dvol (a DVOL file) or iv.flat (a volatility)")
        return self


class OverlayExperimentConfig(StrictModel):
    """``configs/btc_put_overlay.yaml``: the whole worked example."""

    name: str
    underlying: str = "BTC"
    prices: SourceConfig
    funding: SourceConfig | Literal["none"] = Field(description="the perpetual's settled funding (kind funding), or 'none'")
    start: str
    end: str
    decision_hour_utc: int = Field(default=8, ge=0, le=23, description="daily decisions at this hour (Deribit expiry: 8)")
    exposure: float | str = Field(
        description="the perpetual's target exposure: a constant (1.0 = buy and hold) or the path of a `dea backtest` "
        "exposure CSV (<strategy>_exposure.csv), read point-in-time at each decision",
    )
    exposure_column: str | None = Field(
        default=None, min_length=1, description="with an exposure file: its column (the instrument, e.g. BTCUSDT)",
    )
    initial_equity: float = Field(default=1_000_000.0, gt=0)
    perp_taker_fee: float = Field(default=0.0005, ge=0)
    overlay: OverlayLegConfig
    option_fees: OptionFeeConfig = Field(default_factory=OptionFeeConfig)
    iv: IVInputConfig
    marks: SourceConfig | None = Field(
        default=None, description="option chain snapshots (kind option_chain: deribit_ticker / tardis_options_chain) "
        "whose marks price the overlay where one is known and fresh",
    )
    marks_max_age: str = Field(default="1h", description="a snapshot mark older than this is not used (model price instead)")
    budgets: GreekBudgetConfig = Field(default_factory=GreekBudgetConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)

    _dur = duration_field("marks_max_age")

    @model_validator(mode="after")
    def _exposure_column_with_a_file(self) -> "OverlayExperimentConfig":
        if isinstance(self.exposure, str) and self.exposure_column is None:
            raise ValueError("exposure is a file: exposure_column must name its column (the instrument, e.g. BTCUSDT)")
        if not isinstance(self.exposure, str) and self.exposure_column is not None:
            raise ValueError("exposure_column is used only with an exposure file (exposure: PATH); exposure is a constant")
        return self

    @model_validator(mode="after")
    def _marks_are_a_chain(self) -> "OverlayExperimentConfig":
        if self.marks is not None and self.marks.kind != "option_chain":
            raise ValueError(f"marks must be an option_chain source (deribit_ticker / tardis_options_chain), not {self.marks.kind!r}")
        return self


@dataclass(frozen=True)
class SnapshotMarks:
    """Option marks from chain snapshots (:mod:`dea.data.loaders.options_chain`), in USD."""

    instrument: np.ndarray
    available_at: np.ndarray
    mark_usd: np.ndarray
    max_age_ns: int

    @classmethod
    def from_chain(cls, chain: pa.Table, max_age: str = "1h") -> "SnapshotMarks":
        usd = chain["mark_price"].to_numpy(zero_copy_only=False) * chain["underlying_price"].to_numpy(zero_copy_only=False)
        avail = chain["available_at"].to_numpy()
        names = np.array(chain["instrument"].to_pylist(), dtype=object)
        order = np.lexsort((avail, names))
        return cls(names[order], avail[order], usd[order], parse_duration(max_age))

    def lookup(self, instrument: str, t: int) -> float:
        """Latest finite mark of ``instrument`` known at ``t`` and at most ``max_age`` old; NaN if none."""
        lo = np.searchsorted(self.instrument, instrument, "left")
        hi = np.searchsorted(self.instrument, instrument, "right")
        j = lo + np.searchsorted(self.available_at[lo:hi], t, "right") - 1
        if j < lo or t - self.available_at[j] > self.max_age_ns or not np.isfinite(self.mark_usd[j]):
            return math.nan
        return float(self.mark_usd[j])


@dataclass
class OverlayResult:
    """Per decision: equity, exposures and overlay state; ``events`` lists rolls and settlements."""

    ts: np.ndarray
    equity: np.ndarray
    perp_exposure: np.ndarray
    option_contracts: np.ndarray
    option_delta: np.ndarray
    vega: np.ndarray
    total_delta: np.ndarray
    fees: float
    funding_paid: float
    initial_equity: float
    events: list[dict] = field(default_factory=list)
    priced_from: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        eq = np.concatenate([[self.initial_equity], self.equity])
        peak = np.maximum.accumulate(eq)
        return {
            "total_return": float(eq[-1] / self.initial_equity - 1.0),
            "max_drawdown": float(np.max(1.0 - eq / peak)),
            "rolls": sum(e["event"] == "roll" for e in self.events),
            "vega_bound_rolls": sum(e["event"] == "roll" and "vega" in e["binding"] for e in self.events),
            "fees": float(self.fees),
            "funding_paid": float(self.funding_paid),
            "quarantined_inputs": sum(self.quarantined.values()),
        }


_option_name = option_name  # the name the overlay's tests import


def run_overlay(
    ts: np.ndarray,
    price: np.ndarray,
    iv: np.ndarray,
    exposure: np.ndarray,
    leg: OverlayLegConfig | None,
    budgets: GreekBudgetConfig,
    fees: OptionFeeConfig,
    *,
    underlying: str = "BTC",
    initial_equity: float = 1_000_000.0,
    perp_taker_fee: float = 0.0,
    funding: np.ndarray | None = None,
    marks: SnapshotMarks | None = None,
) -> OverlayResult:
    """Simulate decisions at ``ts`` (int64 ns, increasing) with underlying ``price``, implied vol
    ``iv`` (fraction, known at each ``ts``) and target perpetual ``exposure``; ``leg=None`` runs
    the perpetual alone (the comparison without the overlay). ``funding[i]``: the sum of the
    perpetual's funding rates settled in ``(ts[i-1], ts[i]]``, paid on the exposure held across
    them (DESIGN.md sign: longs pay a positive rate); ``None`` means the perpetual has none."""
    ts = np.asarray(ts, dtype=np.int64)
    price, iv, exposure = (np.asarray(a, dtype=np.float64) for a in (price, iv, exposure))
    n_steps = len(ts)
    if n_steps < 2 or not (price.shape == iv.shape == exposure.shape == ts.shape):
        raise DataError(f"overlay needs at least two decisions and equal-length ts/price/iv/exposure, got {ts.shape}, {price.shape}, {iv.shape}, {exposure.shape}")
    if np.any(np.diff(ts) <= 0):
        raise DataError("overlay decision times must be strictly increasing")
    for name, v in (("price", price), ("iv", iv)):
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise DataError(f"overlay {name} must be finite and positive; decision {np.datetime64(int(ts[np.argmax(bad)]), 'ns')} has {v[np.argmax(bad)]!r}")
    if not np.isfinite(exposure).all():
        raise DataError("overlay exposure has missing values")
    funding = np.zeros(n_steps) if funding is None else np.asarray(funding, dtype=np.float64)
    if funding.shape != ts.shape or not np.isfinite(funding).all():
        raise DataError("overlay funding must give one finite summed rate per decision")
    out = {k: np.zeros(n_steps) for k in ("equity", "perp", "contracts", "odelta", "vega", "tdelta")}
    equity, held_w = float(initial_equity), 0.0
    total_fees, total_funding, events = 0.0, 0.0, []
    leg_state = None if leg is None else OverlayStepper(leg, budgets, fees, underlying=underlying, marks=marks)

    for i in range(n_steps):
        s = price[i]
        if i:
            r = s / price[i - 1] - 1.0
            pnl = held_w * equity * r
            paid = held_w * equity * funding[i]
            pnl -= paid
            total_funding += paid
            pnl += leg_state.revalue(int(ts[i]), s, iv[i]) if leg_state is not None else 0.0
            drifted = held_w * equity * (1.0 + r)
            equity += pnl
            if equity <= 0:
                raise DataError(f"equity reached {equity:.2f} at {np.datetime64(int(ts[i]), 'ns')}: the account is wiped out")
            held_w = drifted / equity
        # perpetual rebalance to the target
        fee = perp_taker_fee * abs(exposure[i] - held_w) * equity
        equity -= fee
        total_fees += fee
        held_w = float(exposure[i])
        if leg_state is None:
            out["equity"][i], out["perp"][i], out["tdelta"][i] = equity, held_w, held_w
            continue
        settled = leg_state.settlement(int(ts[i]), s)
        if settled is not None:
            equity -= settled.fee_usd
            total_fees += settled.fee_usd
            events.append(settled.event())
            leg_state.close()
        if i < n_steps - 1:
            order = leg_state.plan_roll(int(ts[i]), s, iv[i], held_w, equity)
            if order is not None:
                leg_state.open(order)
                equity -= order.fee_usd
                total_fees += order.fee_usd
                events.append(order.event())
        out["equity"][i], out["perp"][i], out["contracts"][i] = equity, held_w, leg_state.contracts
        g = leg_state.exposure(int(ts[i]), s, iv[i], equity)
        out["odelta"][i], out["vega"][i] = g.delta, g.vega
        out["tdelta"][i] = held_w + out["odelta"][i]
    sources = leg_state.priced_from if leg_state is not None else {"snapshot": 0, "model": 0}
    return OverlayResult(ts, out["equity"], out["perp"], out["contracts"], out["odelta"], out["vega"], out["tdelta"],
                         total_fees, total_funding, float(initial_equity), events, sources)


def _decision_clock(cfg: OverlayExperimentConfig) -> np.ndarray:
    start = parse_timestamp(cfg.start) // NS_PER_DAY * NS_PER_DAY + cfg.decision_hour_utc * 3600 * 10**9
    end = parse_timestamp(cfg.end)
    return np.arange(start, end + 1, NS_PER_DAY, dtype=np.int64)


def _asof(ts: np.ndarray, known_at: np.ndarray, values: np.ndarray, max_age_ns: int, what: str) -> np.ndarray:
    """The latest value known at each ``ts`` (``known_at <= ts``), refusing a missing or stale one."""
    j = np.searchsorted(known_at, ts, "right") - 1
    if (j < 0).any():
        raise DataError(f"no {what} known at {np.datetime64(int(ts[np.argmax(j < 0)]), 'ns')} (the series starts later)")
    age = ts - known_at[j]
    if (age > max_age_ns).any():
        k = int(np.argmax(age > max_age_ns))
        raise DataError(f"{what} at {np.datetime64(int(ts[k]), 'ns')} is {age[k] / NS_PER_DAY:.2f} days old (max {max_age_ns / NS_PER_DAY:g})")
    return values[j]


def guarded(guard: MarketGuard, stream: str, ts: np.ndarray, known_at: np.ndarray, values: np.ndarray, *, is_price: bool) -> np.ndarray:
    """Keep mask of the rows the market-data guards pass (the same checks as the live loop), fed
    in the order a live loop would see them. Prices get the price checks (jumps included);
    the volatility index the value checks (time, finiteness, order; its positivity the loader
    enforces)."""
    keep = np.ones(len(ts), dtype=bool)
    check = guard.check_price if is_price else guard.check_value
    for k in np.argsort(known_at, kind="stable").tolist():
        if check(stream, 0, int(ts[k]), int(known_at[k]), float(values[k])) is not None:
            keep[k] = False
    return keep


def funding_per_step(clock: np.ndarray, table: pa.Table, guard: MarketGuard) -> np.ndarray:
    """Sum of the settled funding rates in each ``(clock[i-1], clock[i]]`` (0 for the first
    decision, before anything is held). The settlements must cover the clock without a gap longer
    than 1.5 intervals: a missing settlement would otherwise be a silent zero."""
    ts, known, rate = table["ts_event"].to_numpy(), table["available_at"].to_numpy(), table["rate"].to_numpy(zero_copy_only=False)
    keep = guarded(guard, "funding", ts, known, rate, is_price=False)
    order = np.argsort(ts[keep], kind="stable")
    ts, rate, interval = ts[keep][order], rate[keep][order], table["interval_ns"].to_numpy()[keep][order]
    inside = (ts > clock[0]) & (ts <= clock[-1])
    edges = np.concatenate([[clock[0]], ts[inside], [clock[-1]]])
    limit = 1.5 * (int(np.max(interval)) if len(interval) else 0)
    gaps = np.diff(edges)
    if not len(interval) or (gaps > limit).any():
        k = int(np.argmax(gaps > limit)) if len(interval) else 0
        raise DataError(f"funding has no settlement between {np.datetime64(int(edges[k]), 'ns')} and "
                        f"{np.datetime64(int(edges[k + 1]), 'ns')}; give the full history or set funding: none")
    csum = np.concatenate([[0.0], np.cumsum(rate)])
    upto = csum[np.searchsorted(ts, clock, "right")]
    return np.concatenate([[0.0], np.diff(upto)])


def load_config(path: str | Path) -> OverlayExperimentConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        return OverlayExperimentConfig.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {msgs}") from None


def _resolve(base: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


@dataclass(frozen=True)
class OverlayInputs:
    """What the config's data gives the overlay on its decision clock (guarded, point-in-time)."""

    clock: np.ndarray
    price: np.ndarray
    iv: np.ndarray
    exposure: np.ndarray
    funding: np.ndarray | None
    marks: SnapshotMarks | None
    quarantined: dict[str, int]


def load_inputs(cfg: OverlayExperimentConfig, base: Path) -> OverlayInputs:
    """Decision clock, underlying price, IV, target exposure, funding and marks of ``cfg``
    (relative paths resolve against ``base``, the config's folder)."""
    from dea.data.loaders.options_chain import load_deribit_dvol
    from dea.data.sources import load_source

    clock = _decision_clock(cfg)
    bars = load_source(cfg.prices, base).table
    guard = MarketGuard(cfg.guards, [cfg.underlying])
    b_ts, b_known, b_close = bars["ts_event"].to_numpy(), bars["available_at"].to_numpy(), bars["close"].to_numpy(zero_copy_only=False)
    keep = guarded(guard, "price", b_ts, b_known, b_close, is_price=True)
    px = _asof(clock, b_known[keep], b_close[keep], parse_duration("1h"), f"{cfg.prices.name} price")
    if cfg.iv.dvol is not None:
        d_ts, known, vol = load_deribit_dvol(_resolve(base, cfg.iv.dvol), publication_lag=cfg.iv.publication_lag)
        keep = guarded(guard, "dvol", d_ts, known, vol, is_price=False)
        iv = _asof(clock, known[keep], vol[keep], parse_duration(cfg.iv.max_age), "DVOL")
    else:
        iv = np.full(len(clock), cfg.iv.flat)
    if isinstance(cfg.exposure, str):
        from dea.backtest.exposure_file import exposure_at

        w = exposure_at(_resolve(base, cfg.exposure), cfg.exposure_column or "", clock)
    else:
        w = np.full(len(clock), cfg.exposure)
    rates = None if cfg.funding == "none" else funding_per_step(clock, load_source(cfg.funding, base).table, guard)
    marks = None if cfg.marks is None else SnapshotMarks.from_chain(load_source(cfg.marks, base).table, cfg.marks_max_age)
    return OverlayInputs(clock, px, iv, w, rates, marks, {k: v for k, v in guard.counts.items() if v})


def run_experiment(path: str | Path) -> tuple[OverlayExperimentConfig, OverlayResult, OverlayResult]:
    """Load the config's data and run it with and without the overlay (relative paths resolve
    against the config's folder)."""
    path = Path(path)
    cfg = load_config(path)
    inp = load_inputs(cfg, path.parent)
    common = dict(underlying=cfg.underlying, initial_equity=cfg.initial_equity, perp_taker_fee=cfg.perp_taker_fee, funding=inp.funding)
    with_overlay = run_overlay(inp.clock, inp.price, inp.iv, inp.exposure, cfg.overlay, cfg.budgets, cfg.option_fees, marks=inp.marks, **common)
    alone = run_overlay(inp.clock, inp.price, inp.iv, inp.exposure, None, cfg.budgets, cfg.option_fees, **common)
    with_overlay.quarantined = dict(inp.quarantined)
    alone.quarantined = dict(inp.quarantined)
    return cfg, with_overlay, alone


def run_and_write(config: str | Path, out: Path | None = None) -> dict:
    """Run the config with and without the overlay; print and return the two summaries; with
    ``out`` write ``<name>_exposure.csv``, ``<name>_equity.csv`` and ``<name>_summary.json``."""
    cfg, res, alone = run_experiment(config)
    table = {"with_overlay": res.summary(), "perp_only": alone.summary()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        when = np.datetime_as_string(res.ts.astype("datetime64[ns]"), unit="s")
        rows = ["ts,perp_exposure,option_contracts,option_delta,total_delta,vega"]
        rows += [f"{a},{b:.6f},{c:.4f},{d:.6f},{e:.6f},{f:.8f}" for a, b, c, d, e, f in zip(when, res.perp_exposure, res.option_contracts, res.option_delta, res.total_delta, res.vega)]
        (out / f"{cfg.name}_exposure.csv").write_text("\n".join(rows) + "\n")
        rows = ["ts,equity_with_overlay,equity_perp_only"] + [f"{a},{b:.2f},{c:.2f}" for a, b, c in zip(when, res.equity, alone.equity)]
        (out / f"{cfg.name}_equity.csv").write_text("\n".join(rows) + "\n")
        (out / f"{cfg.name}_summary.json").write_text(json.dumps({**table, "events": res.events, "priced_from": res.priced_from}, indent=2))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dea.backtest.options_overlay", description="perpetual exposure with an option overlay")
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, help="write <name>_exposure.csv, <name>_equity.csv and summary JSON here")
    args = parser.parse_args(argv)
    print(json.dumps(run_and_write(args.config, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
