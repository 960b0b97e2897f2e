"""The stateful risk engine the live loop and the event-driven backtest call once per decision.

It wraps :func:`dea.risk.rules.risk_step` (the single implementation of every rule; the vectorised
backtest JIT-compiles the same function) with validation, human-readable intervention records,
counters, and a JSON-friendly state that the live journal persists. Imports numpy and stdlib
only, so serving can use it without pulling in numba or pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dea.config.accounts import AccountsConfig, resolve_accounts
from dea.errors import ConfigError, RiskError
from dea.instruments import Instrument, refuse_options
from dea.risk import rules
from dea.risk.config import RiskConfig
from dea.risk.greeks import GreekBook, GreekDecision
from dea.timeutil import NS_PER_MIN, NS_PER_S, parse_duration

_STALE_ACTIONS = {"hold": 0.0, "derisk": 1.0, "flatten": 2.0}
# rules whose diagnostic is a count (or nothing): their reason text takes few distinct values
_COUNT_RULES = frozenset({rules.R_KILL, rules.R_BAND, rules.R_LONG_ONLY, rules.R_CAP, rules.R_MAX_ORDER, rules.R_RATE})
STATE_VERSION = 1
#: not a rule of :func:`rules.risk_step` (it rewrites the target before the rules run)
EXPIRY_RULE = "future_expiry"
#: not a rule of :func:`rules.risk_step` either: the greek budgets (``risk.greeks``), after the rules
GREEK_RULE = "greek_budget"


@dataclass(frozen=True, slots=True)
class Intervention:
    """One rule changing one decision: which rule, why, and the exposures before and after it."""

    t_ns: int
    rule: str
    reason: str
    before: tuple[float, ...]
    after: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """What the engine allows: the exposure to trade towards, what changed it, and the halt flag."""

    exposure: np.ndarray
    interventions: tuple[Intervention, ...]
    halted: bool


# A frozen dataclass's __init__ sets each field through object.__setattr__ (~0.9 µs for three,
# a sixth of the engine's whole per-decision cost); the decision path builds its RiskDecision
# by writing the slots directly, which is what that __init__ does, minus the dispatch.
_new_decision = RiskDecision.__new__
_set_exposure = RiskDecision.__dict__["exposure"].__set__
_set_interventions = RiskDecision.__dict__["interventions"].__set__
_set_halted = RiskDecision.__dict__["halted"].__set__


def _decision(exposure: np.ndarray, interventions: tuple[Intervention, ...], halted: bool) -> RiskDecision:
    """``RiskDecision(exposure, interventions, halted)``, built faster (see above)."""
    d = _new_decision(RiskDecision)
    _set_exposure(d, exposure)
    _set_interventions(d, interventions)
    _set_halted(d, halted)
    return d


def instrument_caps(cfg: RiskConfig, instruments: Sequence[Instrument]) -> np.ndarray:
    """Per-instrument |w| caps from ``max_exposure`` (a number, or a mapping with optional '*')."""
    symbols = [i.symbol for i in instruments]
    if not isinstance(cfg.max_exposure, Mapping):
        return np.full(len(symbols), float(cfg.max_exposure))
    caps = dict(cfg.max_exposure)
    unknown = sorted(set(caps) - set(symbols) - {"*"})
    if unknown:
        raise RiskError(f"risk.max_exposure names unknown instruments {unknown}; known: {symbols}")
    missing = [s for s in symbols if s not in caps and "*" not in caps]
    if missing:
        raise RiskError(f"risk.max_exposure has no cap for {missing} and no '*' default")
    return np.array([float(caps.get(s, caps.get("*", 0.0))) for s in symbols])


def exposure_bounds(
    instruments: Sequence[Instrument], accounts: AccountsConfig | None = None, risk: RiskConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-instrument (lower, upper) exposure bounds, the one definition the risk engine, the
    backtest and the policy's output layer share.

    A spot instrument whose account has no margin is long-only and unlevered: [0, min(cap, 1)]
    (a cash account cannot sell what it does not hold, nor buy more than its equity; the sum over
    cash accounts at several venues is held to the one equity by the account rule of
    :func:`rules.risk_step`, see :func:`rule_bounds`); everything
    else is [-cap, cap], with ``cap`` from ``risk.max_exposure`` (unbounded without ``risk``).
    Options are refused: they are not linear exposures (:func:`dea.instruments.refuse_options`).
    """
    refuse_options(instruments, "exposure bounds")
    try:
        accs = resolve_accounts(instruments, accounts)
    except ConfigError as exc:
        raise RiskError(str(exc)) from None
    caps = instrument_caps(risk, instruments) if risk is not None else np.full(len(instruments), math.inf)
    lower = np.empty(len(instruments))
    upper = np.empty(len(instruments))
    for i, (inst, acc) in enumerate(zip(instruments, accs)):
        cash_spot = inst.kind == "spot" and not acc.margin
        lower[i] = 0.0 if cash_spot else -caps[i]
        upper[i] = min(caps[i], 1.0) if cash_spot else caps[i]
    return lower, upper


def contract_terms(
    instruments: Sequence[Instrument], accounts: AccountsConfig | None = None, risk: RiskConfig | None = None
) -> dict[str, dict[str, Any]]:
    """``{symbol: terms}`` for the ONNX contract's ``dea.instrument_terms``: kind, contract type
    and size, settlement currency, expiry and the exposure bounds (:func:`exposure_bounds`), so a
    runner can refuse a model trained for other contracts and bound its output the same way."""
    lower, upper = exposure_bounds(instruments, accounts, risk)
    out: dict[str, dict[str, Any]] = {}
    for inst, lo, hi in zip(instruments, lower.tolist(), upper.tolist()):
        out[inst.symbol] = {"kind": inst.kind, "contract": inst.contract, "contract_size": inst.contract_size,
                            "settlement": inst.settlement_currency, "expiry": inst.expiry,
                            "lower": lo if math.isfinite(lo) else None, "upper": hi if math.isfinite(hi) else None}
    return out


def rule_bounds(
    cfg: RiskConfig, instruments: Sequence[Instrument], accounts: AccountsConfig | None = None
) -> np.ndarray:
    """The flat ``caps`` vector :func:`rules.risk_step` reads: upper and lower bounds
    (:func:`exposure_bounds`), each instrument's account, the collateral it needs per unit of
    |exposure| (1 for unlevered spot, 1 / leverage otherwise, divided by 1 - haircut: a coin
    posted with a 10 % haircut backs only 90 % of its value), then per account its max gross and
    max share of equity. With several accounts the rules also hold the collateral of all of them
    to the equity (sum need_i |w_i| <= 1): the backtest's one reporting-currency equity is what
    backs every venue, so two cash accounts cannot each be fully invested in spot."""
    lower, upper = exposure_bounds(instruments, accounts, cfg)
    accs = resolve_accounts(instruments, accounts)
    need = []
    for inst, a in zip(instruments, accs):
        # collateral other than the reporting currency counts (1 - haircut) of its value
        keep = 1.0 - a.haircut
        if inst.kind == "spot" and not a.margin:
            need.append(1.0 / keep)
        elif a.leverage is not None:
            need.append(1.0 / (a.leverage * keep))
        elif a.max_equity_share < 1.0:
            raise RiskError(
                f"account {a.name!r} limits max_equity_share to {a.max_equity_share} but has no leverage: set "
                f"'leverage' so the collateral {inst.symbol!r} ties up (notional / leverage) is known"
            )
        else:
            need.append(0.0)
    order: list[str] = []
    by_name = {a.name: a for a in accs}
    for a, nd in zip(accs, need):
        binds = a.max_gross is not None or nd > 0.0
        if binds and a.name not in order:
            order.append(a.name)
    idx = [float(order.index(a.name)) if a.name in order else -1.0 for a in accs]
    groups: list[float] = []
    for name in order:
        a = by_name[name]
        groups += [math.inf if a.max_gross is None else a.max_gross, a.max_equity_share]
    return np.array([*upper, *lower, *idx, *need, *groups], dtype=np.float64)


def gross_limit(cfg: RiskConfig, instruments: Sequence[Instrument], accounts: AccountsConfig | None = None) -> float:
    """The largest gross exposure every rule allows: ``min(max_gross, max_leverage)`` and, per
    account, its ``max_gross`` and the gross its equity share can collateralise (summed over
    accounts). A policy that never proposes more never has its output cut for size alone."""
    b = rule_bounds(cfg, instruments, accounts)
    n = len(instruments)
    if any(b[2 * n + i] < 0 for i in range(n)):
        return float(min(cfg.max_gross, cfg.max_leverage))  # an account without limits
    n_acc = (len(b) - 4 * n) // 2
    collateral, free = 0.0, 0.0  # gross of accounts that post collateral, and of those that do not
    for a in range(n_acc):
        members = [i for i in range(n) if b[2 * n + i] == a]
        need = min(b[3 * n + i] for i in members)
        by_share = b[4 * n + 2 * a + 1] / need if need > 0 else math.inf
        g = min(b[4 * n + 2 * a], by_share, sum(b[i] for i in members))
        if need > 0:
            collateral += g
        else:
            free += g
    if n_acc > 1:  # all venues' collateral together is at most the equity (rules.risk_step)
        needs = [b[3 * n + i] for i in range(n) if b[3 * n + i] > 0]
        if needs:
            collateral = min(collateral, 1.0 / min(needs))
    return float(min(cfg.max_gross, cfg.max_leverage, collateral + free))


def risk_params(cfg: RiskConfig) -> np.ndarray:
    """Pack a :class:`RiskConfig` into the float vector :func:`rules.risk_step` reads."""
    p = np.zeros(rules.N_PARAMS)
    p[rules.P_MAX_GROSS] = cfg.max_gross
    p[rules.P_MAX_NET] = cfg.max_net
    p[rules.P_MAX_LEVERAGE] = cfg.max_leverage
    vt = cfg.vol_target
    p[rules.P_VT_ON] = 1.0 if vt.enabled else 0.0
    p[rules.P_VT_TARGET] = vt.target_annual
    p[rules.P_VT_LAMBDA] = 0.5 ** (1.0 / vt.halflife)
    p[rules.P_VT_MAX_SCALE] = vt.max_scale
    p[rules.P_VT_WARMUP] = float(vt.warmup if vt.warmup is not None else vt.halflife)
    p[rules.P_DD_ON] = 1.0 if cfg.drawdown.enabled else 0.0
    p[rules.P_DD_SOFT] = cfg.drawdown.soft
    p[rules.P_DD_HARD] = cfg.drawdown.hard
    p[rules.P_BAND] = cfg.no_trade_band
    p[rules.P_MAX_ORDER] = math.inf if cfg.max_order_notional is None else cfg.max_order_notional
    p[rules.P_RATE_LIMIT] = 0.0 if cfg.max_orders_per_minute is None else float(cfg.max_orders_per_minute)
    p[rules.P_RATE_WINDOW_NS] = float(NS_PER_MIN)
    p[rules.P_STALE_AGE_NS] = float(parse_duration(cfg.stale.max_age))
    p[rules.P_STALE_ACTION] = _STALE_ACTIONS[cfg.stale.action]
    p[rules.P_STALE_FACTOR] = cfg.stale.derisk_factor
    p[rules.P_DISP_K] = cfg.dispersion_scale
    return p


def rate_ring_size(cfg: RiskConfig) -> int:
    """Length of the order-time ring (at least 1 so arrays are never empty)."""
    return max(1, cfg.max_orders_per_minute or 0)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def explain(rule: int, value: float, cfg: RiskConfig) -> str:
    """Human-readable reason for an intervention of ``rule`` with diagnostic ``value``."""
    name = rules.RULE_NAMES[rule]
    if rule == rules.R_KILL:
        return "kill switch is engaged: flat until reset_kill_switch()"
    if rule == rules.R_STALE:
        return (
            f"input age {value / NS_PER_S:.3f}s exceeds stale.max_age {cfg.stale.max_age}: "
            f"action {cfg.stale.action}"
        )
    if rule == rules.R_DISPERSION:
        return f"model dispersion up to {_fmt(value)} scales exposure by 1/(1+{cfg.dispersion_scale}*dispersion)"
    if rule == rules.R_VOL:
        return f"vol targeting to {cfg.vol_target.target_annual:.2%} annualised: scale {_fmt(value)}"
    if rule == rules.R_DD_BRAKE:
        return (
            f"drawdown {value:.2%} between soft {cfg.drawdown.soft:.2%} and hard {cfg.drawdown.hard:.2%}: "
            "linear de-risking"
        )
    if rule == rules.R_DD_KILL:
        return f"drawdown {value:.2%} reached hard limit {cfg.drawdown.hard:.2%}: flatten and halt"
    if rule == rules.R_BAND:
        return f"{int(value)} instrument(s) moved less than no_trade_band {cfg.no_trade_band}: held"
    if rule == rules.R_LONG_ONLY:
        return f"{int(value)} short or negative target(s) on long-only spot (no margin account) refused: set to 0"
    if rule == rules.R_CAP:
        return f"{int(value)} instrument(s) clipped to max_exposure (unlevered spot: at most 1)"
    if rule == rules.R_ACCOUNT:
        return (f"account limits (venue max_gross / max_equity_share, or the collateral of all venues above the "
                f"equity) scaled exposure by {_fmt(value)}")
    if rule == rules.R_GROSS:
        return f"gross exposure {_fmt(value)} above max_gross {cfg.max_gross}: scaled down"
    if rule == rules.R_NET:
        return f"net exposure {_fmt(value)} beyond max_net {cfg.max_net}: scaled down"
    if rule == rules.R_LEVERAGE:
        return f"leverage {_fmt(value)} above max_leverage {cfg.max_leverage}: scaled down"
    if rule == rules.R_MAX_ORDER:
        return f"{int(value)} order(s) clipped to max_order_notional {cfg.max_order_notional} of equity"
    if rule == rules.R_RATE:
        return f"{int(value)} orders in the last minute; limit {cfg.max_orders_per_minute}/min: smallest moves held"
    return name


def interventions_from_trail(
    t_ns: int, mask: int, trail: Sequence[Sequence[float]], diag: Sequence[float], cfg: RiskConfig
) -> tuple[Intervention, ...]:
    """Turn the mask/trail/diag written by :func:`rules.risk_step` into records, in rule order."""
    records = []
    n = len(trail) // (rules.N_RULES + 1)
    before = tuple(trail[:n])
    for r in range(rules.N_RULES):
        if mask >> r & 1:
            after = tuple(trail[(r + 1) * n:(r + 2) * n])
            records.append(Intervention(t_ns, rules.RULE_NAMES[r], explain(r, diag[r], cfg), before, after))
            before = after
    return tuple(records)


class RiskEngine:
    """Per-decision risk rules with state (equity peak, kill switch, EWMA covariance, order times).

    ``apply`` is called once per decision with the policy's target exposure and the current
    exposure; it returns the exposure the order logic may trade towards. ``counts`` accumulates
    interventions per rule for reports and metrics.
    """

    def __init__(
        self, cfg: RiskConfig, instruments: Sequence[Instrument], accounts: AccountsConfig | None = None
    ) -> None:
        if not instruments:
            raise RiskError("RiskEngine needs at least one instrument")
        self.cfg = cfg
        self.accounts = accounts
        self.instruments = tuple(instruments)
        self.symbols = tuple(i.symbol for i in instruments)
        self.n = len(instruments)
        self._p = risk_params(cfg).tolist()
        self._caps = rule_bounds(cfg, instruments, accounts).tolist()
        self._ring = rate_ring_size(cfg)
        self._work = [0.0] * self.n
        self._out = [0.0] * self.n
        self._diag = [0.0] * rules.N_RULES
        self._trail = [0.0] * (self.n * (rules.N_RULES + 1))
        self._zeros = [0.0] * self.n
        self._shape = (self.n,)
        self._reasons: dict[tuple[int, float], str] = {}  # reasons of count-valued rules
        self.counts: dict[str, int] = {name: 0 for name in rules.RULE_NAMES}
        self.counts[EXPIRY_RULE] = 0
        self.counts[GREEK_RULE] = 0
        # greek budgets: None (no cost in apply) unless risk.greeks names an underlying
        self._greeks = GreekBook(cfg.greeks, instruments) if cfg.greeks else None
        # dated futures: (index, roll instant, index of roll_to or -1), in roll order
        syms = list(self.symbols)
        self._expiries = sorted(
            ((i, inst.roll_ns, syms.index(inst.roll_to) if inst.roll_to in syms else -1)
             for i, inst in enumerate(instruments) if inst.kind == "future" and inst.roll_ns is not None),
            key=lambda e: e[1])
        for inst in instruments:
            if inst.roll_to is not None and inst.roll_to not in syms:
                raise RiskError(f"future {inst.symbol!r} rolls to {inst.roll_to!r}, which is not an instrument {syms}")
        self._init_state()

    def _init_state(self) -> None:
        self._fs = [math.nan, 0.0, 0.0, 1.0]
        self._ist = [rules.NO_TIME, 0]
        self._prev_px = [math.nan] * self.n
        self._cov = [0.0] * (self.n * self.n)
        self._order_times = [rules.NO_TIME] * self._ring

    # -- decisions ---------------------------------------------------------------------------------
    def _vector(self, name: str, x: Any, allow_nan: bool) -> list[float]:
        """``x`` as a list of N floats; non-finite values refused (NaN allowed where it means hold).
        Plain Python on purpose: for a handful of instruments it is several times faster than
        numpy reductions, and this sits on the live loop's decision path."""
        if isinstance(x, np.ndarray):
            if x.shape != self._shape:
                raise RiskError(f"{name} has shape {x.shape}; expected ({self.n},) for instruments {self.symbols}")
            vals = x.tolist()
        else:
            vals = [float(v) for v in x]
            if len(vals) != self.n:
                raise RiskError(f"{name} has shape ({len(vals)},); expected ({self.n},) for instruments {self.symbols}")
        for i, v in enumerate(vals):
            if not v - v == 0.0 and not (allow_nan and v != v):
                raise RiskError(f"{name} for {self.symbols[i]} is {v}; must be finite")
        return vals

    def _records(self, t_ns: int, mask: int) -> tuple[Intervention, ...]:
        """:func:`interventions_from_trail` for this engine, visiting only the rules that fired
        and reusing the reasons of count-valued rules (the same text for the same count)."""
        n, trail, diag, cache = self.n, self._trail, self._diag, self._reasons
        before = tuple(trail[:n])
        records = []
        m = mask
        while m:
            low = m & -m
            m ^= low
            r = low.bit_length() - 1
            after = tuple(trail[(r + 1) * n:(r + 2) * n])
            value = diag[r]
            if r in _COUNT_RULES and value == value:
                reason = cache.get((r, value))
                if reason is None:
                    reason = cache[(r, value)] = explain(r, value, self.cfg)
            else:
                reason = explain(r, value, self.cfg)
            records.append(Intervention(t_ns, rules.RULE_NAMES[r], reason, before, after))
            before = after
        return tuple(records)

    def apply(
        self,
        t_ns: int,
        target: np.ndarray,
        current: np.ndarray,
        equity: float,
        *,
        feature_age_ns: float | None = None,
        dispersion: np.ndarray | None = None,
        vol: np.ndarray | None = None,
        prices: np.ndarray | None = None,
        option_greeks: Mapping[str, Any] | None = None,
    ) -> RiskDecision:
        """Apply every rule to one decision at ``t_ns`` (int ns).

        ``target``: the policy's exposure (NaN = keep the current exposure of that instrument);
        ``current``: exposure held now, including orders still in flight; ``equity``: account
        equity; ``feature_age_ns``: age of the oldest input the decision used (None = unknown);
        ``dispersion``: the model's per-instrument uncertainty; ``vol``: annualised volatility
        forecasts per instrument; ``prices``: current prices, which feed the EWMA covariance used
        by vol targeting (pass them every decision when ``vol_target.enabled``);
        ``option_greeks``: ``{underlying: GreekExposure}`` of the option positions held (fractions
        of equity, :mod:`dea.options.portfolio`), whose delta counts in the underlying's exposure
        under ``risk.greeks`` budgets (refused without them).
        """
        if not math.isfinite(equity):
            raise RiskError(f"equity is {equity}; must be finite")
        tgt = self._vector("target", target, allow_nan=True)
        cur = self._vector("current exposure", current, allow_nan=False)
        expiry_rec = self._expire(int(t_ns), tgt, cur) if self._expiries else None
        disp = self._zeros if dispersion is None else self._vector("dispersion", dispersion, allow_nan=False)
        vv = self._zeros if vol is None else self._vector("vol", vol, allow_nan=False)
        vt_on = self._p[rules.P_VT_ON] > 0
        if vt_on and prices is None and vol is None:
            raise RiskError("vol_target is enabled: pass prices (for the EWMA) or vol forecasts to apply()")
        # prices feed only the vol-target EWMA: without it no rule reads them (not converted)
        use_px = vt_on and prices is not None
        px = self._vector("prices", prices, allow_nan=True) if use_px else self._zeros
        age = math.nan if feature_age_ns is None else float(feature_age_ns)
        mask = rules.risk_step(
            self._p,
            self._caps,
            self._fs,
            self._ist,
            self._prev_px,
            self._cov,
            self._order_times,
            int(t_ns),
            tgt,
            cur,
            float(equity),
            age,
            disp,
            dispersion is not None,
            vv,
            vol is not None,
            px,
            use_px,
            self._out,
            self._work,
            self._diag,
            self._trail,
            True,
        )
        records: tuple[Intervention, ...] = ()
        if mask:
            records = self._records(int(t_ns), mask)
            for rec in records:
                self.counts[rec.rule] += 1
        if expiry_rec is not None:
            records = (expiry_rec, *records)
            self.counts[EXPIRY_RULE] += 1
        if self._greeks is not None:
            greek_rec = self._greek_cut(int(t_ns), option_greeks)
            if greek_rec is not None:
                records = (*records, greek_rec)
        elif option_greeks is not None:
            raise RiskError("option_greeks given but risk.greeks sets no budget: option deltas would be ignored")
        return _decision(np.array(self._out), records, self._fs[rules.S_HALTED] > 0.0)

    # -- greek budgets (risk.greeks; never reached without them) -----------------------------------
    def _greek_cut(self, t_ns: int, option_greeks: Mapping[str, Any] | None) -> Intervention | None:
        """After the rules: cut linear targets so linear + option delta stays within each
        underlying's ``max_delta`` (:meth:`GreekBook.cut_linear`); a halted engine stays flat."""
        if self.halted:
            return None
        before = tuple(self._out)
        cut = self._greeks.cut_linear(self._out, option_greeks)
        if not cut:
            return None
        self.counts[GREEK_RULE] += 1
        return Intervention(t_ns, GREEK_RULE, f"linear + option delta of {list(cut)} beyond risk.greeks max_delta: "
                            "linear exposure scaled down", before, tuple(self._out))

    def greek_stage(self, exposure: Sequence[float], option_greeks: Mapping[str, Any] | None) -> tuple[list[float], tuple[str, ...]]:
        """The last stage of :meth:`apply` alone (stateless): ``exposure`` (what the rules
        allowed before the greek budgets) cut by ``risk.greeks`` with ``option_greeks`` counted;
        returns the exposure after the cut and the underlyings it cut. ``dea audit`` re-derives
        the greek rule of a journaled decision with it (same code as :meth:`apply`)."""
        if self._greeks is None:
            raise RiskError("greek_stage needs risk.greeks budgets; none are configured")
        out = self._vector("exposure", exposure, allow_nan=False)
        return out, self._greeks.cut_linear(out, option_greeks)

    def check_option_order(
        self, underlying: str, per_contract: Any, quantity: float, current: np.ndarray,
        option_greeks: Any | None = None,
    ) -> GreekDecision:
        """Pre-trade check of an option order of ``quantity`` contracts (signed) on
        ``underlying`` whose greeks per contract are ``per_contract`` (a ``GreekExposure``):
        :func:`dea.risk.greeks.check_option_order` against ``risk.greeks``, with the book's
        option greeks ``option_greeks`` and the linear ``current`` exposure of the underlying's
        instruments in the delta. A halted engine refuses every option order."""
        from dea.risk.greeks import check_option_order

        if self._greeks is None:
            raise RiskError("check_option_order needs risk.greeks budgets; none are configured")
        cur = self._vector("current exposure", current, allow_nan=False)
        book = self._greeks.current(underlying, cur, option_greeks)
        if self.halted:
            return GreekDecision(quantity, 0.0, (), True, "kill switch is engaged: no new option orders")
        decision = check_option_order(book, per_contract, quantity, self._greeks.budgets[underlying])
        if decision.quantity != decision.requested:
            self.counts[GREEK_RULE] += 1
        return decision

    def _expire(self, t_ns: int, tgt: list[float], cur: list[float]) -> Intervention | None:
        """A dated future past its roll instant (``expiry - roll_before``) is targeted at 0 and
        its exposure (target, or current when the target holds) added to its ``roll_to``: the
        live counterpart of :func:`dea.backtest.expiry.apply_expiry`, so a live policy cannot hold
        an expired contract."""
        before = tuple(tgt)
        changed = False
        for i, t_roll, j in self._expiries:
            if t_ns < t_roll:
                break
            w = cur[i] if tgt[i] != tgt[i] else tgt[i]
            if w == 0.0:
                continue
            if j >= 0:
                tgt[j] = (cur[j] if tgt[j] != tgt[j] else tgt[j]) + w
            tgt[i] = 0.0
            changed = True
        if not changed:
            return None
        names = [self.symbols[i] for i, t_roll, _ in self._expiries if t_ns >= t_roll]
        return Intervention(t_ns, EXPIRY_RULE, f"dated future(s) {names} past expiry - roll_before: closed, "
                            "exposure moved to roll_to where set", before, tuple(tgt))

    # -- kill switch ------------------------------------------------------------------------------
    @property
    def halted(self) -> bool:
        return self._fs[rules.S_HALTED] > 0.0

    def halt(self) -> None:
        """Engage the kill switch from outside the rules (a market-data guard, non-finite equity):
        the next :meth:`apply` flattens and every later one stays flat until reset."""
        self._fs[rules.S_HALTED] = 1.0

    def reset_kill_switch(self) -> None:
        """Re-enable trading after a halt; the drawdown peak restarts from the next equity seen,
        otherwise the same drawdown would trip the switch again at once."""
        self._fs[rules.S_HALTED] = 0.0
        self._fs[rules.S_PEAK] = math.nan
        self._fs[rules.S_BRAKE] = 1.0

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (floats, ints, lists; NaN encoded as None)."""

        def enc(x: float) -> float | None:
            return None if x != x else x

        return {
            "version": STATE_VERSION,
            "instruments": list(self.symbols),
            "peak_equity": enc(self._fs[rules.S_PEAK]),
            "halted": self.halted,
            "n_obs": self._fs[rules.S_NOBS],
            "brake": self._fs[rules.S_BRAKE],
            "last_t_ns": None if self._ist[rules.I_LAST_T] == rules.NO_TIME else self._ist[rules.I_LAST_T],
            "ring_head": self._ist[rules.I_RING_HEAD],
            "prev_prices": [enc(x) for x in self._prev_px],
            "cov": [self._cov[i * self.n:(i + 1) * self.n] for i in range(self.n)],
            "order_times": [None if x == rules.NO_TIME else x for x in self._order_times],
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; refuses state saved for other instruments/limits."""
        if state.get("version") != STATE_VERSION:
            raise RiskError(f"risk state version {state.get('version')!r} is not {STATE_VERSION}")
        if list(state.get("instruments", [])) != list(self.symbols):
            raise RiskError(f"risk state is for instruments {state.get('instruments')}, engine has {list(self.symbols)}")
        times = list(state["order_times"])
        if len(times) != self._ring:
            raise RiskError(f"risk state has {len(times)} order-rate slots, config needs {self._ring}")

        def dec(x: float | None) -> float:
            return math.nan if x is None else float(x)

        self._fs = [dec(state["peak_equity"]), 1.0 if state["halted"] else 0.0, float(state["n_obs"]),
                    float(state["brake"])]
        last = state["last_t_ns"]
        self._ist = [rules.NO_TIME if last is None else int(last), int(state["ring_head"])]
        self._prev_px = [dec(x) for x in state["prev_prices"]]
        self._cov = [float(v) for row in state["cov"] for v in row]
        self._order_times = [rules.NO_TIME if x is None else int(x) for x in times]
        self.counts = {name: int(state.get("counts", {}).get(name, 0))
                       for name in (*rules.RULE_NAMES, EXPIRY_RULE, GREEK_RULE)}
