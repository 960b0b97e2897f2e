"""The fused numba kernel of the vectorised backtester (batch module: imports numba).

One pass over the clock does, per step s, what the event replay does event by event (the test
``test_backtest_modes_agree`` holds them together):

1. fills of orders due strictly between s-1 and s (latency not a whole number of steps),
   at the price interpolated between the two bars (or the book at s-1), impact coefficient of s-1;
2. mark positions at the prices of s (last known price where missing);
3. funding settled in (s-1, s] on the positions held (longs pay a positive rate);
4. liquidation check: equity <= maintenance margin closes everything (taker fee + costs);
   equity <= 0 afterwards is bankruptcy (floored at zero, trading stops);
5. fills of orders due exactly at s (latency a whole number >= 1 of steps);
6. the decision at s: risk rules (:func:`dea.risk.rules.risk_step`, the live engine's code),
   order quantities (:func:`dea.execution.orders.order_quantity`), immediate fills when the
   latency is zero;
7. record equity, returns, costs, turnover, exposures, margin use.

The rule, order and cost functions are the shared plain-Python ones, JIT-compiled here, so the
kernel cannot disagree with the live loop about what a rule or a fill does.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from dea.execution import fills as _fills
from dea.execution import orders as _orders
from dea.risk import rules as _rules

_risk_step = nb.njit(cache=True, inline="always")(_rules.risk_step)
_order_quantity = nb.njit(cache=True, inline="always")(_orders.order_quantity)
_bar_fill_costs = nb.njit(cache=True, inline="always")(_fills.bar_fill_costs)
_walk_book = nb.njit(cache=True)(_fills.walk_book)

NO_TIME = _rules.NO_TIME
N_RULES = _rules.N_RULES

# rows of the per-instrument totals
TOT_FEES, TOT_SPREAD, TOT_IMPACT, TOT_FUNDING, TOT_TRADED, TOT_TRADE_CASH = 0, 1, 2, 3, 4, 5
# event kinds
EV_LIQUIDATION, EV_BANKRUPT = 1, 2
# error codes
ERR_NONE, ERR_IMPACT_UNKNOWN = 0, 1


@nb.njit(cache=True)
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


@nb.njit(cache=True, inline="always")
def _execute(dq, pr, cf, rate, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
             depth_row, has_book, bpx, bsz, apx, asz):
    """Fill the orders ``dq`` (0 = none) at reference prices ``pr`` (0 where no order) with impact
    coefficients ``cf``; update positions and totals; ``acc`` holds (cash, fees, spread, impact,
    traded) and is updated in instrument order, exactly as the account applies fills one by one
    (adding the zero costs of instruments without an order changes no sum).

    Costs, positions and per-instrument totals are branch-free loops (vectorised sqrt/select);
    only the running sums are sequential."""
    n = len(dq)
    for i in range(n):
        a = abs(dq[i]) * pr[i]
        sc_n[i] = dq[i] * pr[i]
        sc_f[i] = a * rate[i]
        sc_s[i] = a * half_spread
        sc_i[i] = cf[i] * a * math.sqrt(a)
    if has_book and depth_row >= 0:
        for i in range(n):
            d = dq[i]
            if d != 0.0 and apx[depth_row, i, 0] == apx[depth_row, i, 0] \
                    and bpx[depth_row, i, 0] == bpx[depth_row, i, 0]:
                mid, fee, spread, impact = _book_costs(d, bpx[depth_row, i], bsz[depth_row, i],
                                                       apx[depth_row, i], asz[depth_row, i], rate[i])
                pr[i] = mid
                sc_n[i] = d * mid
                sc_f[i] = fee
                sc_s[i] = spread
                sc_i[i] = impact
    for i in range(n):
        d = dq[i]
        qi = q[i] + d
        q[i] = 0.0 if abs(qi) <= 1e-12 * abs(d) else qi
    for i in range(n):
        tot[TOT_FEES, i] += sc_f[i]
    for i in range(n):
        tot[TOT_SPREAD, i] += sc_s[i]
    for i in range(n):
        tot[TOT_IMPACT, i] += sc_i[i]
    for i in range(n):
        tot[TOT_TRADED, i] += abs(sc_n[i])
    for i in range(n):
        tot[TOT_TRADE_CASH, i] -= sc_n[i]
    cash = acc[0]
    c_fee = acc[1]
    c_spread = acc[2]
    c_impact = acc[3]
    traded = acc[4]
    for i in range(n):
        cash -= sc_n[i] + sc_f[i] + sc_s[i] + sc_i[i]
        c_fee += sc_f[i]
        c_spread += sc_s[i]
        c_impact += sc_i[i]
        traded += abs(dq[i]) * pr[i]
    acc[0] = cash
    acc[1] = c_fee
    acc[2] = c_spread
    acc[3] = c_impact
    acc[4] = traded


@nb.njit(cache=True)
def simulate(
    clock, price, funding, coef, target,
    fee, liq_fee, half_spread, lot, min_notional, mm,
    lat_k, lat_frac, equity0,
    rp, caps, ring,
    age, has_age, disp, has_disp, vol, has_vol,
    has_book, bpx, bsz, apx, asz,
    equity_out, gross_out, fee_out, spread_out, impact_out, funding_out, turnover_out, margin_out,
    mask_out, expo_out, tot, q, px, ev_t, ev_kind, ev_equity, ev_margin, err,
):
    T, N = price.shape
    K = lat_k + 2
    pq = np.zeros((K, N))
    pend = np.zeros(N)
    cur = np.zeros(N)
    out = np.zeros(N)
    work = np.zeros(N)
    diag = np.zeros(N_RULES)
    trail = np.zeros((1, N))
    fs = np.array([math.nan, 0.0, 0.0, 1.0])
    ist = np.array([NO_TIME, 0], dtype=np.int64)
    prev_px = np.full(N, math.nan)
    cov = np.zeros((N, N))
    otimes = np.full(ring, NO_TIME, dtype=np.int64)
    tgt = np.zeros(N)
    prow = np.zeros(N)
    drow = np.zeros(N)
    vrow = np.zeros(N)
    dq = np.zeros(N)
    pr = np.zeros(N)
    cf = np.zeros(N)
    sc_n = np.zeros(N)
    sc_f = np.zeros(N)
    sc_s = np.zeros(N)
    sc_i = np.zeros(N)
    acc = np.zeros(5)  # cash delta, fees, spread, impact, traded
    pxs = np.zeros(N)  # last price, 0 where never known (for branch-free products)
    cash = equity0
    e_prev = equity0
    dead = False
    n_ev = 0
    immediate = lat_k == 0 and lat_frac == 0.0
    for s in range(T):
        for j in range(1, 5):
            acc[j] = 0.0
        c_fund = 0.0
        # 1. off-grid fills of the decision at s - lat_k - 1
        if lat_frac > 0.0 and s - lat_k - 1 >= 0:
            slot = (s - lat_k - 1) % K
            for i in range(N):
                d = pq[slot, i]
                pq[slot, i] = 0.0
                pend[i] -= d
                p0 = price[s - 1, i]
                p1 = price[s, i]
                if d != 0.0 and p0 > 0.0 and p1 > 0.0 and not dead:
                    c = coef[s - 1, i]
                    if c != c:
                        err[0] = ERR_IMPACT_UNKNOWN
                        err[1] = s - 1
                        err[2] = i
                        return n_ev
                    dq[i] = d
                    pr[i] = p0 + (p1 - p0) * lat_frac
                    cf[i] = c
                else:
                    dq[i] = 0.0
                    pr[i] = 0.0
                    cf[i] = 0.0
            acc[0] = cash
            _execute(dq, pr, cf, fee, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
                     s - 1, has_book, bpx, bsz, apx, asz)
            cash = acc[0]
        # 2. mark
        for i in range(N):
            p = price[s, i]
            if p > 0.0:
                px[i] = p
                pxs[i] = p
        # 3. funding on the positions held across (s-1, s]
        for i in range(N):
            r = funding[s, i]
            if q[i] != 0.0 and r != 0.0:
                paid = q[i] * px[i] * r
                cash -= paid
                c_fund += paid
                tot[TOT_FUNDING, i] += paid
        # 4. liquidation
        if not dead:
            e = cash
            mreq = 0.0
            for i in range(N):
                if q[i] != 0.0:
                    e += q[i] * px[i]
                    mreq += abs(q[i]) * px[i] * mm[i]
            if mreq > 0.0 and e <= mreq:
                for i in range(N):
                    dq[i] = -q[i]
                    pr[i] = pxs[i]
                    c = coef[s, i]
                    cf[i] = c if c == c else 0.0
                acc[0] = cash
                _execute(dq, pr, cf, liq_fee, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
                         s, has_book, bpx, bsz, apx, asz)
                cash = acc[0]
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
                if cash <= 0.0:
                    if n_ev < len(ev_t):
                        ev_t[n_ev] = s
                        ev_kind[n_ev] = EV_BANKRUPT
                        ev_equity[n_ev] = cash
                        ev_margin[n_ev] = 0.0
                    n_ev += 1
                    cash = 0.0
                    dead = True
        # 5. fills due exactly at s
        if lat_frac == 0.0 and lat_k >= 1 and s - lat_k >= 0:
            slot = (s - lat_k) % K
            for i in range(N):
                d = pq[slot, i]
                pq[slot, i] = 0.0
                pend[i] -= d
                p1 = price[s, i]
                if d != 0.0 and p1 > 0.0 and not dead:
                    c = coef[s, i]
                    if c != c:
                        err[0] = ERR_IMPACT_UNKNOWN
                        err[1] = s
                        err[2] = i
                        return n_ev
                    dq[i] = d
                    pr[i] = p1
                    cf[i] = c
                else:
                    dq[i] = 0.0
                    pr[i] = 0.0
                    cf[i] = 0.0
            acc[0] = cash
            _execute(dq, pr, cf, fee, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
                     s, has_book, bpx, bsz, apx, asz)
            cash = acc[0]
        # 6. decision
        if not dead:
            e = cash
            for i in range(N):
                if q[i] != 0.0:
                    e += q[i] * px[i]
            inv_e = 1.0 / e if e > 0.0 else 0.0
            for i in range(N):
                qq = q[i] + pend[i]
                cur[i] = qq * pxs[i] * inv_e
            a = age[s] if has_age else math.nan
            # rows are copied into scratch arrays: a view per step would cost reference counting
            for i in range(N):
                tgt[i] = target[s, i]
                prow[i] = price[s, i]
            if has_disp:
                for i in range(N):
                    drow[i] = disp[s, i]
            if has_vol:
                for i in range(N):
                    vrow[i] = vol[s, i]
            mask = _risk_step(rp, caps, fs, ist, prev_px, cov, otimes, clock[s], tgt, cur, e, a,
                              drow, has_disp, vrow, has_vol, prow, True, out, work, diag, trail, False)
            mask_out[s] = mask
            slot = s % K
            for i in range(N):
                p = price[s, i]
                d = _order_quantity(out[i], e, p, q[i], pend[i], lot[i], min_notional[i])
                if d != 0.0 and immediate:
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
                    dq[i] = 0.0
                    pr[i] = 0.0
                    cf[i] = 0.0
                    if d != 0.0:
                        pq[slot, i] += d
                        pend[i] += d
            if immediate:
                acc[0] = cash
                _execute(dq, pr, cf, fee, half_spread, q, tot, acc, sc_n, sc_f, sc_s, sc_i,
                         s, has_book, bpx, bsz, apx, asz)
                cash = acc[0]
        # 7. record
        e = cash
        mreq = 0.0
        for i in range(N):
            if q[i] != 0.0:
                e += q[i] * px[i]
                mreq += abs(q[i]) * px[i] * mm[i]
        equity_out[s] = e
        if e > 0.0:
            inv_e = 1.0 / e
            for i in range(N):
                expo_out[s, i] = q[i] * pxs[i] * inv_e
            margin_out[s] = mreq / e
        if e_prev > 0.0:
            inv = 1.0 / e_prev
            c_fee = acc[1]
            c_spread = acc[2]
            c_impact = acc[3]
            fee_out[s] = c_fee * inv
            spread_out[s] = c_spread * inv
            impact_out[s] = c_impact * inv
            funding_out[s] = c_fund * inv
            turnover_out[s] = acc[4] * inv
            gross_out[s] = (e - e_prev + c_fee + c_spread + c_impact + c_fund) * inv
        e_prev = e
    return n_ev
