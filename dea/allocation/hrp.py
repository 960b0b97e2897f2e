"""Hierarchical Risk Parity (López de Prado 2016) in plain numpy, for the ``hrp`` base allocation.

Why not skfolio: the base is computed in the live loop too, and serving runs on numpy and
onnxruntime only. The weights are produced by the ``hrp_weight`` feature
(:mod:`dea.features.cross_asset`), so training, backtests and the live loop read one definition;
``tests/features/test_features_hrp.py`` checks it against skfolio's ``HierarchicalRiskParity`` with the
same settings (variance risk measure, Pearson distance, single linkage, no optimal leaf ordering).

Steps on a window of returns ``[W, N]``:

1. instruments with a complete window and positive variance take part (the others get NaN:
   no weight on a risk estimate DEA does not have);
2. sample covariance (ddof 1), correlation, distance ``d_ij = sqrt((1 - rho_ij) / 2)``;
3. single-linkage agglomerative clustering (the closest pair of clusters merges first; a merge
   lists the smaller cluster id first, new clusters get ids ``N, N+1, ...``: scipy's convention);
4. quasi-diagonalisation: the leaf order of that tree (left subtree first);
5. recursive bisection: split the ordered list in halves, give each half the variance ``v`` of its
   inverse-variance portfolio, and split the parent weight ``1 - v_l / (v_l + v_r)`` to the left.

Weights are >= 0 and sum to 1 over the instruments that take part. Exact distance ties merge in
index order (scipy may break them differently; real returns do not tie).
"""

from __future__ import annotations

import numpy as np

_VAR_FLOOR = 1e-20  # a variance at or below this is "no risk estimate" (constant or 0-filled prices)


def single_linkage_order(dist: np.ndarray) -> list[int]:
    """Leaf order of the single-linkage tree of a symmetric distance matrix [K, K]."""
    d = np.array(dist, dtype=np.float64)
    k = d.shape[0]
    if d.shape != (k, k):
        raise ValueError(f"distance matrix must be square, got shape {d.shape}")
    if k == 1:
        return [0]
    np.fill_diagonal(d, np.inf)
    ids = list(range(k))  # cluster id held in each active row of d
    children: dict[int, tuple[int, int]] = {}
    active = np.ones(k, dtype=bool)
    for step in range(k - 1):
        masked = np.where(active[:, None] & active[None, :], d, np.inf)
        flat = int(np.argmin(masked))
        a, b = divmod(flat, k)
        a, b = min(a, b), max(a, b)
        ca, cb = ids[a], ids[b]
        children[k + step] = (min(ca, cb), max(ca, cb))
        merged = np.minimum(d[a], d[b])  # single linkage: distance to the closest member
        d[a, :] = merged
        d[:, a] = merged
        d[a, a] = np.inf
        active[b] = False
        d[b, :] = np.inf
        d[:, b] = np.inf
        ids[a] = k + step
    order: list[int] = []
    stack = [2 * k - 2]
    while stack:
        node = stack.pop()
        if node < k:
            order.append(node)
        else:
            left, right = children[node]
            stack.append(right)
            stack.append(left)
    return order


def recursive_bisection(cov: np.ndarray, order: list[int]) -> np.ndarray:
    """HRP weights [K] from a covariance [K, K] and a leaf order (step 5 of the module docstring)."""
    c = np.asarray(cov, dtype=np.float64)
    var = np.diag(c)
    w = np.ones(c.shape[0])
    items = [np.asarray(order, dtype=np.intp)]
    while items:
        nxt = []
        for ids in items:
            if len(ids) < 2:
                continue
            mid = len(ids) // 2
            halves = (ids[:mid], ids[mid:])
            risks = []
            for h in halves:
                iv = 1.0 / var[h]
                iv = iv / iv.sum()
                risks.append(float(iv @ c[np.ix_(h, h)] @ iv))
            alpha = 1.0 - risks[0] / (risks[0] + risks[1])
            w[halves[0]] *= alpha
            w[halves[1]] *= 1.0 - alpha
            nxt.extend(halves)
        items = nxt
    return w


def hrp_weights(returns: np.ndarray) -> np.ndarray:
    """HRP weights [N] of a return window [W, N]; NaN for instruments that take no part.

    All NaN when fewer than two rows or no instrument has a complete, non-constant window."""
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"returns must be [W, N], got shape {x.shape}")
    n_rows, n = x.shape
    out = np.full(n, np.nan)
    if n_rows < 2:
        return out
    cand = np.flatnonzero(np.isfinite(x).all(axis=0))
    if cand.size == 0:
        return out
    sub = x[:, cand]
    dev = sub - sub.mean(axis=0)
    var = (dev * dev).sum(axis=0) / (n_rows - 1)
    keep = var > _VAR_FLOOR
    cand, dev = cand[keep], dev[:, keep]
    if cand.size == 0:
        return out
    if cand.size == 1:
        out[cand[0]] = 1.0
        return out
    cov = dev.T @ dev / (n_rows - 1)
    sd = np.sqrt(np.diag(cov))
    corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
    dist = np.sqrt(np.maximum(0.5 * (1.0 - corr), 0.0))
    out[cand] = recursive_bisection(cov, single_linkage_order(dist))
    return out


__all__ = ["hrp_weights", "recursive_bisection", "single_linkage_order"]
