"""Vectorised stochastic-process primitives for the simulator (numpy only).

Why separate: each is a small, independently testable building block (an AR(1) filter, a Markov
chain of regimes, compound-Poisson jumps, Brownian-bridge bar extremes); ``market.simulate``
composes them. None loops per time step in Python: the AR(1) filter works in blocks, the regime
chain samples whole sojourns.
"""

from __future__ import annotations

import zlib

import numpy as np

_BLOCK = 64


def component_rng(seed: int, component: str) -> np.random.Generator:
    """An independent generator per named component.

    Why: turning on the order book or adding an exogenous series must not change the prices, so
    each component draws from its own stream derived from (seed, name), not from a shared one.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(component.encode())]))


def ar1_filter(shocks: np.ndarray, phi: float, x0: np.ndarray | float = 0.0) -> np.ndarray:
    """x[t] = phi * x[t-1] + shocks[t] along axis 0, with x[-1] = x0.

    Computed in blocks of 64 steps: within a block the response is a small Toeplitz matrix
    product, and only the block ends are carried forward in a (short) Python loop, so a
    20k-step series costs ~300 iterations instead of 20k.
    """
    shocks = np.asarray(shocks, dtype=np.float64)
    t_len = shocks.shape[0]
    rest = shocks.shape[1:]
    if t_len == 0:
        return shocks.copy()
    n_blocks = -(-t_len // _BLOCK)
    padded = np.zeros((n_blocks * _BLOCK, *rest))
    padded[:t_len] = shocks
    blocks = padded.reshape(n_blocks, _BLOCK, -1)
    lags = np.arange(_BLOCK)
    diff = lags[:, None] - lags[None, :]
    with np.errstate(over="ignore", under="ignore"):
        kernel = np.where(diff >= 0, float(phi) ** np.maximum(diff, 0), 0.0)
    local = np.einsum("ij,bjk->bik", kernel, blocks)
    powers = float(phi) ** (lags + 1)  # effect of the previous block's end on each position
    carry = np.broadcast_to(np.asarray(x0, dtype=np.float64).reshape(-1), (blocks.shape[2],)).copy()
    out = np.empty_like(local)
    for b in range(n_blocks):
        out[b] = local[b] + powers[:, None] * carry[None, :]
        carry = out[b, -1]
    return out.reshape(n_blocks * _BLOCK, *rest)[:t_len]


def ar1_unit(
    rng: np.random.Generator, shape: tuple[int, ...], phi: float, scale: np.ndarray | None = None
) -> np.ndarray:
    """A stationary AR(1) path with unit variance (times ``scale`` per step, if given).

    The innovation is sqrt(1 - phi^2) * scale[t] * N(0, 1), and the first value is drawn from the
    stationary distribution, so there is no burn-in.
    """
    eps = rng.standard_normal(shape)
    innov = np.sqrt(max(1.0 - phi * phi, 0.0)) * eps[1:]
    if scale is not None:
        innov = innov * scale[1:]
        first = eps[0] * scale[0]
    else:
        first = eps[0]
    out = np.empty(shape)
    out[0] = first
    out[1:] = ar1_filter(innov, phi, first)
    return out


def halflife_phi(halflife_ns: int, step_ns: int) -> float:
    """AR(1) coefficient whose impulse response halves every ``halflife_ns``."""
    return float(0.5 ** (step_ns / halflife_ns))


def markov_regimes(
    rng: np.random.Generator, n_steps: int, exit_prob: np.ndarray
) -> np.ndarray:
    """A Markov chain of regimes, one per step (int8), sampled sojourn by sojourn.

    Regime k is left with probability ``exit_prob[k]`` per step (geometric sojourn), to one of the
    other regimes chosen uniformly; the first regime is drawn from the stationary distribution
    (time share proportional to the mean sojourn 1/exit_prob).
    """
    k = len(exit_prob)
    out = np.empty(n_steps, dtype=np.int8)
    if k == 1:
        out[:] = 0
        return out
    stationary = stationary_shares(exit_prob)
    state = int(rng.choice(k, p=stationary))
    pos = 0
    while pos < n_steps:
        length = int(rng.geometric(exit_prob[state]))
        out[pos : pos + length] = state
        pos += length
        nxt = int(rng.integers(k - 1))
        state = nxt if nxt < state else nxt + 1
    return out


def stationary_shares(exit_prob: np.ndarray) -> np.ndarray:
    """Long-run share of time in each regime for :func:`markov_regimes`' chain."""
    dur = 1.0 / np.asarray(exit_prob, dtype=np.float64)
    return dur / dur.sum()


def compound_poisson(
    rng: np.random.Generator, intensity: np.ndarray, mean: float, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of Normal(mean, std) jumps per cell, with Poisson(intensity) counts per cell.

    Returns (jump sum, count). Exact: the sum of c normal jumps is Normal(c*mean, c*std^2).
    """
    counts = rng.poisson(intensity)
    z = rng.standard_normal(counts.shape)
    return counts * mean + np.sqrt(counts) * std * z, counts


def bridge_extremes(
    rng: np.random.Generator, log_move: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and minimum (in log price, relative to the open) of a Brownian bridge.

    For a bridge from 0 to b with variance sigma^2 over the bar, the maximum is exactly
    (b + sqrt(b^2 - 2 sigma^2 ln U)) / 2 (and the minimum symmetrically), so bar highs and lows
    are consistent with opens and closes without simulating intrabar paths.
    """
    u1 = 1.0 - rng.random(log_move.shape)  # (0, 1]
    u2 = 1.0 - rng.random(log_move.shape)
    s2 = sigma * sigma
    hi = 0.5 * (log_move + np.sqrt(log_move * log_move - 2.0 * s2 * np.log(u1)))
    lo = 0.5 * (log_move - np.sqrt(log_move * log_move - 2.0 * s2 * np.log(u2)))
    return hi, lo
