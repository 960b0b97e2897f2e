"""Byte-level scanner for Binance capture files (numba; batch only, never imported by serving).

Why not ``orjson.loads`` per line: building Python objects for ~440k ``[price, size]`` string
pairs is most of the cost of a plain pipeline (~260k messages/s). This scanner walks the
decompressed bytes once, *validates* each line's JSON syntax (objects, arrays, strings with
escapes, numbers, literals; bracket matching) and extracts only the fields the book needs,
converting decimal strings straight to fixed-point integer price ticks and float sizes.

Exactness: prices become int64 ticks of 10**-9 (:data:`PRICE_DECIMALS`); ``ticks / 1e9`` is the
correctly rounded value of the decimal, i.e. exactly ``float(price_string)`` for prices below
9e6. Sizes with up to 15 significant digits are ``mantissa / 10**decimals`` (both exact, so the
division is correctly rounded: exactly ``float(size_string)``); longer ones are within an ulp.

Speed: numba does not inline calls between compiled functions (each costs a few ns, which at
~30 bytes per token dominates), so the hot paths avoid them: whitespace is tested inline before
calling the skipper, one-letter keys are recognised in place, and a price/size string is
validated and converted in a single pass (:func:`_dec_str`).

The scanner is stricter than JSON in one way (a level must be ``[price_string, size_string]``)
and looser in one (bytes >= 0x80 inside strings are not checked as UTF-8). Errors come back as
codes with the failing line; :mod:`dea.book.capture` turns them into
:class:`~dea.errors.DataFormatError` naming the file and line.
"""

from __future__ import annotations

import numba as nb
import numpy as np

PRICE_DECIMALS = 9
PRICE_SCALE = 10**PRICE_DECIMALS

# message kinds
K_OTHER = 0
K_SNAPSHOT = 1
K_DIFF = 2
K_TICKER = 3
K_TRADE = 4

# error codes (0 = ok)
E_PREFIX = 1
E_SYNTAX = 2
E_MISSING = 3
E_DECIMAL = 4
E_SYMBOL = 5
E_INTEGER = 6
E_NESTING = 7
ERROR_TEXT = {
    E_PREFIX: "expected '<receive ns> <json>' (a decimal receive time, a space, then JSON)",
    E_SYNTAX: "not valid JSON",
    E_MISSING: "a required field is missing or malformed",
    E_DECIMAL: "a price/size string is not a plain non-negative decimal with at most 9 decimals",
    E_SYMBOL: "the capture mixes symbols (one book per file set)",
    E_INTEGER: "an id/timestamp field is not an integer that fits int64",
    E_NESTING: "JSON nested deeper than 64 levels",
}

# field bits (which fields a message had)
F_E = 1 << 0
F_T = 1 << 1
F_U = 1 << 2
F_u = 1 << 3
F_pu = 1 << 4
F_b = 1 << 5
F_a = 1 << 6
F_B = 1 << 7
F_A = 1 << 8
F_p = 1 << 9
F_q = 1 << 10
F_t = 1 << 11
F_m = 1 << 12
F_LAST = 1 << 13
F_BIDS = 1 << 14
F_ASKS = 1 << 15
FIELD_NAMES = {
    F_E: "E", F_T: "T", F_U: "U", F_u: "u", F_pu: "pu", F_b: "b", F_a: "a", F_B: "B", F_A: "A",
    F_p: "p", F_q: "q", F_t: "t", F_m: "m", F_LAST: "lastUpdateId", F_BIDS: "bids", F_ASKS: "asks",
}

# key ids
_KEY_UNKNOWN = 0
_KEY_DATA = 1000  # multi-letter keys: ids above any byte value (one-letter keys map to their byte)
_KEY_BIDS = 1001
_KEY_ASKS = 1002
_KEY_LAST = 1003
_KEY_PU = 1004

_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
_POW10F = np.array([10.0**i for i in range(23)], dtype=np.float64)
_MAX_EXACT = 2**53

_jit = nb.njit(cache=True, nogil=True)


@_jit
def _ws(b, i, end):
    while i < end:
        c = b[i]
        if c == 32 or c == 9 or c == 13 or c == 10:
            i += 1
        else:
            break
    return i


@_jit
def _is_hex(c):
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


@_jit
def _string(b, i, end):
    """b[i] is '"'. Returns (content_start, content_stop, next) or stop = -1 on error."""
    i += 1
    start = i
    while i < end:
        c = b[i]
        if c == 34:
            return start, i, i + 1
        if c == 92:
            if i + 1 >= end:
                return start, -1, -1
            e = b[i + 1]
            if e == 117:
                if i + 5 >= end:
                    return start, -1, -1
                for k in range(2, 6):
                    if not _is_hex(b[i + k]):
                        return start, -1, -1
                i += 6
            elif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                i += 2
            else:
                return start, -1, -1
        elif c < 32:
            return start, -1, -1
        else:
            i += 1
    return start, -1, -1


@_jit
def _number(b, i, end):
    """JSON number at b[i]. Returns (next or -1, is_integer, int value, overflow)."""
    neg = False
    if i < end and b[i] == 45:
        neg = True
        i += 1
    if i >= end or not (48 <= b[i] <= 57):
        return -1, False, 0, False
    val = 0
    overflow = False
    if b[i] == 48:
        i += 1
    else:
        nd = 0
        while i < end and 48 <= b[i] <= 57:
            d = b[i] - 48
            if nd < 18:  # 18 digits always fit int64; only longer numbers need the careful test
                val = val * 10 + d
            elif val > (9223372036854775807 - d) // 10:
                overflow = True
            else:
                val = val * 10 + d
            nd += 1
            i += 1
    is_int = True
    if i < end and b[i] == 46:
        is_int = False
        i += 1
        if i >= end or not (48 <= b[i] <= 57):
            return -1, False, 0, False
        while i < end and 48 <= b[i] <= 57:
            i += 1
    if i < end and (b[i] == 101 or b[i] == 69):
        is_int = False
        i += 1
        if i < end and (b[i] == 43 or b[i] == 45):
            i += 1
        if i >= end or not (48 <= b[i] <= 57):
            return -1, False, 0, False
        while i < end and 48 <= b[i] <= 57:
            i += 1
    return i, is_int, -val if neg else val, overflow


@_jit
def _literal(b, i, end):
    """true/false/null at b[i]. Returns (next or -1, value: 1 true, 0 false, -1 null)."""
    c = b[i]
    if c == 116 and i + 4 <= end and b[i + 1] == 114 and b[i + 2] == 117 and b[i + 3] == 101:
        return i + 4, 1
    if c == 102 and i + 5 <= end and b[i + 1] == 97 and b[i + 2] == 108 and b[i + 3] == 115 and b[i + 4] == 101:
        return i + 5, 0
    if c == 110 and i + 4 <= end and b[i + 1] == 117 and b[i + 2] == 108 and b[i + 3] == 108:
        return i + 4, -1
    return -1, 0


@_jit
def _skip(b, i, end, stack):
    """Validate and skip any JSON value starting at or after i. Returns next or -1 (-2: too deep)."""
    sp = 0
    while True:
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end:
            return -1
        c = b[i]
        if c == 123:  # {
            i = i + 1
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i < end and b[i] == 125:
                i += 1
            else:
                if i >= end or b[i] != 34:
                    return -1
                s, e, i = _string(b, i, end)
                if e < 0:
                    return -1
                if i < end and b[i] <= 32:
                    i = _ws(b, i, end)
                if i >= end or b[i] != 58:
                    return -1
                i += 1
                if sp >= stack.shape[0]:
                    return -2
                stack[sp] = 1
                sp += 1
                continue
        elif c == 91:  # [
            i = i + 1
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i < end and b[i] == 93:
                i += 1
            else:
                if sp >= stack.shape[0]:
                    return -2
                stack[sp] = 2
                sp += 1
                continue
        elif c == 34:
            s, e, i = _string(b, i, end)
            if e < 0:
                return -1
        elif c == 45 or (48 <= c <= 57):
            i, is_int, v, ov = _number(b, i, end)
            if i < 0:
                return -1
        else:
            i, v = _literal(b, i, end)
            if i < 0:
                return -1
        # a value is complete: close containers / move to the next member
        while True:
            if sp == 0:
                return i
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i >= end:
                return -1
            c = b[i]
            if stack[sp - 1] == 1:
                if c == 44:
                    i = i + 1
                    if i < end and b[i] <= 32:
                        i = _ws(b, i, end)
                    if i >= end or b[i] != 34:
                        return -1
                    s, e, i = _string(b, i, end)
                    if e < 0:
                        return -1
                    if i < end and b[i] <= 32:
                        i = _ws(b, i, end)
                    if i >= end or b[i] != 58:
                        return -1
                    i += 1
                    break
                if c == 125:
                    sp -= 1
                    i += 1
                    continue
                return -1
            if c == 44:
                i += 1
                break
            if c == 93:
                sp -= 1
                i += 1
                continue
            return -1


@_jit
def _dec_str(b, i, end):
    """A '"<decimal>"' string at b[i], parsed in one pass (the hot path of price/size strings).

    Returns (next, mantissa, decimals, status): status 0 ok, 1 a valid JSON string that is not a
    plain decimal (caller reports E_DECIMAL), 2 not a valid JSON string (E_SYNTAX).
    """
    i += 1
    s = i
    mant = 0
    ndec = 0
    digits = 0
    dot = -1
    while i < end:
        c = b[i]
        if 48 <= c <= 57:
            if digits >= 18:
                break
            mant = mant * 10 + (c - 48)
            if mant > 0:
                digits += 1
            if dot >= 0:
                ndec += 1
            i += 1
        elif c == 46 and dot < 0:
            dot = i
            i += 1
        elif c == 34:
            if i == s or dot == s or dot == i - 1:
                return i + 1, 0, 0, 1
            return i + 1, mant, ndec, 0
        else:
            break
    st, en, nxt = _string(b, s - 1, end)
    if en < 0:
        return -1, 0, 0, 2
    return nxt, 0, 0, 1


@_jit
def _ticks_of(mant, ndec):
    """Fixed-point price ticks of 1e-9 from a parsed decimal, or -1 when not representable."""
    if ndec > PRICE_DECIMALS:
        return -1
    mul = _POW10[PRICE_DECIMALS - ndec]
    if mant > 9223372036854775807 // mul:
        return -1
    return mant * mul


@_jit
def _float_of(mant, ndec):
    if ndec > 22:
        return np.nan
    return np.float64(mant) / _POW10F[ndec]


@_jit
def _key_id(b, s, e):
    n = e - s
    if n == 1:
        return np.int64(b[s])  # the character itself identifies one-letter keys
    if n == 2:
        if b[s] == 112 and b[s + 1] == 117:
            return _KEY_PU
        return _KEY_UNKNOWN
    if n == 4:
        c0, c1, c2, c3 = b[s], b[s + 1], b[s + 2], b[s + 3]
        if c0 == 100 and c1 == 97 and c2 == 116 and c3 == 97:
            return _KEY_DATA
        if c0 == 98 and c1 == 105 and c2 == 100 and c3 == 115:
            return _KEY_BIDS
        if c0 == 97 and c1 == 115 and c2 == 107 and c3 == 115:
            return _KEY_ASKS
        return _KEY_UNKNOWN
    if n == 12 and b[s] == 108 and b[s + 4] == 85 and b[s + 10] == 73:  # lastUpdateId
        return _KEY_LAST
    return _KEY_UNKNOWN


@_jit
def _event_kind(b, s, e):
    """Kind from the value of "e": depthUpdate / bookTicker / trade; anything else is other."""
    n = e - s
    if n == 11 and b[s] == 100 and b[s + 5] == 85 and b[s + 10] == 101:
        return K_DIFF
    if n == 10 and b[s] == 98 and b[s + 4] == 84 and b[s + 9] == 114:
        return K_TICKER
    if n == 5 and b[s] == 116 and b[s + 1] == 114 and b[s + 4] == 101:
        return K_TRADE
    return K_OTHER


@_jit
def _levels(b, i, end, side, lv_px, lv_sz, lv_side, n_lv):
    """Parse '[[p,q],...]' at b[i]. Returns (next or -1 syntax / -3 decimal, new n_lv)."""
    # b[i] == '['
    i = i + 1
    if i < end and b[i] <= 32:
        i = _ws(b, i, end)
    if i < end and b[i] == 93:
        return i + 1, n_lv
    while True:
        if i >= end or b[i] != 91:
            return -1, n_lv
        i = i + 1
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end or b[i] != 34:
            return -1, n_lv
        i, pm, pd, pst = _dec_str(b, i, end)
        if pst == 2:
            return -1, n_lv
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end or b[i] != 44:
            return -1, n_lv
        i = i + 1
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end or b[i] != 34:
            return -1, n_lv
        i, qm, qd, qst = _dec_str(b, i, end)
        if qst == 2:
            return -1, n_lv
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end or b[i] != 93:
            return -1, n_lv
        px = _ticks_of(pm, pd) if pst == 0 else -1
        sz = _float_of(qm, qd) if qst == 0 else np.nan
        if px < 0 or not (sz >= 0.0):
            return -3, n_lv
        if n_lv >= lv_px.shape[0]:  # cannot happen for the caller's bound; never write past it
            return -1, n_lv
        lv_px[n_lv] = px
        lv_sz[n_lv] = sz
        lv_side[n_lv] = side
        n_lv += 1
        i = i + 1
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end:
            return -1, n_lv
        if b[i] == 44:
            i = i + 1
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            continue
        if b[i] == 93:
            return i + 1, n_lv
        return -1, n_lv


@_jit
def scan_capture(b, n_lines, lv_cap):
    """Scan a decompressed capture. ``n_lines``: upper bound on lines; ``lv_cap``: on levels.

    Returns (error, error_line, error_fields, n_msg, per-message arrays..., n_lv, level arrays...,
    symbol_start, symbol_len, n_blank). Lines are 1-based.
    """
    n = b.shape[0]
    kind = np.empty(n_lines, np.int8)
    line_no = np.empty(n_lines, np.int64)
    recv = np.empty(n_lines, np.int64)
    ts = np.empty(n_lines, np.int64)
    id_first = np.empty(n_lines, np.int64)  # U (diff) / t (trade)
    id_final = np.empty(n_lines, np.int64)  # u (diff, ticker) / lastUpdateId (snapshot)
    id_prev = np.empty(n_lines, np.int64)  # pu (futures diff) or -1
    lv0 = np.empty(n_lines, np.int64)
    lv1 = np.empty(n_lines, np.int64)
    bpx = np.empty(n_lines, np.int64)  # ticker bid / trade price ticks
    bsz = np.empty(n_lines, np.float64)  # ticker bid size / trade size
    apx = np.empty(n_lines, np.int64)
    asz = np.empty(n_lines, np.float64)
    side = np.empty(n_lines, np.int8)  # trade aggressor
    lv_px = np.empty(lv_cap, np.int64)
    lv_sz = np.empty(lv_cap, np.float64)
    lv_side = np.empty(lv_cap, np.int8)
    stack = np.empty(64, np.uint8)
    n_msg = 0
    n_lv = 0
    n_blank = 0
    sym_s = -1
    sym_n = 0
    pos = 0
    line = 0
    while pos < n:
        line += 1
        end = pos
        while end < n and b[end] != 10:
            end += 1
        nxt = end + 1
        i = pos
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end:
            n_blank += 1
            pos = nxt
            continue
        # ---- receive-time prefix
        t_recv = 0
        nd = 0
        while i < end and 48 <= b[i] <= 57:
            if nd >= 19:
                return E_PREFIX, line, 0, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
            t_recv = t_recv * 10 + (b[i] - 48)
            nd += 1
            i += 1
        if nd == 0 or i >= end or b[i] != 32:
            return E_PREFIX, line, 0, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        if i >= end or b[i] != 123:
            return E_SYNTAX, line, 0, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
        # ---- per-message state
        k = K_OTHER
        have = 0
        bad = 0
        vE = 0
        vT = 0
        vU = 0
        vu = 0
        vpu = -1
        vt = 0
        vlast = 0
        vbp = 0
        vap = 0
        vbs = 0.0
        vas = 0.0
        vp = 0
        vq = 0.0
        vm = 0
        lv_start = n_lv
        err = 0
        # depth 1: the envelope or a snapshot; depth 2: the "data" payload
        depth = 1
        i = i + 1
        if i < end and b[i] <= 32:
            i = _ws(b, i, end)
        empty = i < end and b[i] == 125
        if empty:
            i += 1
        while not empty:
            if i >= end or b[i] != 34:
                err = E_SYNTAX
                break
            if i + 2 < end and b[i + 2] == 34 and b[i + 1] >= 32 and b[i + 1] != 92 and b[i + 1] != 34:
                ks = i + 1  # fast path: one-character key such as "u"
                ke = i + 2
                i += 3
            else:
                ks, ke, i = _string(b, i, end)
                if ke < 0:
                    err = E_SYNTAX
                    break
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i >= end or b[i] != 58:
                err = E_SYNTAX
                break
            i = i + 1
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i >= end:
                err = E_SYNTAX
                break
            key = _key_id(b, ks, ke)
            c = b[i]
            handled = False
            if depth == 1 and key == _KEY_DATA and c == 123:
                i = i + 1
                if i < end and b[i] <= 32:
                    i = _ws(b, i, end)
                depth = 2
                if i < end and b[i] == 125:
                    i += 1
                    depth = 1
                else:
                    continue  # parse the payload's members
                handled = True
            elif c == 91 and (
                (depth == 2 and (key == 98 or key == 97)) or (depth == 1 and (key == _KEY_BIDS or key == _KEY_ASKS))
            ):
                sd = 1 if (key == 98 or key == _KEY_BIDS) else -1
                i, n_lv = _levels(b, i, end, sd, lv_px, lv_sz, lv_side, n_lv)
                if i == -3:
                    err = E_DECIMAL
                    break
                if i < 0:
                    err = E_SYNTAX
                    break
                if key == 98:
                    have |= F_b
                elif key == 97:
                    have |= F_a
                elif key == _KEY_BIDS:
                    have |= F_BIDS
                else:
                    have |= F_ASKS
                handled = True
            elif c == 34 and depth == 2 and (key == 98 or key == 97 or key == 66 or key == 65 or key == 112 or key == 113):
                i, dm, dd, dst = _dec_str(b, i, end)
                if dst == 2:
                    err = E_SYNTAX
                    break
                if key == 98 or key == 97 or key == 112:
                    px = _ticks_of(dm, dd) if dst == 0 else -1
                    if px < 0:
                        bad |= F_b if key == 98 else (F_a if key == 97 else F_p)
                    if key == 98:
                        vbp = px
                        have |= F_b
                    elif key == 97:
                        vap = px
                        have |= F_a
                    else:
                        vp = px
                        have |= F_p
                else:
                    sz = _float_of(dm, dd) if dst == 0 else np.nan
                    if not (sz >= 0.0):
                        bad |= F_B if key == 66 else (F_A if key == 65 else F_q)
                    if key == 66:
                        vbs = sz
                        have |= F_B
                    elif key == 65:
                        vas = sz
                        have |= F_A
                    else:
                        vq = sz
                        have |= F_q
                handled = True
            elif c == 34 and depth == 2 and (key == 101 or key == 115):
                vs, ve, i = _string(b, i, end)
                if ve < 0:
                    err = E_SYNTAX
                    break
                if key == 101:
                    k = _event_kind(b, vs, ve)
                elif key == 115:
                    if sym_s < 0:
                        sym_s = vs
                        sym_n = ve - vs
                    else:
                        same = (ve - vs) == sym_n
                        if same:
                            for j in range(sym_n):
                                if b[vs + j] != b[sym_s + j]:
                                    same = False
                                    break
                        if not same:
                            err = E_SYMBOL
                            break
                handled = True
            elif (c == 45 or (48 <= c <= 57)) and (
                (depth == 2 and (key == 69 or key == 84 or key == 85 or key == 117 or key == _KEY_PU or key == 116))
                or (depth == 1 and (key == 69 or key == 84 or key == _KEY_LAST))
            ):
                i, is_int, v, ov = _number(b, i, end)
                if i < 0:
                    err = E_SYNTAX
                    break
                if not is_int or ov:
                    err = E_INTEGER
                    break
                if key == 69:
                    vE = v
                    have |= F_E
                elif key == 84:
                    vT = v
                    have |= F_T
                elif key == 85:
                    vU = v
                    have |= F_U
                elif key == 117:
                    vu = v
                    have |= F_u
                elif key == _KEY_PU:
                    vpu = v
                    have |= F_pu
                elif key == 116:
                    vt = v
                    have |= F_t
                else:
                    vlast = v
                    have |= F_LAST
                handled = True
            elif depth == 2 and key == 109 and (c == 116 or c == 102):
                i, v = _literal(b, i, end)
                if i < 0:
                    err = E_SYNTAX
                    break
                vm = v
                have |= F_m
                handled = True
            if not handled:
                i = _skip(b, i, end, stack)
                if i == -2:
                    err = E_NESTING
                    break
                if i < 0:
                    err = E_SYNTAX
                    break
            # after a member: ',' or a closing brace
            if i < end and b[i] <= 32:
                i = _ws(b, i, end)
            if i >= end:
                err = E_SYNTAX
                break
            if b[i] == 44:
                i = i + 1
                if i < end and b[i] <= 32:
                    i = _ws(b, i, end)
                continue
            if b[i] == 125:
                i += 1
                if depth == 2:
                    depth = 1
                    if i < end and b[i] <= 32:
                        i = _ws(b, i, end)
                    if i >= end:
                        err = E_SYNTAX
                        break
                    if b[i] == 44:
                        i = i + 1
                        if i < end and b[i] <= 32:
                            i = _ws(b, i, end)
                        continue
                    if b[i] == 125:
                        i += 1
                        break
                    err = E_SYNTAX
                    break
                break
            err = E_SYNTAX
            break
        if err == 0 and _ws(b, i, end) != end:
            err = E_SYNTAX
        if err != 0:
            return err, line, 0, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
        # ---- classify and check required fields
        if have & F_LAST:
            k = K_SNAPSHOT
        elif k == K_OTHER and (have & F_B) and (have & F_A) and (have & F_u):
            k = K_TICKER
        if k != K_OTHER:
            need = 0
            if k == K_DIFF:
                need = F_U | F_u | F_b | F_a | F_E
            elif k == K_TICKER:
                need = F_u | F_b | F_a | F_B | F_A
            elif k == K_TRADE:
                need = F_t | F_p | F_q | F_m
            else:
                need = F_LAST | F_BIDS | F_ASKS
            missing = (need & ~have) | (need & bad)
            if k == K_TRADE and not (have & (F_T | F_E)):
                missing |= F_T
            if missing:
                return E_MISSING, line, missing, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
        if k != K_DIFF and k != K_SNAPSHOT:
            n_lv = lv_start  # levels of other payloads are not book levels
        m = n_msg
        kind[m] = k
        line_no[m] = line
        recv[m] = t_recv
        if have & F_T:
            ts[m] = vT * 1000000
        elif have & F_E:
            ts[m] = vE * 1000000
        else:
            ts[m] = t_recv
        id_first[m] = vt if k == K_TRADE else vU
        id_final[m] = vlast if k == K_SNAPSHOT else vu
        id_prev[m] = vpu
        lv0[m] = lv_start
        lv1[m] = n_lv
        bpx[m] = vp if k == K_TRADE else vbp
        bsz[m] = vq if k == K_TRADE else vbs
        apx[m] = vap
        asz[m] = vas
        side[m] = -1 if vm == 1 else 1
        n_msg += 1
        pos = nxt
    return 0, 0, 0, n_msg, kind, line_no, recv, ts, id_first, id_final, id_prev, lv0, lv1, bpx, bsz, apx, asz, side, n_lv, lv_px, lv_sz, lv_side, sym_s, sym_n, n_blank
