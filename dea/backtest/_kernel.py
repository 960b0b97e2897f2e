"""The fused numba kernel of the vectorised backtester (batch module: imports numba).

One pass over the clock does, per step s, what the event replay does event by event (the test
``test_backtest_modes_agree`` holds them together):

1. fills of orders due strictly between s-1 and s (latency not a whole number of steps),
   at the price interpolated between the two bars (or the book at s-1), impact coefficient of s-1
   (an inverse contract's bar costs on the contract notional the fill trades, see :func:`_fill`);
2. mark positions at the prices of s (last known price where missing), and
3. charge funding settled in (s-1, s] on the positions held (longs pay a positive rate; an
   inverse contract, ``lot < 0``, pays on its open contract notional ``N``, tracked as the
   exchange books it: :func:`dea.risk.margin.contract_notional_after`);
4. liquidation check: equity <= maintenance margin closes everything (taker fee + costs);
   equity <= 0 afterwards is bankruptcy (floored at zero, trading stops);
5. fills of orders due exactly at s (latency a whole number >= 1 of steps);
6. the decision at s: risk rules (:func:`dea.risk.rules.risk_step`, the live engine's code),
   order quantities (:func:`dea.execution.orders.order_quantity`; whole contracts for an
   inverse contract, :func:`dea.execution.orders.inverse_order_quantity`), immediate fills when the
   latency is zero;
7. record equity, returns (net of costs, and gross), costs, turnover, exposures, margin use.

The rule, order and cost functions are the shared plain-Python ones, JIT-compiled here, so the
kernel cannot disagree with the live loop about what a rule or a fill does. Sums run in the
account's order (equity = cash + sum_i q_i p_i; fills applied instrument by instrument), so on
bar data the two engines agree to the last bit. Per step the work is fused into a few loops over
the instruments and no array view is created (views cost reference counting in numba).

Numba caches this module keyed on this file only, not on the functions it inlines from
:mod:`dea.risk.rules`: a change there (such as the flat bounds vector of
:func:`dea.risk.engine.rule_bounds`, which ``caps`` now is) needs a change here too, or a
stale compiled kernel runs the old rules.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from dea.execution import fills as _fills
from dea.execution import orders as _orders
from dea.risk import margin as _margin
from dea.risk import rules as _rules

_risk_step = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_rules.risk_step)
_order_quantity = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_orders.order_quantity)
_bar_fill_costs = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_fills.bar_fill_costs)
_walk_book = nb.njit(cache=True, error_model="numpy", _nrt=False)(_fills.walk_book)
_contract_n = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_margin.contract_notional_after)
_inverse_order = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_orders.inverse_order_quantity)

NO_TIME = _rules.NO_TIME
N_RULES = _rules.N_RULES

# rows of the per-instrument totals; TOT_CONTRACT_N is state, not a total: the open contract
# notional N = sum d * px of an inverse position's fills since it was last flat (0 once flat)
TOT_FEES, TOT_SPREAD, TOT_IMPACT, TOT_FUNDING, TOT_TRADED, TOT_TRADE_CASH, TOT_CONTRACT_N = 0, 1, 2, 3, 4, 5, 6
N_TOT = 7
# event kinds
EV_LIQUIDATION, EV_BANKRUPT = 1, 2
# error codes
ERR_NONE, ERR_IMPACT_UNKNOWN, ERR_BAD_TARGET = 0, 1, 2


@nb.njit(cache=True, error_model="numpy", _nrt=False)
def _book_costs(qty, bpx, bsz, apx, asz, fee_rate):
    best_bid = bpx[0]
    best_ask = apx[0]
    mid = 0.5 * (best_bid + best_ask)
    aq = abs(qty)
    if qty > 0:
        avg, unfilled = _walk_book(apx, asz, aq)
        spread = aq * (best_ask - mid)
        impact = aq * (avg - best_ask)
    else:
        avg, unfilled = _walk_book(bpx, bsz, aq)
        spread = aq * (mid - best_bid)
        impact = aq * (best_bid - avg)
    return mid, aq * mid * fee_rate, spread, impact


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _fill(i, d, px, cf, rate, half_spread, q, tot, acc, depth_row, has_book, bpx, bsz, apx, asz, inv):
    """Apply one fill of ``d`` units at reference price ``px`` (or against the book row) to the
    position, the per-instrument totals and ``acc`` = (cash, fees, spread, impact, traded).
    ``inv``: an inverse contract, whose bar costs (fee, spread, impact) are charged on the contract
    notional the fill trades, ``|N_after - N_before|`` (a reduction closes contracts at their
    entry price: the exchange's fee is ``rate * |dN| / P`` coins = ``rate * |dN|``, not
    ``rate * |d| * P``), as :meth:`dea.execution.account.Account.cost_notional` does."""
    a = abs(d) * px
    q0 = q[i]
    qi = q0 + d
    q1 = 0.0 if abs(qi) <= 1e-12 * abs(d) else qi
    n0 = tot[TOT_CONTRACT_N, i]
    base = abs(_contract_n(n0, q0, q1, px) - n0) if inv else a
    fee, spread, impact = _bar_fill_costs(base, rate, half_spread, cf)
    if has_book and depth_row >= 0 and apx[depth_row, i, 0] == apx[depth_row, i, 0] \
            and bpx[depth_row, i, 0] == bpx[depth_row, i, 0]:
        px, fee, spread, impact = _book_costs(d, bpx[depth_row, i], bsz[depth_row, i],
                                              apx[depth_row, i], asz[depth_row, i], rate)
        a = abs(d) * px
    notional = d * px
    acc[0] -= notional + fee + spread + impact
    q[i] = q1
    tot[TOT_CONTRACT_N, i] = _contract_n(n0, q0, q1, px)
    tot[TOT_FEES, i] += fee
    tot[TOT_SPREAD, i] += spread
    tot[TOT_IMPACT, i] += impact
    tot[TOT_TRADED, i] += abs(notional)
    tot[TOT_TRADE_CASH, i] -= notional
    acc[1] += fee
    acc[2] += spread
    acc[3] += impact
    acc[4] += a


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _execute(dq, pr, cf, rate, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
             depth_row, has_book, bpx, bsz, apx, asz, lot):
    n = len(dq)
    cash = acc[0]
    c_fee = acc[1]
    c_spread = acc[2]
    c_impact = acc[3]
    traded = acc[4]
    for i in range(n):
        d = dq[i]
        if d == 0.0:
            continue
        px = pr[i]
        a = abs(d) * px
        q0 = q[i]
        qi = q0 + d
        q1 = 0.0 if abs(qi) <= 1e-12 * abs(d) else qi
        n0 = tot[TOT_CONTRACT_N, i]
        base = abs(_contract_n(n0, q0, q1, px) - n0) if lot[i] < 0.0 else a
        fee, spread, impact = _bar_fill_costs(base, rate[i], half_spread, cf[i])
        if has_book and depth_row >= 0 and apx[depth_row, i, 0] == apx[depth_row, i, 0] \
                and bpx[depth_row, i, 0] == bpx[depth_row, i, 0]:
            px, fee, spread, impact = _book_costs(d, bpx[depth_row, i], bsz[depth_row, i],
                                                  apx[depth_row, i], asz[depth_row, i], rate[i])
            a = abs(d) * px
        notional = d * px
        cash -= notional + fee + spread + impact
        q[i] = q1
        tot[TOT_CONTRACT_N, i] = _contract_n(n0, q0, q1, px)
        tot[TOT_FEES, i] += fee
        tot[TOT_SPREAD, i] += spread
        tot[TOT_IMPACT, i] += impact
        tot[TOT_TRADED, i] += abs(notional)
        tot[TOT_TRADE_CASH, i] -= notional
        c_fee += fee
        c_spread += spread
        c_impact += impact
        traded += a
    acc[0] = cash
    acc[1] = c_fee
    acc[2] = c_spread
    acc[3] = c_impact
    acc[4] = traded


@nb.njit(cache=True, error_model="numpy", _nrt=False)
def simulate(
    clock, price, fund_t, fund_i, fund_r, coef, target,
    fee, liq_fee, half_spread, lot, min_notional, mm,
    lat_k, lat_frac, equity0,
    rp, caps,
    age, has_age, disp, has_disp, vol, has_vol,
    has_book, bpx, bsz, apx, asz,
    equity_out, net_out, gross_out, fee_out, spread_out, impact_out, funding_out, turnover_out, margin_out,
    mask_out, expo_out, tot, q, px, ev_t, ev_kind, ev_equity, ev_margin, err,
    pq, pend, cur, out, work, diag, trail, fs, ist, prev_px, cov, otimes, tgt, prow, drow, vrow,
    dq, pr, cf, sc, acc,
):
    """One pass over the clock. Every array, scratch included, comes from the caller: the kernel
    is compiled without numba's reference-counting runtime (``_nrt=False``), which would otherwise
    count references to each array argument of the inlined risk rules at every step."""
    T, N = price.shape
    K = lat_k + 2
    for i in range(N):
        px[i] = 0.0  # last known price; 0 until the first one (positions are 0 until then)
    fk = 0  # next funding settlement (sparse, sorted by step then instrument)
    n_fund = len(fund_t)
    acc[0] = equity0
    e_prev = equity0
    dead = False
    n_ev = 0
    immediate = lat_k == 0 and lat_frac == 0.0
    for s in range(T):
        for j in range(1, 5):
            acc[j] = 0.0
        c_fund = 0.0
        # 1. fills due strictly inside (s-1, s): decided at s - lat_k - 1, price interpolated
        if lat_frac > 0.0 and s - lat_k - 1 >= 0:
            slot = (s - lat_k - 1) % K
            for i in range(N):
                d = pq[slot, i]
                if d == 0.0:
                    continue
                pq[slot, i] = 0.0
                pend[i] -= d
                p0 = price[s - 1, i]
                p1 = price[s, i]
                if not (p0 > 0.0 and p1 > 0.0) or dead:
                    continue  # cannot be priced (or the account is closed): cancelled
                c = coef[s - 1, i]
                if c != c:
                    err[0] = ERR_IMPACT_UNKNOWN
                    err[1] = s - 1
                    err[2] = i
                    return n_ev
                _fill(i, d, p0 + (p1 - p0) * lat_frac, c, fee[i], half_spread, q, tot, acc,
                      s - 1, has_book, bpx, bsz, apx, asz, lot[i] < 0.0)
        # 2-3. mark, funding on the positions held across (s-1, s], equity and margin
        held = 0.0
        mreq = 0.0
        for i in range(N):
            p = price[s, i]
            if p > 0.0:
                px[i] = p
            qi = q[i]
            if qi != 0.0:
                v = qi * px[i]
                held += v
                mreq += abs(v) * mm[i]
        while fk < n_fund and fund_t[fk] == s:  # funding moves cash only
            i = fund_i[fk]
            if q[i] != 0.0:
                # inverse (lot < 0): rate * N / P_mark coins, worth rate * N in the reporting currency
                paid = (tot[TOT_CONTRACT_N, i] if lot[i] < 0.0 else q[i] * px[i]) * fund_r[fk]
                acc[0] -= paid
                c_fund += paid
                tot[TOT_FUNDING, i] += paid
            fk += 1
        e = acc[0] + held
        # 4. liquidation
        if not dead and mreq > 0.0 and e <= mreq:
            for i in range(N):
                d = -q[i]
                if d == 0.0:
                    continue
                c = coef[s, i]
                _fill(i, d, px[i], c if c == c else 0.0, liq_fee[i], half_spread, q, tot, acc,
                      s, has_book, bpx, bsz, apx, asz, lot[i] < 0.0)
            for k in range(K):
                for i in range(N):
                    pq[k, i] = 0.0
            for i in range(N):
                pend[i] = 0.0
            if n_ev < len(ev_t):
                ev_t[n_ev] = s
                ev_kind[n_ev] = EV_LIQUIDATION
                ev_equity[n_ev] = e
                ev_margin[n_ev] = mreq
            n_ev += 1
            e = acc[0]
            if e <= 0.0:
                if n_ev < len(ev_t):
                    ev_t[n_ev] = s
                    ev_kind[n_ev] = EV_BANKRUPT
                    ev_equity[n_ev] = e
                    ev_margin[n_ev] = 0.0
                n_ev += 1
                acc[0] = 0.0
                e = 0.0
                dead = True
        # 5. fills due exactly at s (latency of whole steps >= 1)
        if lat_frac == 0.0 and lat_k >= 1 and s - lat_k >= 0:
            slot = (s - lat_k) % K
            filled = False
            for i in range(N):
                d = pq[slot, i]
                if d == 0.0:
                    continue
                pq[slot, i] = 0.0
                pend[i] -= d
                p1 = price[s, i]
                if not (p1 > 0.0) or dead:
                    continue
                c = coef[s, i]
                if c != c:
                    err[0] = ERR_IMPACT_UNKNOWN
                    err[1] = s
                    err[2] = i
                    return n_ev
                _fill(i, d, p1, c, fee[i], half_spread, q, tot, acc, s, has_book, bpx, bsz, apx, asz, lot[i] < 0.0)
                filled = True
            if filled:
                held = 0.0
                for i in range(N):
                    if q[i] != 0.0:
                        held += q[i] * px[i]
                e = acc[0] + held
        # 6. decision: risk rules, orders, immediate fills
        if not dead:
            inv_e = 1.0 / e if e > 0.0 else 0.0
            for i in range(N):
                cur[i] = (q[i] + pend[i]) * px[i] * inv_e
                tgt[i] = target[s, i]
                prow[i] = price[s, i]
            if has_disp:
                for i in range(N):
                    drow[i] = disp[s, i]
            if has_vol:
                for i in range(N):
                    vrow[i] = vol[s, i]
            a = age[s] if has_age else math.nan
            mask_out[s] = _risk_step(rp, caps, fs, ist, prev_px, cov, otimes, clock[s], tgt, cur, e, a,
                                     drow, has_disp, vrow, has_vol, prow, True, out, work, diag, trail, False)
            slot = s % K
            for i in range(N):
                p = prow[i]
                # inverse (lot = -contract_size): whole contracts of contract_size quote units
                if lot[i] < 0.0:  # inverse: whole contracts of -lot[i] quote units
                    d = _inverse_order(out[i], e, p, q[i], pend[i], -lot[i], tot[TOT_CONTRACT_N, i],
                                       min_notional[i])
                else:
                    d = _order_quantity(out[i], e, p, q[i], pend[i], lot[i], min_notional[i])
                dq[i] = 0.0
                if d == 0.0:
                    continue
                if immediate:
                    c = coef[s, i]
                    if c != c:
                        err[0] = ERR_IMPACT_UNKNOWN
                        err[1] = s
                        err[2] = i
                        return n_ev
                    dq[i] = d
                    pr[i] = p
                    cf[i] = c
                else:
                    pq[slot, i] += d
                    pend[i] += d
            if immediate:
                _execute(dq, pr, cf, fee, half_spread, q, tot, acc, sc, sc, sc, sc, s, has_book, bpx, bsz, apx, asz, lot)
        # 7. record
        held = 0.0
        mreq = 0.0
        for i in range(N):
            v = q[i] * px[i]
            sc[i] = v
            held += v
            mreq += abs(v) * mm[i]
        e = acc[0] + held
        equity_out[s] = e
        if e > 0.0:
            inv_e = 1.0 / e
            for i in range(N):
                expo_out[s, i] = sc[i] * inv_e
            margin_out[s] = mreq / e
        if e_prev > 0.0:
            net_out[s] = e / e_prev - 1.0
            inv = 1.0 / e_prev
            fee_out[s] = acc[1] * inv
            spread_out[s] = acc[2] * inv
            impact_out[s] = acc[3] * inv
            funding_out[s] = c_fund * inv
            turnover_out[s] = acc[4] * inv
            gross_out[s] = (e - e_prev + acc[1] + acc[2] + acc[3] + c_fund) * inv
        e_prev = e
    return n_ev


def workspace(n: int, lat_k: int, ring: int) -> tuple[np.ndarray, ...]:
    """Scratch and state arrays of :func:`simulate`, in its argument order (fresh state)."""
    return (
        np.zeros((lat_k + 2, n)),  # pq: orders in flight, by decision slot
        np.zeros(n),  # pend
        np.zeros(n),  # cur
        np.zeros(n),  # out
        np.zeros(n),  # work
        np.zeros(N_RULES),  # diag
        np.zeros(1),  # trail (not recorded here)
        np.array([math.nan, 0.0, 0.0, 1.0]),  # fs: peak, halted, n_obs, brake
        np.array([NO_TIME, 0], dtype=np.int64),  # ist: last covariance time, ring head
        np.full(n, math.nan),  # prev_px
        np.zeros(n * n),  # cov
        np.full(ring, NO_TIME, dtype=np.int64),  # otimes
        np.zeros(n),  # tgt
        np.zeros(n),  # prow
        np.zeros(n),  # drow
        np.zeros(n),  # vrow
        np.zeros(n),  # dq
        np.zeros(n),  # pr
        np.zeros(n),  # cf
        np.zeros(n),  # sc
        np.zeros(5),  # acc: cash, fees, spread, impact, traded of the step
    )
