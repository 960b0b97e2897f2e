"""A seeded, reproducible multi-asset perpetual-swap market (numpy only at import time).

The model, per bar t (opening at ``clock[t]``, lasting one ``step``):

- a market-wide Markov chain picks the volatility regime (calm / volatile ...);
- a latent alpha per asset follows a unit-variance AR(1) with half-life ``signal_halflife``;
- the perpetual's (mark) log return is ``log(1 + mu) - sigma^2/2 - compensator + sigma z + J``
  with ``mu = drift + k * alpha * sd`` (k set by ``signal_strength``, sd the regime's total
  per-step volatility), z correlated Gaussian shocks, J compensated compound-Poisson jumps (a
  market-wide and an idiosyncratic component). So E[r | alpha] = mu exactly and the planted
  signal's information coefficient on vol-standardised returns is ``signal_strength``;
- the index is ``mark / (1 + basis)``, the basis a mean-reverting premium that leans with alpha
  (crowded longs pay); funding settles every ``funding.interval`` at clip(mean basis + interest);
- exogenous series (sentiment, on-chain) publish noisy period averages of alpha with a lag;
- the book's spread widens and depth thins with the regime's volatility;
- stress scenarios force regimes on chosen bars and script price shocks (see ``SimConfig``).

Why this shape: it carries the stylised facts a crypto-derivatives policy must survive (vol
clustering, crashes, funding drag, thin books in stress), while the one thing worth learning (the
alpha) is known exactly, so training can be scored against the oracle that holds it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dea.sim.config import SimConfig
from dea.sim.moments import RegimeMoments, regime_moments, signal_loading
from dea.sim.oracle import oracle_exposure, oracle_scale
from dea.sim.processes import (
    ar1_unit,
    bridge_extremes,
    component_rng,
    compound_poisson,
    halflife_phi,
    markov_regimes,
)
from dea.timeutil import parse_duration

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class ExogenousSeries:
    """One published series: ``values`` [P, E] for ``entities`` (asset symbols, or ``("",)``)."""

    name: str
    entities: tuple[str, ...]
    ts_event: np.ndarray
    available_at: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class SimMarket:
    """A simulated market. Arrays are read-only; [T, N] arrays are indexed by bar and asset.

    Bar t opens at ``clock[t]`` and closes at ``clock[t] + step_ns``; ``open``/``close`` are the
    perpetual's (mark) price at those instants, ``returns[t] = close[t] / open[t] - 1``.
    ``regimes[t]`` indexes ``regime_names``; ``sigma[t]`` is the bar's diffusive volatility (of
    the log return) and ``jumps[t]`` its jump part (random jumps plus scripted shocks).
    ``alpha[t]``, ``expected_return[t]`` and ``oracle_exposure[t]`` are known at the bar's open:
    the oracle holds ``oracle_exposure[t]`` over bar t. ``price_times`` [T + 1] are the bar
    boundaries, where ``mark``, ``index`` and ``basis`` [T + 1, N] are sampled.
    ``funding_rate`` [S, N] settles at ``funding_times`` [S]; ``funding_per_step`` [T, N] sums the
    rates settled inside each bar (in (open, close]). ``half_spread`` (fraction of mid) and
    ``depth`` (quote notional at the best level) [T + 1, N] are the book's state before noise.
    """

    config: SimConfig
    symbols: tuple[str, ...]
    step_ns: int
    clock: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    returns: np.ndarray
    regimes: np.ndarray
    regime_names: tuple[str, ...]
    sigma: np.ndarray
    jumps: np.ndarray
    alpha: np.ndarray
    expected_return: np.ndarray
    oracle_exposure: np.ndarray
    price_times: np.ndarray
    mark: np.ndarray
    index: np.ndarray
    basis: np.ndarray
    funding_times: np.ndarray
    funding_rate: np.ndarray
    funding_per_step: np.ndarray
    half_spread: np.ndarray
    depth: np.ndarray
    exogenous: Mapping[str, ExogenousSeries] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.clock.size)

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def tables(self, kinds: tuple[str, ...] | None = None) -> dict[str, "pa.Table"]:
        """Canonical tables (``bars``, ``funding``, ``mark``, ``exogenous``, and ``book`` /
        ``quotes`` when the book is enabled). Imports pyarrow lazily."""
        from dea.sim.tables import market_tables

        return market_tables(self, kinds)


def simulate(cfg: SimConfig) -> SimMarket:
    """Simulate the market described by ``cfg``. Same config (seed included) -> identical market."""
    n_steps, n = cfg.n_steps, cfg.n_assets
    step = cfg.step_ns
    seed = cfg.seed
    mom = regime_moments(cfg)
    price_times = cfg.start_ns + step * np.arange(n_steps + 1, dtype=np.int64)
    clock = price_times[:-1]

    regimes = _regime_path(cfg, mom)
    regime_at_price = np.append(regimes, regimes[-1])  # the boundary after the last bar keeps its regime
    sigma = mom.sigma[regimes]

    z = _correlated_shocks(component_rng(seed, "diffusion"), regimes, mom, n)
    jumps = _jumps(component_rng(seed, "jumps"), regimes, mom, cfg) + _scripted_shocks(cfg)

    phi = halflife_phi(parse_duration(cfg.signal_halflife), step)
    alpha_full = ar1_unit(component_rng(seed, "alpha"), (n_steps + 1, n), phi)
    alpha = alpha_full[:-1]
    drift_step = cfg.per_asset("drift") * cfg.step_years
    loading = signal_loading(cfg.signal_strength)
    expected = drift_step[None, :] + loading * alpha * mom.total_sd[regimes]
    expected = np.maximum(expected, -0.5)  # keep log1p defined under absurd configs

    log_move = np.log1p(expected) - 0.5 * sigma**2 - mom.compensator[regimes][:, None] + sigma * z + jumps
    log_price = np.empty((n_steps + 1, n))
    log_price[0] = np.log(cfg.per_asset("start_price"))
    np.cumsum(log_move, axis=0, out=log_price[1:])
    log_price[1:] += log_price[0]
    mark = np.exp(log_price)
    returns = mark[1:] / mark[:-1] - 1.0  # from the published prices, as the backtester computes it

    basis = _basis(cfg, alpha_full, regime_at_price, mom)
    index = mark / (1.0 + basis)
    funding_times, funding_rate, funding_per_step = _funding(cfg, price_times, basis)

    open_, close = mark[:-1], mark[1:]
    hi, lo = bridge_extremes(component_rng(seed, "bars"), log_move, sigma)
    high, low = open_ * np.exp(hi), open_ * np.exp(lo)
    vol_noise = component_rng(seed, "volume").standard_normal((n_steps, n))
    notional = cfg.daily_volume * cfg.step_days * mom.vol_scale[regimes][:, None] * np.exp(0.5 * vol_noise - 0.125)
    volume = notional / (0.5 * (open_ + close))

    ones = np.ones((1, n))
    half_spread = 0.5e-4 * cfg.book.spread_bps * mom.spread_factor[regime_at_price][:, None] * ones
    depth = cfg.book.depth_notional * mom.depth_factor[regime_at_price][:, None] * ones

    scale = oracle_scale(mom, drift_step, loading, cfg.oracle.target_vol * np.sqrt(cfg.step_years))
    oracle = oracle_exposure(expected, regimes, mom, scale, cfg.oracle)

    market = SimMarket(
        config=cfg,
        symbols=cfg.asset_symbols,
        step_ns=step,
        clock=clock,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        returns=returns,
        regimes=regimes,
        regime_names=tuple(r.name for r in cfg.regimes),
        sigma=sigma,
        jumps=jumps,
        alpha=alpha,
        expected_return=expected,
        oracle_exposure=oracle,
        price_times=price_times,
        mark=mark,
        index=index,
        basis=basis,
        funding_times=funding_times,
        funding_rate=funding_rate,
        funding_per_step=funding_per_step,
        half_spread=half_spread,
        depth=depth,
        exogenous=_exogenous(cfg, alpha, clock),
    )
    _freeze(market)
    return market


@functools.lru_cache(maxsize=4)
def _simulate_json(config_json: str) -> SimMarket:
    return simulate(SimConfig.model_validate_json(config_json))


def simulate_cached(cfg: SimConfig) -> SimMarket:
    """:func:`simulate`, memoised on the config's canonical JSON (the market is read-only)."""
    return _simulate_json(cfg.model_dump_json())


def _regime_path(cfg: SimConfig, mom: RegimeMoments) -> np.ndarray:
    """The Markov chain over the chain regimes, then the configured windows forced on top."""
    chain = mom.chain
    path = chain[markov_regimes(component_rng(cfg.seed, "regimes"), cfg.n_steps, mom.exit_prob[chain])]
    path = path.astype(np.int8)
    names = [r.name for r in cfg.regimes]
    for w in cfg.regime_windows:
        path[w.start : w.start + w.steps] = names.index(w.regime)
    return path


def _scripted_shocks(cfg: SimConfig) -> np.ndarray:
    """Log-price moves of the configured shocks [T, N] (zero without shocks)."""
    out = np.zeros((cfg.n_steps, cfg.n_assets))
    symbols = list(cfg.asset_symbols)
    for s in cfg.shocks:
        cols = [symbols.index(x) for x in s.symbols] if s.symbols else list(range(cfg.n_assets))
        move = np.log1p(s.size)
        out[s.step : s.step + s.duration, cols] += move / s.duration
        if s.recovery:
            start = s.step + s.duration
            out[start : start + s.recovery_steps, cols] -= s.recovery * move / s.recovery_steps
    return out


def _correlated_shocks(rng: np.random.Generator, regimes: np.ndarray, mom: RegimeMoments, n: int) -> np.ndarray:
    eps = rng.standard_normal((regimes.size, n))
    out = np.empty_like(eps)
    for k in range(mom.chol.shape[0]):
        rows = regimes == k
        out[rows] = eps[rows] @ mom.chol[k].T
    return out


def _jumps(rng: np.random.Generator, regimes: np.ndarray, mom: RegimeMoments, cfg: SimConfig) -> np.ndarray:
    j = cfg.jumps
    market, _ = compound_poisson(rng, mom.lam_market[regimes], j.mean, j.std)
    lam_idio = np.broadcast_to(mom.lam_idio[regimes][:, None], (regimes.size, cfg.n_assets))
    idio, _ = compound_poisson(rng, lam_idio, j.mean, j.std)
    return market[:, None] + idio


def _basis(cfg: SimConfig, alpha_full: np.ndarray, regime_at_price: np.ndarray, mom: RegimeMoments) -> np.ndarray:
    f = cfg.funding
    phi = halflife_phi(parse_duration(f.basis_halflife), cfg.step_ns)
    noise_scale = (f.basis_vol * mom.vol_scale[regime_at_price])[:, None]
    noise = ar1_unit(component_rng(cfg.seed, "basis"), alpha_full.shape, phi, noise_scale)
    shift = mom.basis_shift[regime_at_price][:, None]
    basis = f.basis_mean + shift + f.basis_alpha_loading * alpha_full + noise
    return np.clip(basis, -0.5, 0.5)


def _funding(cfg: SimConfig, price_times: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settlements at epoch-aligned multiples of the interval in [first open, last close].

    The premium is the mean basis sampled in (T - interval, T]; when the step is longer than the
    interval (daily bars, 8h funding) the latest sampled basis is used. A settlement at the very
    first instant is published (so a rate is known from the start) but charges no bar.
    """
    f = cfg.funding
    interval = parse_duration(f.interval)
    first = -(-int(price_times[0]) // interval) * interval
    count = max(0, (int(price_times[-1]) - first) // interval + 1)
    times = first + interval * np.arange(count, dtype=np.int64)  # (np.arange on int64 ns rounds)
    n_steps, n = price_times.size - 1, basis.shape[1]
    per_step = np.zeros((n_steps, n))
    if times.size == 0:
        return times, np.zeros((0, n)), per_step
    lo = np.searchsorted(price_times, times - interval, side="right")
    hi = np.searchsorted(price_times, times, side="right")
    csum = np.vstack([np.zeros((1, n)), np.cumsum(basis, axis=0)])
    count = (hi - lo)[:, None]
    latest = basis[hi - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        premium = np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), latest)
    rate = np.clip(premium + f.interest, -f.cap, f.cap)
    bar = np.searchsorted(price_times, times, side="left") - 1  # open < T <= close
    charged = bar >= 0
    np.add.at(per_step, bar[charged], rate[charged])
    return times, rate, per_step


def _exogenous(cfg: SimConfig, alpha: np.ndarray, clock: np.ndarray) -> dict[str, ExogenousSeries]:
    step = cfg.step_ns
    n_steps, n = alpha.shape
    out: dict[str, ExogenousSeries] = {}
    market_alpha = alpha.mean(axis=1, keepdims=True) * np.sqrt(n)  # unit variance for independent alphas
    for e in cfg.exogenous:
        m = 1 if e.step is None else parse_duration(e.step) // step
        periods = n_steps // m
        source = alpha if e.scope == "asset" else market_alpha
        mean_alpha = source[: periods * m].reshape(periods, m, source.shape[1]).mean(axis=1)
        noise = component_rng(cfg.seed, f"exogenous/{e.name}").standard_normal(mean_alpha.shape)
        values = e.offset + e.scale * (e.loading * mean_alpha + e.noise * noise)
        lag = parse_duration(e.publication_lag if e.publication_lag is not None else cfg.publication_lag)
        ts = clock[: periods * m : m]
        out[e.name] = ExogenousSeries(
            name=e.name,
            entities=cfg.asset_symbols if e.scope == "asset" else ("",),
            ts_event=ts,
            available_at=ts + m * step + lag,
            values=values,
        )
    return out


def _freeze(market: SimMarket) -> None:
    """Make every array read-only: a cached market is shared, so nobody may mutate it."""
    for value in vars(market).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    for series in market.exogenous.values():
        for value in vars(series).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
