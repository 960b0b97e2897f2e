"""Vectorised backtester: target exposures on the decision clock -> a :class:`BacktestResult`.

``backtest`` charges fees (maker/taker per instrument), half-spread and impact (square-root law,
or a book walk where :class:`~dea.backtest.market.BookDepth` is given), funding at each settlement
on the position actually held across it (an inverse contract's on its open contract notional, as
the exchange and :class:`~dea.backtest.ledger.ContractLedger` charge it), decision latency, lot,
whole-contract (inverse) and min-notional rounding, and a
maintenance-margin liquidation check; every target goes through the risk rules the live loop
uses. The work is one fused numba pass (:mod:`dea.backtest._kernel`, imported lazily so that this
module stays cheap to import); ``engine="reference"`` runs the event-driven replay instead, which
is the kernel's cross-check.

Latency rule: an order decided at t fills at t + latency. With latency = k whole clock steps it
fills at the price of step t + k; otherwise at the price linearly interpolated between the two
bars around t + latency (impact coefficient and book of the earlier one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from dea.backtest.config import CostsConfig, latency_from_config
from dea.backtest.market import BookDepth, Market, prepare_market
from dea.backtest.result import BacktestEvent, BacktestResult
from dea.data.panel import Panel
from dea.errors import ConfigError, DataError
from dea.execution.fills import fee_rates
from dea.instruments import Instrument
from dea.risk.config import RiskConfig
from dea.config.accounts import AccountsConfig
from dea.backtest.expiry import apply_expiry
from dea.risk.engine import rate_ring_size, risk_params, rule_bounds
from dea.risk.rules import N_RULES, RULE_NAMES
from dea.timeutil import NS_PER_YEAR, iso

if TYPE_CHECKING:  # pragma: no cover
    from dea.config.experiment import ExperimentConfig

Engine = Literal["numba", "reference"]
Kernel = Literal["auto", "general"]
_MAX_EVENTS = 10_000


def _as_targets(targets: np.ndarray, shape: tuple[int, int], symbols: Sequence[str]) -> np.ndarray:
    t = np.ascontiguousarray(targets, dtype=np.float64)
    if t.shape != shape:
        raise DataError(f"targets have shape {t.shape}; expected {shape} (clock x instruments {tuple(symbols)})")
    return t


def _check_targets(t: np.ndarray, symbols: Sequence[str], clock: np.ndarray, hold_nan: bool) -> np.ndarray:
    """``t`` if it holds no infinite target (and no NaN unless ``hold_nan``), else a DataError."""
    bad = np.isinf(t) if hold_nan else ~np.isfinite(t)
    if bad.any():
        r, i = np.argwhere(bad)[0]
        raise DataError(
            f"target exposure of {symbols[i]} at {iso(clock[r])} is {t[r, i]} ({int(bad.sum())} bad values); "
            + ("targets must not be infinite" if hold_nan else "targets must be finite (pass hold_nan=True to let NaN mean 'hold')")
        )
    return t


def _optional(name: str, x: np.ndarray | None, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    if x is None:
        return np.zeros((1,) * len(shape)), False
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.shape != shape:
        raise DataError(f"{name} has shape {a.shape}; expected {shape}")
    return a, True


def backtest(
    data: Market | Panel,
    targets: np.ndarray,
    *,
    instruments: Sequence[Instrument] | None = None,
    costs: CostsConfig | None = None,
    risk: RiskConfig | None = None,
    accounts: AccountsConfig | None = None,
    latency_ns: int = 0,
    feature_age_ns: np.ndarray | None = None,
    dispersion: np.ndarray | None = None,
    vol: np.ndarray | None = None,
    depth: BookDepth | None = None,
    hold_nan: bool = False,
    periods_per_year: float | None = None,
    name: str = "policy",
    engine: Engine = "numba",
    kernel: Kernel = "auto",
) -> BacktestResult:
    """Backtest target exposures ``targets`` [T, N] decided at each clock time.

    ``data``: a prepared :class:`Market` or a :class:`Panel` (then ``instruments`` is required).
    ``feature_age_ns`` [T], ``dispersion`` [T, N], ``vol`` [T, N] (annualised forecasts) feed the
    stale-data guard, dispersion scaling and vol targeting. ``hold_nan``: NaN targets mean "keep
    the current exposure" (periodic rebalancers); otherwise a NaN is an error.
    """
    costs = costs or CostsConfig()
    risk = risk or RiskConfig()
    if isinstance(data, Panel):
        if instruments is None:
            raise DataError("backtest(panel, ...) needs the instruments (Instrument objects) of the panel")
        market = prepare_market(data, instruments, costs, depth)
    else:
        market = data
        if depth is not None:
            market = replace(market, depth=depth)
    T, N = market.price.shape
    symbols = market.symbols
    tgt = apply_expiry(_as_targets(targets, (T, N), symbols), market.clock, market.instruments, market.price)
    age, has_age = _optional("feature_age_ns", feature_age_ns, (T,))
    disp, has_disp = _optional("dispersion", dispersion, (T, N))
    vv, has_vol = _optional("vol", vol, (T, N))
    for nm, arr, has in (("dispersion", disp, has_disp), ("vol", vv, has_vol)):
        if has and not np.isfinite(arr).all():
            raise DataError(f"{nm} contains NaN/inf; the risk engine needs finite values")
    if latency_ns < 0:
        raise DataError(f"latency must be >= 0, got {latency_ns}")
    ppy = periods_per_year or (NS_PER_YEAR / market.step_ns)
    if engine == "reference":
        from dea.backtest.event import replay_market

        _check_targets(tgt, symbols, market.clock, hold_nan)
        return replay_market(market, tgt, risk, costs, latency_ns=latency_ns, accounts=accounts,
                             feature_age_ns=age if has_age else None, dispersion=disp if has_disp else None,
                             vol=vv if has_vol else None, name=name, periods_per_year=ppy)
    if engine != "numba":
        raise DataError(f"unknown backtest engine {engine!r}; use 'numba' or 'reference'")
    if risk.greeks:
        raise ConfigError(
            f"risk.greeks budgets {sorted(risk.greeks)} are enforced by the RiskEngine after the jitted rules; "
            "run this backtest with engine: reference (the event replay), which applies them as the live loop does"
        )
    if kernel not in ("auto", "general"):
        raise DataError(f"unknown backtest kernel {kernel!r}; use 'auto' or 'general'")
    from dea.backtest._kernel_fast import LANES

    # inverse contracts (funding on the contract notional, whole contracts) run in the general kernel
    fast = (kernel == "auto" and latency_ns == 0 and market.depth is None and N <= LANES
            and not any(i.inverse for i in market.instruments))
    if not fast:  # the fast kernel checks the targets as it reads them
        _check_targets(tgt, symbols, market.clock, hold_nan)
    return _run_kernel(market, tgt, costs, risk, latency_ns, age, has_age, disp, has_disp, vv, has_vol, ppy, name,
                       fast, hold_nan, rule_bounds(risk, market.instruments, accounts))


def _run_kernel(market: Market, tgt: np.ndarray, costs: CostsConfig, risk: RiskConfig, latency_ns: int,
                age: np.ndarray, has_age: bool, disp: np.ndarray, has_disp: bool, vv: np.ndarray, has_vol: bool,
                ppy: float, name: str, fast: bool, hold_nan: bool, bounds: np.ndarray) -> BacktestResult:
    from dea.backtest import _kernel as K
    from dea.backtest import _kernel_fast as F

    T, N = market.price.shape
    insts = market.instruments
    step = market.step_ns
    lat_k, rem = divmod(int(latency_ns), step)
    lat_frac = rem / step
    if market.depth is not None:
        d = market.depth
        has_book = True
        bpx, bsz, apx, asz = (np.ascontiguousarray(x, dtype=np.float64) for x in (d.bid_px, d.bid_sz, d.ask_px, d.ask_sz))
    else:
        has_book = False
        bpx = bsz = apx = asz = np.zeros((1, 1, 1))
    # the fast kernel writes every element, so its outputs need no zeroing (a tenth of its time)
    alloc = np.empty if fast else np.zeros
    outs = {k: alloc(T) for k in ("equity", "net", "gross", "fees", "spread", "impact", "funding", "turnover", "margin")}
    mask = alloc(T, dtype=np.int32)
    expo = alloc((T, N))
    tot = np.zeros((K.N_TOT, N))
    q = np.zeros(N)
    px = np.full(N, np.nan)
    ev_t = np.zeros(_MAX_EVENTS, dtype=np.int64)
    ev_kind = np.zeros(_MAX_EVENTS, dtype=np.int64)
    ev_eq = np.zeros(_MAX_EVENTS)
    ev_m = np.zeros(_MAX_EVENTS)
    err = np.zeros(4, dtype=np.int64)
    fee = fee_rates(insts, costs.fee_side)
    liq_fee = np.array([i.taker_fee for i in insts], dtype=np.float64)
    lot = kernel_lots(insts)
    min_notional = np.array([i.min_notional for i in insts], dtype=np.float64)
    mm = np.array([i.maintenance_margin for i in insts], dtype=np.float64)
    half_spread = costs.half_spread_bps * 1e-4
    ring = rate_ring_size(risk)
    series = tuple(outs[k] for k in ("equity", "net", "gross", "fees", "spread", "impact", "funding", "turnover",
                                      "margin"))
    state = (tot, q, px, ev_t, ev_kind, ev_eq, ev_m, err)
    if fast:
        # zero latency on bars: the vectorised fast path (equal to the general kernel, tested); it
        # reads whole vectors of 8 past the last instrument, so its arrays must be C-contiguous
        mask_hist = np.empty(1 << N_RULES, dtype=np.int64)
        n_ev = F.simulate_bars(
            market.clock, np.ascontiguousarray(market.price, dtype=np.float64), *market.funding_events,
            np.ascontiguousarray(market.impact_coef, dtype=np.float64), tgt,
            fee, liq_fee, half_spread, lot, min_notional, mm, float(costs.initial_equity), hold_nan,
            risk_params(risk), bounds,
            age, has_age, disp, has_disp, vv, has_vol,
            *series, mask, mask_hist, expo, *state, *F.lanes(), *F.risk_state(N, ring),
        )
    else:
        n_ev = K.simulate(
            market.clock, market.price, *market.funding_events, market.impact_coef, tgt,
            fee, liq_fee, half_spread, lot, min_notional, mm,
            lat_k, lat_frac, float(costs.initial_equity),
            risk_params(risk), bounds,
            age, has_age, disp, has_disp, vv, has_vol,
            has_book, bpx, bsz, apx, asz,
            *series, mask, expo, *state, *K.workspace(N, lat_k, ring),
        )
        mask_hist = np.bincount(mask, minlength=1 << N_RULES)
    if err[0] == K.ERR_BAD_TARGET:
        _check_targets(tgt, market.symbols, market.clock, hold_nan)  # raises, naming the first bad target
        raise AssertionError("kernel reported a bad target the check does not see")  # pragma: no cover
    if err[0] == K.ERR_IMPACT_UNKNOWN:
        s, i = int(err[1]), int(err[2])
        raise DataError(
            f"impact for {market.symbols[i]} at {iso(market.clock[s])} needs volatility and volume history "
            "(sqrt model) but none is known yet; warm the data up or set costs.impact.model"
        )
    events = []
    for e in range(min(n_ev, _MAX_EVENTS)):
        s = int(ev_t[e])
        if ev_kind[e] == K.EV_LIQUIDATION:
            events.append(BacktestEvent(int(market.clock[s]), s, "liquidation", float(ev_eq[e]), float(ev_m[e]),
                                        f"equity {ev_eq[e]:.2f} <= maintenance margin {ev_m[e]:.2f}: all positions closed"))
        else:
            events.append(BacktestEvent(int(market.clock[s]), s, "bankrupt", float(ev_eq[e]), 0.0,
                                        "equity not positive after liquidation: trading stops"))
    notes = list(market.notes)
    if n_ev > _MAX_EVENTS:
        notes.append(f"{n_ev} account events; only the first {_MAX_EVENTS} are listed")
    equity = outs["equity"]
    return BacktestResult(
        name=name,
        clock=market.clock,
        instruments=market.symbols,
        initial_equity=float(costs.initial_equity),
        equity=equity,
        returns=outs["net"],
        gross_returns=outs["gross"],
        costs={"fees": outs["fees"], "spread": outs["spread"], "impact": outs["impact"], "funding": outs["funding"]},
        turnover=outs["turnover"],
        exposures=expo,
        margin_use=outs["margin"],
        instrument_costs={"fees": tot[K.TOT_FEES], "spread": tot[K.TOT_SPREAD], "impact": tot[K.TOT_IMPACT],
                          "funding": tot[K.TOT_FUNDING]},
        instrument_pnl=tot[K.TOT_TRADE_CASH] + q * px,
        traded_notional=tot[K.TOT_TRADED],
        events=tuple(events),
        interventions=_rule_counts(mask_hist),
        intervention_mask=mask,
        periods_per_year=ppy,
        latency_ns=int(latency_ns),
        engine="numba",
        notes=tuple(notes),
    )


def kernel_lots(instruments: Sequence[Instrument]) -> np.ndarray:
    """The ``lot`` vector of the kernels: ``lot_size`` (base units, 0 = none) of linear and spot
    instruments, ``-contract_size`` for an inverse contract, whose orders the general kernel
    rounds to whole contracts of that many quote units (:func:`dea.execution.orders.inverse_order_quantity`;
    the fast kernel does not take inverse contracts) and whose funding it charges on the open contract
    notional (the ledger's ``rate * N / P`` coins, worth ``rate * N`` in the reporting currency).
    Exact at zero latency; with latency an order is rounded at the decision price and its
    contracts counted at the fill price (so ``N`` need not stay a whole number of contracts)."""
    return np.array([-i.contract_size if i.inverse else i.lot_size for i in instruments], dtype=np.float64)


def _rule_counts(mask_hist: np.ndarray) -> dict[str, int]:
    """Decisions each rule changed (:func:`~dea.backtest.result.counts_from_mask`), from the
    number of steps with each intervention mask: no pass over the steps per rule."""
    masks = np.arange(len(mask_hist))
    return {RULE_NAMES[r]: int(mask_hist[(masks >> r) & 1 == 1].sum()) for r in range(N_RULES)}


def backtest_config(cfg: "ExperimentConfig", data: Market | Panel, targets: np.ndarray, **kwargs) -> BacktestResult:
    """:func:`backtest` with instruments, costs, risk, latency and annualisation from an experiment config."""
    kwargs.setdefault("instruments", cfg.data.instruments)
    kwargs.setdefault("costs", cfg.costs)
    kwargs.setdefault("risk", cfg.risk)
    kwargs.setdefault("accounts", cfg.accounts)
    kwargs.setdefault("latency_ns", latency_from_config(cfg))
    kwargs.setdefault("periods_per_year", cfg.backtest.periods_per_year)
    kwargs.setdefault("engine", cfg.backtest.engine)
    return backtest(data, targets, **kwargs)
