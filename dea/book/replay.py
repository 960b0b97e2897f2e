"""Fast replay: apply every level update on a dense-array book and compute the order-book
features at every book event (numba, cached compilation; batch only).

The book is two float arrays of sizes indexed by a dense, price-ascending level axis (see
:func:`dea.book.capture.level_index`), with the best bid/ask kept as indices: a level update is
O(1); deleting the touch walks to the next occupied index. Feature arithmetic comes from
:mod:`dea.book.formulas`, compiled here from the same source the streaming execution runs.

State-feature columns (``ev_out`` and the first columns of ``panel_out``), for ``nl`` level
depths, ``nb`` bands and ``nh`` volatility horizons::

    mid, spread_bps, microprice_dev_bps, imbalance_l{k} * nl, imbalance_{x}bps * nb,
    depth_{x}bps * nb, slope_l{max k}, rv_{h} * nh

then, in ``panel_out`` only: ``book_age_s, ofi, trade_flow, trade_volume, trade_imbalance``.
:mod:`dea.features.orderbook` names them; its streaming class writes the same layout.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from dea.book import formulas as fm
from dea.book.formulas import SIZE_SCALE

EV_GAP = 0
EV_SNAPSHOT = 1
EV_DIFF = 2
N_PANEL_EXTRA = 5

_jit = nb.njit(cache=True, nogil=True)
_mid = _jit(fm.mid_price)
_spread = _jit(fm.spread_bps)
_micro = _jit(fm.microprice_dev_bps)
_imb = _jit(fm.imbalance)
_lo = _jit(fm.band_low)
_hi = _jit(fm.band_high)
_slope = _jit(fm.slope_side)
_ofi = _jit(fm.ofi_increment)
_r2 = _jit(fm.log_return_sq)
_rv = _jit(fm.realised_vol)
_timb = _jit(fm.trade_imbalance)


def n_state_columns(nl: int, nb_: int, nh: int) -> int:
    return 3 + nl + 2 * nb_ + 1 + nh


@_jit
def _scan_side(sz, szi, best, step, level_price, levels, bounds, cum_at, band_sum):
    """Walk one side from the touch outward.

    Depth sums are exact integers of size units (``szi``, 10**-SIZE_DECIMALS), so their value does
    not depend on summation order: the streaming execution adds the same integers level by level
    and gets the identical result, while here the wide band sums run as a vectorised loop over a
    contiguous index range (found by binary search on the ascending ``level_price``).

    Fills ``cum_at`` (int size of the k best levels; the whole side when shallower) and
    ``band_sum`` (int size priced inside each band). Returns (price_first, size_first,
    price_last, cum_last) for the touch and the deepest requested level (NaN when shallower).
    """
    nl = levels.shape[0]
    nb_ = bounds.shape[0]
    max_l = levels[nl - 1]
    n = sz.shape[0]
    count = 0
    cum = 0
    p1 = np.nan
    q1 = np.nan
    p_last = np.nan
    cum_last = -1
    li = 0
    i = best
    while 0 <= i < n and count < max_l:
        if sz[i] > 0.0:
            count += 1
            cum += szi[i]
            if count == 1:
                p1 = level_price[i]
                q1 = sz[i]
            while li < nl and levels[li] == count:
                cum_at[li] = cum
                li += 1
            if count == max_l:
                p_last = level_price[i]
                cum_last = cum
        i += step
    for j in range(li, nl):
        cum_at[j] = cum
    # bands: contiguous index ranges next to the touch, widening band by band
    total = 0
    edge = best
    for j in range(nb_):
        if step < 0:  # bids: indices k with level_price[k] >= bound
            lo_k = np.searchsorted(level_price, bounds[j], side="left")
            for k in range(max(lo_k, 0), edge + 1):
                total += szi[k]
            edge = min(edge, lo_k - 1)
        else:  # asks: indices k with level_price[k] <= bound
            hi_k = np.searchsorted(level_price, bounds[j], side="right") - 1
            for k in range(edge, min(hi_k, n - 1) + 1):
                total += szi[k]
            edge = max(edge, hi_k + 1)
        band_sum[j] = total
    return p1, q1, p_last, cum_last


@_jit
def replay_kernel(
    ev_kind, ev_time, ev_lv0, ev_lv1, lv_idx, lv_side, lv_sz, lv_szi, level_price,
    tr_time, tr_sz, tr_side,
    clock, levels, band_frac, rv_h,
    panel_out, ev_out, ev_top,
):
    """Replay book events and trades against a decision clock.

    ``panel_out`` [T, state + 5]: state features as of the last book event with time <= t, then
    book age (s), and flows over (clock[k-1], clock[k]] (NaN at k = 0: interval start unknown).
    ``ev_out`` [n_ev or 0, state]: state features after every book event (skipped when empty).
    ``ev_top`` [n_ev or 0, 4]: best bid, bid size, best ask, ask size after every book event.
    Returns (crossed_events, level_updates_applied, events_processed).
    """
    n = ev_kind.shape[0]
    m = tr_time.shape[0]
    T = clock.shape[0]
    L = level_price.shape[0]
    nl = levels.shape[0]
    nb_ = band_frac.shape[0]
    nh = rv_h.shape[0]
    fs = 3 + nl + 2 * nb_ + 1 + nh
    keep_ev = ev_out.shape[0] > 0
    keep_top = ev_top.shape[0] > 0

    bid = np.zeros(L, np.float64)
    ask = np.zeros(L, np.float64)
    bidi = np.zeros(L, np.int64)  # the same sizes in integer units, for exact depth sums
    aski = np.zeros(L, np.int64)
    bb = -1
    ba = L
    valid = False
    state = np.full(fs, np.nan)
    cum_b = np.empty(nl, np.int64)
    cum_a = np.empty(nl, np.int64)
    band_b = np.empty(nb_, np.int64)
    band_a = np.empty(nb_, np.int64)
    lo = np.empty(nb_, np.float64)
    hi = np.empty(nb_, np.float64)
    # realised-volatility windows: one buffer of squared returns, a tail pointer per horizon
    rv_t = np.empty(n + 1, np.int64)
    rv_v = np.empty(n + 1, np.float64)
    head = 0
    tail = np.zeros(nh, np.int64)
    rv_sum = np.zeros(nh, np.float64)
    valid_since = 0
    have_prev = False
    pb0 = 0.0
    qb0 = 0.0
    pa0 = 0.0
    qa0 = 0.0
    mid0 = 0.0
    ofi_acc = 0.0
    tf_acc = 0.0
    tv_acc = 0.0
    started = False
    last_book_t = -1
    crossed = 0
    updates = 0

    e = 0
    k = 0
    ti = 0
    while ti <= T:
        t = clock[ti] if ti < T else np.iinfo(np.int64).max
        while e < n and ev_time[e] <= t:
            # ---------------------------------------------------------- apply one book event
            kd = ev_kind[e]
            te = ev_time[e]
            last_book_t = te
            started = True
            was_valid = valid
            if kd == EV_GAP or kd == EV_SNAPSHOT:
                if bb >= 0 or ba < L:
                    bid[:] = 0.0
                    ask[:] = 0.0
                    bidi[:] = 0
                    aski[:] = 0
                bb = -1
                ba = L
                valid = kd == EV_SNAPSHOT
            for r in range(ev_lv0[e], ev_lv1[e]):
                i = lv_idx[r]
                q = lv_sz[r]
                if lv_side[r] > 0:
                    bid[i] = q
                    bidi[i] = lv_szi[r]
                    if q > 0.0:
                        if i > bb:
                            bb = i
                    elif i == bb:
                        j = i - 1
                        while j >= 0 and bid[j] <= 0.0:
                            j -= 1
                        bb = j
                else:
                    ask[i] = q
                    aski[i] = lv_szi[r]
                    if q > 0.0:
                        if i < ba:
                            ba = i
                    elif i == ba:
                        j = i + 1
                        while j < L and ask[j] <= 0.0:
                            j += 1
                        ba = j
            if kd == EV_DIFF:
                updates += ev_lv1[e] - ev_lv0[e]
            if kd == EV_SNAPSHOT and not was_valid:
                valid_since = te
                for h in range(nh):
                    tail[h] = head
                    rv_sum[h] = 0.0
            # ---------------------------------------------------------- features of the new state
            two_sided = valid and bb >= 0 and ba < L
            if two_sided:
                pb = level_price[bb]
                qb = bid[bb]
                pa = level_price[ba]
                qa = ask[ba]
                if pb >= pa:
                    crossed += 1
                mid = _mid(pb, pa)
                state[0] = mid
                state[1] = _spread(pb, pa, mid)
                state[2] = _micro(pb, qb, pa, qa, mid)
                for j in range(nb_):
                    lo[j] = _lo(mid, band_frac[j])
                    hi[j] = _hi(mid, band_frac[j])
                p1b, q1b, plb, clb = _scan_side(bid, bidi, bb, -1, level_price, levels, lo, cum_b, band_b)
                p1a, q1a, pla, cla = _scan_side(ask, aski, ba, 1, level_price, levels, hi, cum_a, band_a)
                c = 3
                for j in range(nl):
                    state[c] = _imb(cum_b[j], cum_a[j])
                    c += 1
                for j in range(nb_):
                    state[c] = _imb(band_b[j], band_a[j])
                    c += 1
                for j in range(nb_):
                    state[c] = (band_b[j] + band_a[j]) / SIZE_SCALE
                    c += 1
                sb = _slope(q1b, clb / SIZE_SCALE if clb >= 0 else np.nan, p1b, plb, mid)
                sa = _slope(q1a, cla / SIZE_SCALE if cla >= 0 else np.nan, p1a, pla, mid)
                state[c] = 0.5 * (sb + sa)
                c += 1
                if have_prev:
                    ofi_acc += _ofi(pb0, qb0, pa0, qa0, pb, qb, pa, qa)
                    if mid != mid0:
                        rv_t[head] = te
                        rv_v[head] = _r2(mid0, mid)
                        head += 1
                        for h in range(nh):
                            rv_sum[h] += rv_v[head - 1]
                for h in range(nh):
                    cut = te - rv_h[h]
                    while tail[h] < head and rv_t[tail[h]] <= cut:
                        rv_sum[h] -= rv_v[tail[h]]
                        tail[h] += 1
                    if tail[h] == head:
                        rv_sum[h] = 0.0
                    state[c] = _rv(rv_sum[h]) if te - valid_since >= rv_h[h] else np.nan
                    c += 1
                have_prev = True
                pb0 = pb
                qb0 = qb
                pa0 = pa
                qa0 = qa
                mid0 = mid
            else:
                state[:] = np.nan
                have_prev = False
            if keep_ev:
                ev_out[e, :] = state
            if keep_top:
                if two_sided:
                    ev_top[e, 0] = level_price[bb]
                    ev_top[e, 1] = bid[bb]
                    ev_top[e, 2] = level_price[ba]
                    ev_top[e, 3] = ask[ba]
                else:
                    ev_top[e, :] = np.nan
            e += 1
        if ti == T:
            break
        while k < m and tr_time[k] <= t:
            tf_acc += tr_side[k] * tr_sz[k]
            tv_acc += tr_sz[k]
            started = True
            k += 1
        # -------------------------------------------------------------- sample at clock[ti]
        panel_out[ti, :fs] = state
        panel_out[ti, fs] = (t - last_book_t) / 1e9 if last_book_t >= 0 else np.nan
        if ti == 0:
            panel_out[ti, fs + 1] = np.nan
            panel_out[ti, fs + 2] = np.nan
            panel_out[ti, fs + 3] = np.nan
            panel_out[ti, fs + 4] = np.nan
        else:
            panel_out[ti, fs + 1] = ofi_acc if valid else np.nan
            panel_out[ti, fs + 2] = tf_acc if started else np.nan
            panel_out[ti, fs + 3] = tv_acc if started else np.nan
            panel_out[ti, fs + 4] = _timb(tf_acc, tv_acc)
        ofi_acc = 0.0
        tf_acc = 0.0
        tv_acc = 0.0
        ti += 1
    return crossed, updates, e


@_jit
def book_after(ev_kind, ev_lv0, ev_lv1, lv_idx, lv_side, lv_sz, n_levels, upto):
    """Dense bid/ask size arrays after applying events [0, upto), and whether the book is valid."""
    bid = np.zeros(n_levels, np.float64)
    ask = np.zeros(n_levels, np.float64)
    valid = False
    for e in range(upto):
        kd = ev_kind[e]
        if kd == EV_GAP or kd == EV_SNAPSHOT:
            bid[:] = 0.0
            ask[:] = 0.0
            valid = kd == EV_SNAPSHOT
        for r in range(ev_lv0[e], ev_lv1[e]):
            if lv_side[r] > 0:
                bid[lv_idx[r]] = lv_sz[r]
            else:
                ask[lv_idx[r]] = lv_sz[r]
    return bid, ask, valid


def empty_outputs(n_events: int, fs: int, per_event: bool, top: bool) -> tuple[np.ndarray, np.ndarray]:
    ev_out = np.empty((n_events if per_event else 0, fs), np.float64)
    ev_top = np.empty((n_events if top else 0, 4), np.float64)
    return ev_out, ev_top

