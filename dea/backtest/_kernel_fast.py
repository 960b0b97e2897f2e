"""Fast path of the vectorised backtester: zero latency on bar prices (batch module: imports numba).

:func:`simulate_bars` computes exactly what :func:`dea.backtest._kernel.simulate` computes when
orders fill at the decision's own bar (latency 0) against bar prices (no book depth), for up to
:data:`LANES` instruments; :func:`dea.backtest.vectorized.backtest` picks it in that case (the
common one in training evaluation and hyperparameter search) and the general kernel otherwise.
Tests hold the two kernels equal, field by field and bit for bit, on randomized markets with every
risk rule, lot and minimum-notional rounding, liquidation and bankruptcy.

Why a second kernel: the general one runs each decision as a chain of per-instrument scalar steps
(size, price, charge, book) in which every instrument waits for a division and a square root;
at ten instruments that is most of its time. Here the per-instrument work of a step (prices,
position values, order size, lot rounding, fees, spread, impact, positions, totals) is two
branch-free loops that LLVM vectorises (8 instruments per instruction on AVX-512, 4 on AVX2), and
only the sums whose order fixes the last bit (cash, equity, the step's costs) stay sequential, in
the general kernel's instrument order. What makes the vectoriser take the loops:

- every per-instrument array (state, parameters, totals, scratch) is a row of one workspace
  ``W`` at a compile-time offset (``row * LANES + i``): LLVM then knows no two rows overlap and
  needs no run-time alias checks, which it refuses beyond a handful of arrays;
- the loops run over whole vectors (``n_lanes``: the instruments rounded up to 8), so no
  instrument falls into a scalar remainder (one there costs as much as a vector); the padding
  lanes hold no position, target or order and reach no result;
- order sizing is :func:`order_quantity_lanes`, the branch-free equivalent of
  :func:`dea.execution.orders.order_quantity` (the live loop's function; equality is tested on
  edge cases and random inputs). The risk rules stay the live engine's own
  :func:`dea.risk.rules.risk_step`, and fill costs :func:`dea.execution.fills.bar_fill_costs`.

Every output element is written (the caller may pass uninitialised arrays).

Numba caches this module keyed on this file only, not on the functions it inlines from
:mod:`dea.risk.rules`: a change there (such as the flat bounds vector of
:func:`dea.risk.engine.rule_bounds`, which ``caps`` now is) needs a change here too, or a
stale compiled kernel runs the old rules.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from dea.backtest._kernel import ERR_BAD_TARGET, ERR_IMPACT_UNKNOWN, EV_BANKRUPT, EV_LIQUIDATION, N_RULES, NO_TIME
from dea.execution import fills as _fills
from dea.risk import rules as _rules

_risk_step = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_rules.risk_step)
_bar_fill_costs = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(_fills.bar_fill_costs)

# Row stride of the lane workspace: the most instruments the fast path takes. 272 * 8 bytes is
# 34 cache lines, so consecutive rows fall in different L1 sets (a power of two would stack them).
LANES = 272
_VECTOR = 8  # lanes are processed in whole vectors of this many doubles (AVX-512)

# rows of the lane workspace
L_Q = 0  # position (base units)
L_SPARE = 1
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
L_V0 = 21  # position value at the mark (before the decision; 0 where no position)
L_VM0 = 22  # its maintenance margin
L_X = 24  # cash paid: notional + fee + spread + impact (+0 where no order)
L_F = 25  # fee (+0 where no order)
L_S = 26  # spread (+0 where no order)
L_I = 27  # impact (+0 where no order)
L_A = 28  # |notional| (+0 where no order)
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


def order_candidate(target_w, equity, price, position_q, pending_q, lot, min_notional, sized):
    """:func:`dea.execution.orders.order_quantity` without branches (so a loop of it vectorises),
    as ``(quantity, keep)``: the order is ``quantity if keep else 0.0``.

    Every candidate result is computed and the first applicable early return of the original is
    selected. ``quantity`` does not depend on the rounding checks, so the cost of an order can be
    computed while they run. ``sized`` False promises ``lot <= 0`` and ``min_notional <= 0`` and
    skips that work. Plain scalar code that numba compiles unchanged.
    """
    held = position_q + pending_q
    dq = target_w * equity / price - held
    ah = abs(held)
    adq = abs(dq)
    scale = ah if ah > adq else adq
    r = dq
    drop = adq <= _DUST * scale
    if sized:
        n_lots = math.floor(adq / lot + _LOT_SLACK)
        rl = math.copysign(n_lots * lot, dq)
        has_lot = lot > 0.0
        r = rl if has_lot else dq
        lot_zero = has_lot and rl == 0.0
        small = abs(r) * price < min_notional and held + r != 0.0
        drop = drop or lot_zero or small
    close = target_w == 0.0  # a full close is sent as is
    quantity = -held if close else r
    keep = (close or not drop) and price > 0.0 and equity > 0.0
    return quantity, keep


def order_quantity_lanes(target_w, equity, price, position_q, pending_q, lot, min_notional, sized):
    """:func:`order_candidate` as one number: equal to
    :func:`dea.execution.orders.order_quantity` (a zero may differ in sign, which no caller can
    see: a zero order is no order)."""
    quantity, keep = order_candidate(target_w, equity, price, position_q, pending_q, lot, min_notional, sized)
    return quantity if keep else 0.0


_order_candidate = nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)(order_candidate)


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _mark(W, n_lanes, N, hold_nan, price, row_p, target, row_t):
    """Update the last known prices from row ``row_p`` of ``price``, value the positions held and
    count the bad targets of row ``row_t`` of ``target`` (vectorised, whole vectors).

    Lanes past the last instrument read what follows the row in memory (the next row; the caller
    passes a padded copy for the last rows): they hold no position, no target and no order, so
    nothing they read reaches a result."""
    n_bad = 0
    for i in range(n_lanes):
        p = price[row_p, i]
        x = W[L_PX * LANES + i]
        x = p if p > 0.0 else x
        W[L_PX * LANES + i] = x
        qi = W[L_Q * LANES + i]
        v = qi * x
        W[L_V0 * LANES + i] = v if qi != 0.0 else 0.0
        W[L_VM0 * LANES + i] = abs(v) * W[L_MM * LANES + i] if qi != 0.0 else 0.0
        t = target[row_t, i]
        bad = abs(t) == math.inf or (t != t and not hold_nan)
        n_bad += 1 if (bad and i < N) else 0
    return n_bad


@nb.njit(cache=True, inline="always", error_model="numpy", _nrt=False)
def _decide_fills(W, n_lanes, e, half_spread, sized, price, row_p, coef, row_c):
    """Order sizes and immediate fills of one decision at prices ``price[row_p]`` and impact
    coefficients ``coef[row_c]``, every instrument at once (vectorised, whole vectors as in
    :func:`_mark`; lanes past the last instrument order nothing): positions and totals in ``W``;
    cash flows and costs (+0 where no order) into the scratch rows for the in-order sums.
    Returns the number of orders whose impact cannot be priced (coefficient unknown).

    No order is in flight at zero latency, and a position is never -0 (it starts at +0 and a
    sum of two numbers is -0 only if both are), so ``q + pending`` is ``q`` itself."""
    n_bad = 0
    for i in range(n_lanes):
        p = price[row_p, i]
        c = coef[row_c, i]
        q0 = W[L_Q * LANES + i]
        quantity, keep = _order_candidate(W[L_OUT * LANES + i], e, p, q0, 0.0,
                                          W[L_LOT * LANES + i], W[L_MIN_NOTIONAL * LANES + i], sized)
        d = quantity if keep else 0.0
        nz = d != 0.0
        q1 = q0 + d
        q1 = 0.0 if abs(q1) <= 1e-12 * abs(d) else q1
        q1 = q1 if nz else q0
        W[L_Q * LANES + i] = q1
        # the charges of the candidate (ready before the checks that keep or drop it), then +0
        # where no order (the price may be missing, the coefficient unknown): adding +0 changes
        # no total (none is -0: they start at +0 and grow by sums, which give -0 only from two
        # -0) and subtracting it changes nothing at all
        a = abs(quantity) * p
        fee, spread, impact = _bar_fill_costs(a, W[L_FEE * LANES + i], half_spread, c)
        a = a if nz else 0.0
        fee = fee if nz else 0.0
        spread = spread if nz else 0.0
        impact = impact if nz else 0.0
        notional = quantity * p if nz else 0.0
        W[_T_FEES * LANES + i] += fee
        W[_T_SPREAD * LANES + i] += spread
        W[_T_IMPACT * LANES + i] += impact
        W[_T_TRADED * LANES + i] += a  # |d| * p == |d * p|: the general kernel's abs(notional)
        W[_T_TRADE_CASH * LANES + i] -= notional
        v = q1 * W[L_PX * LANES + i]
        W[L_X * LANES + i] = notional + fee + spread + impact
        W[L_F * LANES + i] = fee
        W[L_S * LANES + i] = spread
        W[L_I * LANES + i] = impact
        W[L_A * LANES + i] = a
        W[L_V * LANES + i] = v
        W[L_VM * LANES + i] = abs(v) * W[L_MM * LANES + i]
        n_bad += 1 if (nz and c != c) else 0
    return n_bad


@nb.njit(cache=True, error_model="numpy", _nrt=False)
def simulate_bars(
    clock, price, fund_t, fund_i, fund_r, coef, target,
    fee, liq_fee, half_spread, lot, min_notional, mm, equity0, hold_nan,
    rp, caps,
    age, has_age, disp, has_disp, vol, has_vol,
    equity_out, net_out, gross_out, fee_out, spread_out, impact_out, funding_out, turnover_out, margin_out,
    mask_out, mask_hist, expo_out, tot, q, px, ev_t, ev_kind, ev_equity, ev_margin, err,
    W, tail, diag, trail, fs, ist, prev_px, cov, otimes,
):
    """One pass over the clock, zero latency, bar prices; the arguments are those of
    :func:`dea.backtest._kernel.simulate` less latency and book, with the lane workspace ``W``
    and ``tail`` (see :func:`lanes`) instead of the per-instrument scratch. ``tot``, ``q`` and
    ``px`` are written at the end (totals, positions, last prices); ``mask_hist[m]`` counts the
    steps whose intervention mask is ``m``.

    The targets are validated as they are read (a separate pass over them would cost a tenth of
    the run): an infinite target, or a NaN unless ``hold_nan``, stops the run with
    ``err = (ERR_BAD_TARGET, step)``. ``price``, ``coef`` and ``target`` must be C-contiguous.
    """
    T, N = price.shape
    for i in range(LANES):
        for k in range(N_LANE_ROWS):
            W[k * LANES + i] = 0.0
    for i in range(N):
        W[L_FEE * LANES + i] = fee[i]
        W[L_LIQ_FEE * LANES + i] = liq_fee[i]
        W[L_LOT * LANES + i] = lot[i]
        W[L_MIN_NOTIONAL * LANES + i] = min_notional[i]
        W[L_MM * LANES + i] = mm[i]
    for k in range(len(mask_hist)):
        mask_hist[k] = 0
    sized = False  # any lot rounding or minimum notional
    for i in range(N):
        if lot[i] > 0.0 or min_notional[i] > 0.0:
            sized = True
    n_lanes = (N + _VECTOR - 1) // _VECTOR * _VECTOR
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
    inv_prev = 1.0 / equity0 if equity0 > 0.0 else 0.0
    dead = False
    n_ev = 0
    for s in range(T):
        c_fee = 0.0
        c_spread = 0.0
        c_impact = 0.0
        traded = 0.0
        c_fund = 0.0
        # mark at the prices of s; funding on the positions held across (s-1, s]
        src_p = price
        src_c = coef
        src_t = target
        row_p = s
        row_c = s
        row_t = s
        if s * N + n_lanes > n_cells:  # the last rows: whole vectors would run past the arrays
            for i in range(N):
                tail[0, i] = price[s, i]
                tail[1, i] = coef[s, i]
                tail[2, i] = target[s, i]
            src_p = tail
            src_c = tail
            src_t = tail
            row_p = 0
            row_c = 1
            row_t = 2
        n_bad = _mark(W, n_lanes, N, hold_nan, src_p, row_p, src_t, row_t)
        if n_bad > 0:
            err[0] = ERR_BAD_TARGET
            err[1] = s
            return n_ev
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
        mask = 0
        if not dead:
            # the decision at s: risk rules, then orders filled at once at the prices of s
            inv_e = 1.0 / e if e > 0.0 else 0.0
            for i in range(n_lanes):  # (q + pending) * px / e; nothing pending (see _decide_fills)
                W[L_CUR * LANES + i] = W[L_Q * LANES + i] * W[L_PX * LANES + i] * inv_e
            if has_disp:
                for i in range(N):
                    W[L_DISP * LANES + i] = disp[s, i]
            if has_vol:
                for i in range(N):
                    W[L_VOL * LANES + i] = vol[s, i]
            a = age[s] if has_age else math.nan
            mask = _risk_step(rp, caps, fs, ist, prev_px, cov, otimes, clock[s], target[s], cur, e, a,
                              drow, has_disp, vrow, has_vol, price[s], True, out, work, diag, trail, False)
            if sized:
                n_bad = _decide_fills(W, n_lanes, e, half_spread, True, src_p, row_p, src_c, row_c)
            else:
                n_bad = _decide_fills(W, n_lanes, e, half_spread, False, src_p, row_p, src_c, row_c)
            if n_bad > 0:  # the first: its coefficient and its cash flow are NaN (no order: +0)
                for i in range(N):
                    if coef[s, i] != coef[s, i] and W[L_X * LANES + i] != W[L_X * LANES + i]:
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
        mask_out[s] = mask
        mask_hist[mask] += 1
        # record
        e = cash + held
        equity_out[s] = e
        inv_e = 0.0
        if e > 0.0:
            inv_e = 1.0 / e
            for i in range(N):
                expo_out[s, i] = W[L_V * LANES + i] * inv_e
            margin_out[s] = mreq / e
        else:
            for i in range(N):
                expo_out[s, i] = 0.0
            margin_out[s] = 0.0
        if e_prev > 0.0:
            net_out[s] = e / e_prev - 1.0
            inv = inv_prev  # 1 / e_prev
            fee_out[s] = c_fee * inv
            spread_out[s] = c_spread * inv
            impact_out[s] = c_impact * inv
            funding_out[s] = c_fund * inv
            turnover_out[s] = traded * inv
            gross_out[s] = (e - e_prev + c_fee + c_spread + c_impact + c_fund) * inv
        else:
            net_out[s] = 0.0
            fee_out[s] = 0.0
            spread_out[s] = 0.0
            impact_out[s] = 0.0
            funding_out[s] = 0.0
            turnover_out[s] = 0.0
            gross_out[s] = 0.0
        e_prev = e
        inv_prev = inv_e
    for i in range(N):
        q[i] = W[L_Q * LANES + i]
        px[i] = W[L_PX * LANES + i]
        for k in range(6):
            tot[k, i] = W[(L_TOT + k) * LANES + i]
    return n_ev


def lanes() -> tuple[np.ndarray, np.ndarray]:
    """A lane workspace for :func:`simulate_bars` (initialised by it), and the padded rows it
    reads the last prices, impact coefficients and targets from."""
    return np.empty(N_LANE_ROWS * LANES), np.zeros((3, LANES))


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
