"""The risk rules, written once: interpreted in the live loop, JIT-compiled in the vectorised backtest.

Why one function: the backtest must judge a policy with exactly the rules the live loop will
apply. :func:`risk_step` is plain Python restricted to what numba compiles (scalar loops over
indexable sequences, ``math``, no objects), so the live :class:`~dea.risk.engine.RiskEngine` runs
it on Python lists (fast for a handful of instruments, no numba import) and the vectorised
backtester wraps the very same function with ``numba.njit`` and runs it on arrays. There is no
second implementation that could drift.

Order of the rules in one decision (each sees the previous one's output ``w``)::

    NaN target -> hold current
    kill switch (halted)      -> flatten, stop
    stale-data guard          -> hold / derisk / flatten
    dispersion scaling        -> w_i /= 1 + k * dispersion_i
    vol targeting             -> w *= min(max_scale, target / predicted vol)   (when warm)
    drawdown                  -> soft..hard: w *= m = (hard - dd)/(hard - soft); >= hard: trip kill switch, flatten, stop
    no-trade band             -> |w_i - current_i| < band and w_i != 0: hold current_i
    long-only bound           -> w_i >= lower_i (0 for spot without a margin account: a spot short is refused)
    per-instrument cap        -> clip lower_i <= w_i <= cap_i
    account (venue) limits    -> per account: scale its w so sum|w| <= max_gross_a and the collateral
                                 it needs, sum need_i |w_i|, <= max_equity_share_a (need 1 for
                                 unlevered spot, 1/leverage otherwise); then, with several
                                 accounts, the collateral of all of them <= 1 (one equity backs
                                 every venue: unlevered spot stays unlevered across venues)
    gross cap                 -> scale w so sum|w| <= max_gross
    net cap                   -> scale w so |sum w| <= max_net
    leverage cap              -> scale w so sum|w| <= max_leverage
    max order notional        -> clip |w_i - current_i| <= max_order (fraction of equity)
    order rate                -> at most N orders per rolling minute; the largest moves go first

Held exposures (NaN target, or the stale guard's hold/derisk) already carry the multipliers of
earlier decisions, so scaling rules must not compound on them: dispersion scaling skips them and
the drawdown brake applies only the change of its multiplier since the previous decision
(m_t / m_{t-1}); vol targeting sets a level, so it needs no such care. The stale guard's
``derisk`` multiplies the current exposure by its factor at every stale decision, walking a
persistently stale book down to flat.

``caps`` (see :func:`dea.risk.engine.rule_bounds`) is flat: upper bounds [0, N), lower bounds
[N, 2N), account index of each instrument [2N, 3N), collateral needed per unit |w| [3N, 4N), then
per account a: max gross at 4N + 2a (+inf = off) and max equity share at 4N + 2a + 1. Accounts
that can never bind (no gross cap, no collateral need) are left out (index -1), so the common
case costs no pass over the instruments.

Caps come after the band so that they always win (a held position above a cap is still cut);
kill switch and drawdown trip return early so nothing can stop a flatten.

Interventions: bit ``r`` of the returned mask is set when rule ``r`` changed ``w``;
``diag[r]`` holds the number a report needs to explain it (age, scale, drawdown, gross, ...);
with ``record`` set, ``trail`` (flat, (``N_RULES`` + 1) x N) holds the input in row 0 and the
exposure after rule ``r`` in row ``r + 1`` (written only for rules that fired), from which the
engine builds before/after records. ``cov`` is flat too (N x N). Flat sequences and a single
``return`` keep the JIT-compiled copy free of reference counting.
"""

from __future__ import annotations

import math

# Rule ids: bit positions in the intervention mask, and row offsets in ``trail``.
R_KILL = 0
R_STALE = 1
R_DISPERSION = 2
R_VOL = 3
R_DD_BRAKE = 4
R_DD_KILL = 5
R_BAND = 6
R_LONG_ONLY = 7
R_CAP = 8
R_ACCOUNT = 9
R_GROSS = 10
R_NET = 11
R_LEVERAGE = 12
R_MAX_ORDER = 13
R_RATE = 14
N_RULES = 15

RULE_NAMES: tuple[str, ...] = (
    "kill_switch",
    "stale_data",
    "dispersion",
    "vol_target",
    "drawdown_brake",
    "drawdown_kill",
    "no_trade_band",
    "long_only",
    "instrument_cap",
    "account_limit",
    "gross_cap",
    "net_cap",
    "leverage_cap",
    "max_order_notional",
    "order_rate",
)

# Layout of the parameter vector ``p`` (float64; see dea.risk.engine.risk_params).
P_MAX_GROSS = 0
P_MAX_NET = 1
P_MAX_LEVERAGE = 2
P_VT_ON = 3
P_VT_TARGET = 4
P_VT_LAMBDA = 5
P_VT_MAX_SCALE = 6
P_VT_WARMUP = 7
P_DD_ON = 8
P_DD_SOFT = 9
P_DD_HARD = 10
P_BAND = 11
P_MAX_ORDER = 12  # +inf = off
P_RATE_LIMIT = 13  # 0 = off
P_RATE_WINDOW_NS = 14
P_STALE_AGE_NS = 15  # +inf = off
P_STALE_ACTION = 16  # 0 hold, 1 derisk, 2 flatten
P_STALE_FACTOR = 17
P_DISP_K = 18
N_PARAMS = 19

# Layout of the float state ``fs`` and the integer state ``ist``.
S_PEAK = 0  # running equity peak (NaN = not seen yet)
S_HALTED = 1  # 1.0 once the kill switch tripped, until reset
S_NOBS = 2  # EWMA covariance observations
S_BRAKE = 3  # drawdown-brake multiplier applied at the previous decision (1 = none)
N_FSTATE = 4
I_LAST_T = 0  # time of the last covariance update (NO_TIME = none)
I_RING_HEAD = 1  # next slot of the order-time ring
N_ISTATE = 2

NO_TIME = -(2**62)
NS_PER_YEAR = 31_557_600_000_000_000.0
_EPS = 1e-12


def risk_step(
    p,
    caps,
    fs,
    ist,
    prev_px,
    cov,
    order_times,
    t_ns,
    target,
    current,
    equity,
    feature_age_ns,
    dispersion,
    has_dispersion,
    vol,
    has_vol,
    prices,
    has_prices,
    out,
    work,
    diag,
    trail,
    record,
):
    """Apply every rule to one decision; write the allowed exposure into ``out``; return the mask.

    ``p``: parameters (``P_*``); ``caps``: per-instrument caps; ``fs``/``ist``/``prev_px``/``cov``/
    ``order_times``: engine state, updated in place; ``target``/``current``: exposures (NaN target
    = hold); ``equity``: account equity now; ``feature_age_ns``: NaN when unknown;
    ``dispersion``/``vol``/``prices``: per-instrument inputs, used only when their flag is set;
    ``work``: scratch of length N; ``diag``: per-rule diagnostics (length ``N_RULES``);
    ``trail``: flat (``N_RULES`` + 1) * N, written when ``record``; ``cov``: flat N * N.
    """
    n = len(target)
    mask = 0
    for i in range(n):
        w = target[i]
        out[i] = current[i] if w != w else w
    if record:
        for i in range(n):
            trail[(0) * n + i] = out[i]

    # --- state: equity peak and EWMA covariance (not interventions) ---------------------------
    if fs[S_PEAK] != fs[S_PEAK] or equity > fs[S_PEAK]:
        fs[S_PEAK] = equity
    if p[P_VT_ON] > 0.0 and has_prices:
        last = ist[I_LAST_T]
        if last != NO_TIME and t_ns > last:
            inv_dt = NS_PER_YEAR / (t_ns - last)
            lam = p[P_VT_LAMBDA]
            for i in range(n):
                a = prev_px[i]
                b = prices[i]
                if a > 0.0 and b > 0.0:
                    work[i] = b / a - 1.0
                else:
                    work[i] = math.nan
            for i in range(n):
                ri = work[i]
                if ri != ri:
                    continue
                for j in range(n):
                    rj = work[j]
                    if rj != rj:
                        continue
                    cov[i * n + j] = lam * cov[i * n + j] + (1.0 - lam) * ri * rj * inv_dt
            fs[S_NOBS] += 1.0
        for i in range(n):
            b = prices[i]
            if b > 0.0:
                prev_px[i] = b
        ist[I_LAST_T] = t_ns

    # --- kill switch: halted -> flat, nothing else applies ------------------------------------
    # (one exit at the end, no early return: the JIT-compiled copy then needs no reference
    # counting on its arguments)
    stop = False
    if fs[S_HALTED] > 0.0:
        stop = True
        changed = False
        for i in range(n):
            if out[i] != 0.0:
                changed = True
                out[i] = 0.0
        if changed:
            mask |= 1 << R_KILL
            diag[R_KILL] = 1.0
            if record:
                for i in range(n):
                    trail[(R_KILL + 1) * n + i] = 0.0

    if not stop:
        # --- stale-data guard -----------------------------------------------------------------------
        stale = False
        if feature_age_ns > p[P_STALE_AGE_NS]:
            stale = True
            action = p[P_STALE_ACTION]
            factor = 1.0 if action == 0.0 else (p[P_STALE_FACTOR] if action == 1.0 else 0.0)
            changed = False
            for i in range(n):
                w = current[i] * factor
                if w != out[i]:
                    changed = True
                    out[i] = w
            if changed:
                mask |= 1 << R_STALE
                diag[R_STALE] = feature_age_ns
                if record:
                    for i in range(n):
                        trail[(R_STALE + 1) * n + i] = out[i]

        # --- dispersion scaling ---------------------------------------------------------------------
        k = p[P_DISP_K]
        if k > 0.0 and has_dispersion:
            changed = False
            worst = 0.0
            for i in range(n):
                d = dispersion[i]
                held = stale or target[i] != target[i]
                if d > 0.0 and out[i] != 0.0 and not held:
                    out[i] = out[i] / (1.0 + k * d)
                    changed = True
                    if d > worst:
                        worst = d
            if changed:
                mask |= 1 << R_DISPERSION
                diag[R_DISPERSION] = worst
                if record:
                    for i in range(n):
                        trail[(R_DISPERSION + 1) * n + i] = out[i]

        # --- volatility targeting -------------------------------------------------------------------
        if p[P_VT_ON] > 0.0:
            warm = fs[S_NOBS] >= p[P_VT_WARMUP]
            var = -1.0
            if has_vol:
                var = 0.0
                for i in range(n):
                    wi = out[i]
                    if wi == 0.0:
                        continue
                    for j in range(n):
                        wj = out[j]
                        if wj == 0.0:
                            continue
                        rho = 1.0
                        if i != j and warm:
                            cii = cov[i * n + i]
                            cjj = cov[j * n + j]
                            if cii > 0.0 and cjj > 0.0:
                                rho = cov[i * n + j] / math.sqrt(cii * cjj)
                        var += wi * wj * vol[i] * vol[j] * rho
            elif warm:
                var = 0.0
                for i in range(n):
                    wi = out[i]
                    if wi == 0.0:
                        continue
                    for j in range(n):
                        var += wi * out[j] * cov[i * n + j]
            if var > 0.0:
                scale = p[P_VT_TARGET] / math.sqrt(var)
                if scale > p[P_VT_MAX_SCALE]:
                    scale = p[P_VT_MAX_SCALE]
                if scale != 1.0:
                    for i in range(n):
                        out[i] = out[i] * scale
                    mask |= 1 << R_VOL
                    diag[R_VOL] = scale
                    if record:
                        for i in range(n):
                            trail[(R_VOL + 1) * n + i] = out[i]

        # --- drawdown brake and kill switch ---------------------------------------------------------
        if p[P_DD_ON] > 0.0:
            peak = fs[S_PEAK]
            dd = 1.0 - equity / peak if peak > 0.0 else 1.0
            if equity <= 0.0 or dd >= p[P_DD_HARD]:
                fs[S_HALTED] = 1.0
                for i in range(n):
                    out[i] = 0.0
                mask |= 1 << R_DD_KILL
                diag[R_DD_KILL] = dd
                if record:
                    for i in range(n):
                        trail[(R_DD_KILL + 1) * n + i] = 0.0
                stop = True
            if not stop:
                m = 1.0
                if dd > p[P_DD_SOFT]:
                    m = (p[P_DD_HARD] - dd) / (p[P_DD_HARD] - p[P_DD_SOFT])
                prev = fs[S_BRAKE]
                fs[S_BRAKE] = m
                if m != 1.0 or prev != 1.0:
                    changed = False
                    for i in range(n):
                        # a held exposure already carries the previous multiplier: apply only the change
                        held = stale or target[i] != target[i]
                        scale = m / prev if held else m
                        if out[i] != 0.0 and scale != 1.0:
                            out[i] = out[i] * scale
                            changed = True
                    if changed:
                        mask |= 1 << R_DD_BRAKE
                        diag[R_DD_BRAKE] = dd
                        if record:
                            for i in range(n):
                                trail[(R_DD_BRAKE + 1) * n + i] = out[i]

    if not stop:
        # --- no-trade band --------------------------------------------------------------------------
        band = p[P_BAND]
        if band > 0.0:
            n_held = 0
            for i in range(n):
                w = out[i]
                c = current[i]
                if w != 0.0 and w != c and abs(w - c) < band:
                    out[i] = c
                    n_held += 1
            if n_held > 0:
                mask |= 1 << R_BAND
                diag[R_BAND] = n_held
                if record:
                    for i in range(n):
                        trail[(R_BAND + 1) * n + i] = out[i]

        # --- long-only bound (spot without margin), per-instrument caps, account limits -----------
        # one fused pass (this sits on the backtest's per-step path); the trail rows of both rules
        # are written as it goes and read only for the rules that fired
        refused = 0
        clipped = 0
        gross = 0.0
        net = 0.0
        for i in range(n):
            w = out[i]
            lo = caps[n + i]
            if w < lo:
                w = lo
                refused += 1
            if record:
                trail[(R_LONG_ONLY + 1) * n + i] = w
            cap = caps[i]
            if w > cap:
                w = cap
                clipped += 1
            elif w < -cap:
                w = -cap
                clipped += 1
            if record:
                trail[(R_CAP + 1) * n + i] = w
            out[i] = w
            gross += abs(w)
            net += w
        if refused > 0:
            mask |= 1 << R_LONG_ONLY
            diag[R_LONG_ONLY] = refused
        if clipped > 0:
            mask |= 1 << R_CAP
            diag[R_CAP] = clipped
        n_acc = (len(caps) - 4 * n) // 2
        worst = 1.0
        for a in range(n_acc):
            g_acc = 0.0
            need = 0.0
            for i in range(n):
                if caps[2 * n + i] == a:
                    g_acc += abs(out[i])
                    need += caps[3 * n + i] * abs(out[i])
            scale = 1.0
            lim = caps[4 * n + 2 * a]
            if g_acc > lim:
                scale = lim / g_acc
            lim = caps[4 * n + 2 * a + 1]
            if need * scale > lim:
                scale = lim / need
            if scale < 1.0:
                for i in range(n):
                    if caps[2 * n + i] == a:
                        out[i] = out[i] * scale
                if scale < worst:
                    worst = scale
        if n_acc > 1:
            # across venues: all the collateral posted (cash spot in full, margin 1/leverage) comes
            # out of one equity, so its sum is at most 1 (two cash accounts cannot each be full)
            need = 0.0
            for i in range(n):
                need += caps[3 * n + i] * abs(out[i])
            if need > 1.0:
                scale = 1.0 / need
                for i in range(n):
                    if caps[3 * n + i] > 0.0:
                        out[i] = out[i] * scale
                if scale < worst:
                    worst = scale
        if worst < 1.0:
            mask |= 1 << R_ACCOUNT
            diag[R_ACCOUNT] = worst
            gross = 0.0
            net = 0.0
            for i in range(n):
                gross += abs(out[i])
                net += out[i]
            if record:
                for i in range(n):
                    trail[(R_ACCOUNT + 1) * n + i] = out[i]
        if gross > p[P_MAX_GROSS]:
            scale = p[P_MAX_GROSS] / gross
            for i in range(n):
                out[i] = out[i] * scale
            mask |= 1 << R_GROSS
            diag[R_GROSS] = gross
            net = net * scale
            gross = p[P_MAX_GROSS]
            if record:
                for i in range(n):
                    trail[(R_GROSS + 1) * n + i] = out[i]
        if abs(net) > p[P_MAX_NET]:
            scale = p[P_MAX_NET] / abs(net)
            for i in range(n):
                out[i] = out[i] * scale
            mask |= 1 << R_NET
            diag[R_NET] = net
            gross = gross * scale
            if record:
                for i in range(n):
                    trail[(R_NET + 1) * n + i] = out[i]
        if gross > p[P_MAX_LEVERAGE]:
            scale = p[P_MAX_LEVERAGE] / gross
            for i in range(n):
                out[i] = out[i] * scale
            mask |= 1 << R_LEVERAGE
            diag[R_LEVERAGE] = gross
            if record:
                for i in range(n):
                    trail[(R_LEVERAGE + 1) * n + i] = out[i]

        # --- maximum order notional -----------------------------------------------------------------
        m = p[P_MAX_ORDER]
        if m < math.inf:
            clipped = 0
            for i in range(n):
                d = out[i] - current[i]
                if d > m:
                    out[i] = current[i] + m
                    clipped += 1
                elif d < -m:
                    out[i] = current[i] - m
                    clipped += 1
            if clipped > 0:
                mask |= 1 << R_MAX_ORDER
                diag[R_MAX_ORDER] = clipped
                if record:
                    for i in range(n):
                        trail[(R_MAX_ORDER + 1) * n + i] = out[i]

        # --- order rate -----------------------------------------------------------------------------
        limit = int(p[P_RATE_LIMIT])
        if limit > 0:
            window = p[P_RATE_WINDOW_NS]
            recent = 0
            for s in range(limit):
                ts = order_times[s]
                if ts != NO_TIME and t_ns - ts < window:
                    recent += 1
            allowed = limit - recent
            wanted = 0
            for i in range(n):
                d = abs(out[i] - current[i])
                work[i] = d if d > _EPS * (abs(current[i]) + 1.0) else -1.0
                if work[i] > 0.0:
                    wanted += 1
            if wanted > allowed:
                # keep the `allowed` largest moves, hold the rest
                for _ in range(allowed):
                    best = -1
                    for i in range(n):
                        if work[i] > 0.0 and (best < 0 or work[i] > work[best]):
                            best = i
                    work[best] = -2.0  # kept
                for i in range(n):
                    if work[i] > 0.0:
                        out[i] = current[i]
                mask |= 1 << R_RATE
                diag[R_RATE] = recent
                if record:
                    for i in range(n):
                        trail[(R_RATE + 1) * n + i] = out[i]
                wanted = allowed
            for _ in range(wanted):
                head = ist[I_RING_HEAD]
                order_times[head] = t_ns
                ist[I_RING_HEAD] = (head + 1) % limit
    return mask
