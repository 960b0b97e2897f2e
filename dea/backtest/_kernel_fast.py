"""Fast path of the vectorised backtester: zero latency on bar prices (batch module: imports numba).

:func:`simulate_bars` computes exactly what :func:`dea.backtest._kernel.simulate` computes when
orders fill at the decision's own bar (latency 0) against bar prices (no book depth), for up to
:data:`LANES` instruments; :func:`dea.backtest.vectorized.backtest` picks it in that case (the
common one in training evaluation and hyperparameter search) and the general kernel otherwise.
Tests hold the two kernels equal, field by field and bit for bit, on randomized markets with every
risk rule, lot and minimum-notional rounding, liquidation and bankruptcy.

Why a second kernel: at ten instruments the general kernel spends most of its time in the
divider (one division per order size and one square root per impact charge, about 40 ns per step
in scalar code) and in per-instrument bookkeeping the CPU cannot overlap. Here the per-instrument
work of a decision (order size, lot rounding, fees, spread, impact, position and totals) is one
branch-free loop that LLVM vectorises (8 instruments per instruction on AVX-512), and only the
sums whose order fixes the last bit (cash, equity, step costs) stay sequential, in the general
kernel's order. Two things make the vectoriser take the loop:

- every per-instrument array (state, parameters, totals, scratch) is a row of one workspace,
  ``lanes``, at a compile-time offset (``row * LANES + i``): LLVM then knows no two rows overlap
  and needs no run-time alias checks, which it would otherwise refuse (too many arrays);
- order sizing is :func:`order_quantity_lanes`, the branch-free equivalent of
  :func:`dea.execution.orders.order_quantity` (the live loop's function; equality is tested on
  edge cases and random inputs). The risk rules stay the live engine's own
  :func:`dea.risk.rules.risk_step`, and fill costs :func:`dea.execution.fills.bar_fill_costs`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from dea.backtest._kernel import EV_BANKRUPT, EV_LIQUIDATION, ERR_IMPACT_UNKNOWN, N_RULES, NO_TIME
from dea.execution import fills as _fills
from dea.execution import orders as _orders
from dea.risk import rules as _rules

_risk_step = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_rules.risk_step)
_bar_fill_costs = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_fills.bar_fill_costs)

# Row stride of the lane workspace: the most instruments the fast path takes. 272 * 8 bytes is
# 34 cache lines, so consecutive rows fall in different L1 sets (a power of two would stack them).
LANES = 272

# rows of the lane workspace
L_Q = 0  # position (base units)
L_PEND = 1  # orders in flight (always 0 here; kept so the exposure formula is the general one)
L_PX = 2  # last known price (0 until the first one)
L_FEE = 3  # fee rate of decided orders
L_LIQ_FEE = 4  # fee rate of liquidations (taker)
L_LOT = 5
L_MIN_NOTIONAL = 6
L_MM = 7  # maintenance margin rate
L_CUR = 8  # current exposure (risk rules' input)
L_OUT = 9  # allowed exposure (risk rules' output)
L_WORK = 10  # risk rules' scratch
L_DISP = 11  # dispersion row
L_VOL = 12  # vol forecast row
L_TOT = 13  # 6 rows: per-instrument totals, in the order of dea.backtest._kernel.TOT_*
L_P = 19  # price row of the step
L_C = 20  # impact coefficient row of the step
L_V0 = 21  # position value at the mark (before the decision; 0 where no position)
L_VM0 = 22  # its maintenance margin
L_D = 23  # scratch of one decision: order size
L_X = 24  # cash paid: notional + fee + spread + impact (0 where no order)
L_F = 25  # fee (0 where no order)
L_S = 26  # spread (0 where no order)
L_I = 27  # impact (0 where no order)
L_A = 28  # |notional| (0 where no order)
L_V = 29  # position value after the fills
L_VM = 30  # its maintenance margin
N_LANE_ROWS = 31

_T_FEES = L_TOT + 0
_T_SPREAD = L_TOT + 1
_T_IMPACT = L_TOT + 2
_T_FUNDING = L_TOT + 3
_T_TRADED = L_TOT + 4
_T_TRADE_CASH = L_TOT + 5

_DUST = 1e-12  # dea.execution.orders._DUST
_LOT_SLACK = 1e-9  # dea.execution.orders._LOT_SLACK


def order_quantity_lanes(target_w, equity, price, position_q, pending_q, lot, min_notional, any_lot):
    """:func:`dea.execution.orders.order_quantity` without branches (so a loop of it vectorises).

    Every candidate result is computed and the first applicable early return of the original is
    selected; the result is equal to the original's (a zero may differ in sign, which no caller
    can see: a zero order is no order). ``any_lot`` False promises ``lot <= 0`` and skips the lot
    division. Plain scalar code that numba compiles unchanged.
    """
    held = position_q + pending_q
    dq = target_w * equity / price - held
    ah = abs(held)
    adq = abs(dq)
    scale = ah if ah > adq else adq
    r = dq
    lot_zero = False
    if any_lot:
        n_lots = math.floor(adq / lot + _LOT_SLACK)
        rl = math.copysign(n_lots * lot, dq)
        has_lot = lot > 0.0
        r = rl if has_lot else dq
        lot_zero = has_lot and rl == 0.0
    small = abs(r) * price < min_notional and held + r != 0.0
    r = 0.0 if (lot_zero or small) else r
    r = 0.0 if adq <= _DUST * scale else r
    r = -held if target_w == 0.0 else r
    return r if (price > 0.0 and equity > 0.0) else 0.0


_order_quantity_lanes = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(order_quantity_lanes)


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _mark(W, n_lanes, price, coef, s):
    """Copy row ``s`` of prices and impact coefficients into the lanes, update the last known
    prices and value the positions held (vectorised, whole vectors).

    Lanes past the last instrument read what follows the row in memory (the next row; the caller
    passes a padded copy for the last rows): they hold no position, no target and no order, so
    nothing they read reaches a result. Whole vectors keep every store to a row vector-wide, so
    the vector loads of the decision take the row straight from the store buffer."""
    for i in range(n_lanes):
        p = price[s, i]
        W[L_P * LANES + i] = p
        W[L_C * LANES + i] = coef[s, i]
        x = W[L_PX * LANES + i]
        x = p if p > 0.0 else x
        W[L_PX * LANES + i] = x
        qi = W[L_Q * LANES + i]
        v = qi * x
        W[L_V0 * LANES + i] = v if qi != 0.0 else 0.0
        W[L_VM0 * LANES + i] = abs(v) * W[L_MM * LANES + i] if qi != 0.0 else 0.0


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _decide_fills(W, n_lanes, e, half_spread, any_lot):
    """Order sizes and immediate fills of one decision, every instrument at once (vectorised;
    lanes past the last instrument order nothing): positions and totals in ``W``; cash flows and
    costs (+0 where no order) into the scratch rows for the in-order sums. Returns the number of
    orders whose impact cannot be priced (coefficient unknown)."""
    n_bad = 0
    for i in range(n_lanes):
        p = W[L_P * LANES + i]
        c = W[L_C * LANES + i]
        q0 = W[L_Q * LANES + i]
        d = _order_quantity_lanes(W[L_OUT * LANES + i], e, p, q0, W[L_PEND * LANES + i],
                                  W[L_LOT * LANES + i], W[L_MIN_NOTIONAL * LANES + i], any_lot)
        nz = d != 0.0
        a = abs(d) * p
        fee, spread, impact = _bar_fill_costs(a, W[L_FEE * LANES + i], half_spread, c)
        notional = d * p
        q1 = q0 + d
        q1 = 0.0 if abs(q1) <= 1e-12 * abs(d) else q1
        q1 = q1 if nz else q0
        W[L_Q * LANES + i] = q1
        t = W[_T_FEES * LANES + i]
        W[_T_FEES * LANES + i] = t + fee if nz else t
        t = W[_T_SPREAD * LANES + i]
        W[_T_SPREAD * LANES + i] = t + spread if nz else t
        t = W[_T_IMPACT * LANES + i]
        W[_T_IMPACT * LANES + i] = t + impact if nz else t
        t = W[_T_TRADED * LANES + i]
        W[_T_TRADED * LANES + i] = t + abs(notional) if nz else t
        t = W[_T_TRADE_CASH * LANES + i]
        W[_T_TRADE_CASH * LANES + i] = t - notional if nz else t
        v = q1 * W[L_PX * LANES + i]
        W[L_D * LANES + i] = d
        W[L_X * LANES + i] = notional + fee + spread + impact if nz else 0.0
        W[L_F * LANES + i] = fee if nz else 0.0
        W[L_S * LANES + i] = spread if nz else 0.0
        W[L_I * LANES + i] = impact if nz else 0.0
        W[L_A * LANES + i] = a if nz else 0.0
        W[L_V * LANES + i] = v
        W[L_VM * LANES + i] = abs(v) * W[L_MM * LANES + i]
        n_bad += 1 if (nz and c != c) else 0
    return n_bad


@nb.njit(cache=True, error_model="numpy", _nrt=False)
def simulate_bars(
    clock, price, fund_t, fund_i, fund_r, coef, target,
    fee, liq_fee, half_spread, lot, min_notional, mm, equity0,
    rp, caps,
    age, has_age, disp, has_disp, vol, has_vol,
    equity_out, gross_out, fee_out, spread_out, impact_out, funding_out, turnover_out, margin_out,
    mask_out, expo_out, tot, q, px, ev_t, ev_kind, ev_equity, ev_margin, err,
    W, tail_p, tail_c, diag, trail, fs, ist, prev_px, cov, otimes,
):
    """One pass over the clock, zero latency, bar prices; the arguments are those of
    :func:`dea.backtest._kernel.simulate` less latency and book, with the lane workspace ``W``
    (``N_LANE_ROWS * LANES``, see :func:`lanes`) instead of the per-instrument scratch.
    ``tot``, ``q`` and ``px`` are written at the end (totals, positions, last prices)."""
    T, N = price.shape
    for i in range(N):
        W[L_Q * LANES + i] = 0.0
        W[L_PEND * LANES + i] = 0.0
        W[L_PX * LANES + i] = 0.0
        W[L_FEE * LANES + i] = fee[i]
        W[L_LIQ_FEE * LANES + i] = liq_fee[i]
        W[L_LOT * LANES + i] = lot[i]
        W[L_MIN_NOTIONAL * LANES + i] = min_notional[i]
        W[L_MM * LANES + i] = mm[i]
        for k in range(6):
            W[(L_TOT + k) * LANES + i] = 0.0
    any_lot = False
    for i in range(N):
        if lot[i] > 0.0:
            any_lot = True
    n_lanes = (N + 7) // 8 * 8  # whole vectors (8 doubles): no scalar remainder in the lane loops
    n_cells = T * N
    # the risk rules take 1-d arrays: views of their rows
    cur = W[L_CUR * LANES:L_CUR * LANES + N]
    out = W[L_OUT * LANES:L_OUT * LANES + N]
    work = W[L_WORK * LANES:L_WORK * LANES + N]
    drow = W[L_DISP * LANES:L_DISP * LANES + N]
    vrow = W[L_VOL * LANES:L_VOL * LANES + N]
    fk = 0
    n_fund = len(fund_t)
    cash = equity0
    e_prev = equity0
    dead = False
    n_ev = 0
    for s in range(T):
        c_fee = 0.0
        c_spread = 0.0
        c_impact = 0.0
        traded = 0.0
        c_fund = 0.0
        # mark at the prices of s; funding on the positions held across (s-1, s]
        if s * N + n_lanes <= n_cells:
            _mark(W, n_lanes, price, coef, s)
        else:  # the last rows: whole vectors would run past the arrays
            for i in range(N):
                tail_p[0, i] = price[s, i]
                tail_c[0, i] = coef[s, i]
            _mark(W, n_lanes, tail_p, tail_c, 0)
        held = 0.0
        mreq = 0.0
        for i in range(N):  # in instrument order (adding the +0 of no position changes nothing)
            held += W[L_V0 * LANES + i]
            mreq += W[L_VM0 * LANES + i]
        while fk < n_fund and fund_t[fk] == s:
            i = fund_i[fk]
            qi = W[L_Q * LANES + i]
            if qi != 0.0:
                paid = qi * W[L_PX * LANES + i] * fund_r[fk]
                cash -= paid
                c_fund += paid
                W[_T_FUNDING * LANES + i] += paid
            fk += 1
        e = cash + held
        # liquidation: equity at or below maintenance margin closes everything at the mark
        if not dead and mreq > 0.0 and e <= mreq:
            for i in range(N):
                d = -W[L_Q * LANES + i]
                if d == 0.0:
                    continue
                c = coef[s, i]
                pxi = W[L_PX * LANES + i]
                a = abs(d) * pxi
                lfee, lspread, limpact = _bar_fill_costs(a, W[L_LIQ_FEE * LANES + i], half_spread,
                                                          c if c == c else 0.0)
                notional = d * pxi
                cash -= notional + lfee + lspread + limpact
                qi = W[L_Q * LANES + i] + d
                W[L_Q * LANES + i] = 0.0 if abs(qi) <= 1e-12 * abs(d) else qi
                W[_T_FEES * LANES + i] += lfee
                W[_T_SPREAD * LANES + i] += lspread
                W[_T_IMPACT * LANES + i] += limpact
                W[_T_TRADED * LANES + i] += abs(notional)
                W[_T_TRADE_CASH * LANES + i] -= notional
                c_fee += lfee
                c_spread += lspread
                c_impact += limpact
                traded += a
            if n_ev < len(ev_t):
                ev_t[n_ev] = s
                ev_kind[n_ev] = EV_LIQUIDATION
                ev_equity[n_ev] = e
                ev_margin[n_ev] = mreq
            n_ev += 1
            e = cash
            if e <= 0.0:
                if n_ev < len(ev_t):
                    ev_t[n_ev] = s
                    ev_kind[n_ev] = EV_BANKRUPT
                    ev_equity[n_ev] = e
                    ev_margin[n_ev] = 0.0
                n_ev += 1
                cash = 0.0
                e = 0.0
                dead = True
        held = 0.0
        mreq = 0.0
        if not dead:
            # the decision at s: risk rules, then orders filled at once at the prices of s
            inv_e = 1.0 / e if e > 0.0 else 0.0
            for i in range(n_lanes):
                W[L_CUR * LANES + i] = (W[L_Q * LANES + i] + W[L_PEND * LANES + i]) * W[L_PX * LANES + i] * inv_e
            if has_disp:
                for i in range(N):
                    W[L_DISP * LANES + i] = disp[s, i]
            if has_vol:
                for i in range(N):
                    W[L_VOL * LANES + i] = vol[s, i]
            a = age[s] if has_age else math.nan
            mask_out[s] = _risk_step(rp, caps, fs, ist, prev_px, cov, otimes, clock[s], target[s], cur, e, a,
                                     drow, has_disp, vrow, has_vol, price[s], True, out, work, diag, trail, False)
            if any_lot:
                n_bad = _decide_fills(W, n_lanes, e, half_spread, True)
            else:
                n_bad = _decide_fills(W, n_lanes, e, half_spread, False)
            if n_bad > 0:
                for i in range(N):
                    if W[L_D * LANES + i] != 0.0 and W[L_C * LANES + i] != W[L_C * LANES + i]:
                        err[0] = ERR_IMPACT_UNKNOWN
                        err[1] = s
                        err[2] = i
                        return n_ev
            # the sums, in instrument order (the general kernel's; adding the +0 of an instrument
            # without order changes no sum: none of them can be -0)
            for i in range(N):
                cash -= W[L_X * LANES + i]
                c_fee += W[L_F * LANES + i]
                c_spread += W[L_S * LANES + i]
                c_impact += W[L_I * LANES + i]
                traded += W[L_A * LANES + i]
                held += W[L_V * LANES + i]
                mreq += W[L_VM * LANES + i]
        else:
            for i in range(N):
                v = W[L_Q * LANES + i] * W[L_PX * LANES + i]
                W[L_V * LANES + i] = v
                held += v
                mreq += abs(v) * W[L_MM * LANES + i]
        # record
        e = cash + held
        equity_out[s] = e
        if e > 0.0:
            inv_e = 1.0 / e
            for i in range(N):
                expo_out[s, i] = W[L_V * LANES + i] * inv_e
            margin_out[s] = mreq / e
        if e_prev > 0.0:
            inv = 1.0 / e_prev
            fee_out[s] = c_fee * inv
            spread_out[s] = c_spread * inv
            impact_out[s] = c_impact * inv
            funding_out[s] = c_fund * inv
            turnover_out[s] = traded * inv
            gross_out[s] = (e - e_prev + c_fee + c_spread + c_impact + c_fund) * inv
        e_prev = e
    for i in range(N):
        q[i] = W[L_Q * LANES + i]
        px[i] = W[L_PX * LANES + i]
        for k in range(6):
            tot[k, i] = W[(L_TOT + k) * LANES + i]
    return n_ev


def lanes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fresh lane workspace for :func:`simulate_bars`, and the padded rows it reads the last
    prices and impact coefficients from."""
    return np.zeros(N_LANE_ROWS * LANES), np.zeros((1, LANES)), np.zeros((1, LANES))


def risk_state(n: int, ring: int) -> tuple[np.ndarray, ...]:
    """Risk-rule state and scratch of :func:`simulate_bars`, in its argument order (fresh state)."""
    return (
        np.zeros(N_RULES),  # diag
        np.zeros(1),  # trail (not recorded here)
        np.array([math.nan, 0.0, 0.0, 1.0]),  # fs: peak, halted, n_obs, brake
        np.array([NO_TIME, 0], dtype=np.int64),  # ist: last covariance time, ring head
        np.full(n, math.nan),  # prev_px
        np.zeros(n * n),  # cov
        np.full(ring, NO_TIME, dtype=np.int64),  # otimes
    )
