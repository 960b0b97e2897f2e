"""Configuration of the market simulator (one frozen, strict model; durations as strings).

Why one model: the simulator is used as a data source (``format: sim`` in an experiment's
``data.sources``), by stress scenarios and by tests; all of them pass the same options dict, and
the validated model's canonical JSON is the cache key so the market is simulated once per config.

Units: volatilities and drifts are annualised fractions; funding rates, basis and interest are
fractions per funding interval / of the index; jump sizes are log returns; intensities are events
per day; durations (``step``, half-lives, lags) are strings such as ``"8h"``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from dea.config.base import StrictModel
from dea.errors import ConfigError
from dea.timeutil import NS_PER_DAY, NS_PER_YEAR, parse_duration, parse_timestamp

MAX_CELLS = 50_000_000  # n_steps * n_assets guard: beyond this the arrays stop fitting comfortably


def duration_field(*names: str):  # noqa: ANN201 - pydantic validator factory
    """Validator: the named fields parse as durations (``"5m"``).

    Unlike :func:`dea.config.base.duration_field` it re-raises as ValueError, so pydantic reports
    the failure with the option's dotted path (``regimes.0.mean_duration: ...``).
    """

    @field_validator(*names)
    @classmethod
    def _check(cls, value):  # noqa: ANN001, ANN202 - pydantic validator signature
        if value is None:
            return value
        try:
            parse_duration(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    return _check


class RegimeConfig(StrictModel):
    """One regime of the market-wide Markov chain.

    ``vol_scale`` multiplies every asset's base volatility (and the basis noise, the spread and
    the depth thinning); ``jump_scale`` multiplies the jump intensities; ``mean_duration`` is the
    expected time spent in the regime before the chain leaves it (to one of the other chain
    regimes, uniformly). ``correlation`` optionally overrides the equicorrelation of diffusive
    returns in this regime (crypto correlations rise in sell-offs).

    Stress hooks (defaults leave the regime ordinary): ``spread_scale`` / ``depth_scale``
    multiply the book's spread and depth on top of the volatility effect (a liquidity drain is
    ``depth_scale: 0.1, spread_scale: 10``); ``basis_shift`` is added to the perpetual's premium
    (a funding squeeze); ``forced_only: true`` keeps the chain out of the regime, so it occurs
    only inside :class:`RegimeWindow` s.
    """

    name: str = Field(min_length=1)
    vol_scale: float = Field(gt=0, le=50)
    mean_duration: str = "5d"
    jump_scale: float = Field(default=1.0, ge=0)
    correlation: float | None = Field(default=None, gt=-1, lt=1)
    spread_scale: float = Field(default=1.0, gt=0)
    depth_scale: float = Field(default=1.0, gt=0)
    basis_shift: float = Field(default=0.0, ge=-0.1, le=0.1)
    forced_only: bool = False

    _dur = duration_field("mean_duration")

    @field_validator("mean_duration")
    @classmethod
    def _positive(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"mean_duration must be positive, got {v!r}")
        return v


class RegimeWindow(StrictModel):
    """Force ``regime`` (a name from ``regimes``) on bars [start, start + steps), overriding the chain."""

    regime: str = Field(min_length=1)
    start: int = Field(ge=0)
    steps: int = Field(ge=1)


class PriceShock(StrictModel):
    """A scripted move (flash crash or squeeze), unforecastable: the oracle does not see it.

    From bar ``step`` the price moves by the simple return ``size`` spread evenly (in log terms)
    over ``duration`` bars, then recovers the fraction ``recovery`` of that log move over the
    next ``recovery_steps`` bars. ``symbols`` limits it to some assets (default: all).
    """

    step: int = Field(ge=0)
    size: float = Field(gt=-1, le=10)
    duration: int = Field(default=1, ge=1)
    recovery: float = Field(default=0.0, ge=0, le=1)
    recovery_steps: int = Field(default=1, ge=1)
    symbols: list[str] | None = None


def _default_regimes() -> list[RegimeConfig]:
    return [
        RegimeConfig(name="calm", vol_scale=0.75, mean_duration="10d", jump_scale=1.0),
        RegimeConfig(name="volatile", vol_scale=2.0, mean_duration="3d", jump_scale=4.0),
    ]


class JumpConfig(StrictModel):
    """Compound-Poisson jumps in log price, compensated so they add no drift.

    ``market_intensity`` events/day hit every asset with the same size (crashes are common);
    ``idio_intensity`` events/day hit one asset. Sizes ~ Normal(``mean``, ``std``).
    """

    market_intensity: float = Field(default=0.03, ge=0)
    idio_intensity: float = Field(default=0.05, ge=0)
    mean: float = Field(default=-0.01, ge=-1, le=1)
    std: float = Field(default=0.03, ge=0, le=1)


class FundingConfig(StrictModel):
    """Perpetual basis and funding.

    The basis (premium of mark over index, a fraction) is ``basis_mean + basis_alpha_loading *
    alpha + u`` with u a mean-reverting (AR(1)) noise of stationary std ``basis_vol`` times the
    regime's ``vol_scale``. At each settlement (every ``interval``, aligned to the epoch: 00/08/16
    UTC for 8h) the rate is ``clip(mean basis over the interval + interest, -cap, cap)``: positive
    when mark > index, paid by longs (DESIGN.md).
    """

    interval: str = "8h"
    interest: float = Field(default=0.0001, ge=-0.01, le=0.01)
    cap: float = Field(default=0.0075, gt=0, le=0.1)
    basis_mean: float = Field(default=0.0, ge=-0.05, le=0.05)
    basis_vol: float = Field(default=0.0003, ge=0, le=0.05)
    basis_halflife: str = "8h"
    basis_alpha_loading: float = Field(default=0.0002, ge=-0.05, le=0.05)

    _dur = duration_field("interval", "basis_halflife")

    @field_validator("interval", "basis_halflife")
    @classmethod
    def _positive(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"must be a positive duration, got {v!r}")
        return v


class BookConfig(StrictModel):
    """L2 depth that thins as volatility rises (optional: it is bulky).

    Every ``every`` steps a snapshot of ``levels`` levels per side is emitted per instrument.
    With ``ratio`` = the regime's ``vol_scale`` (1 = base volatility): half-spread =
    ``spread_bps``/2 * ratio**``spread_elasticity`` * ``spread_scale``; level j sits
    ``level_spacing_bps`` * j further out (widening the same way); the quote notional at level j
    is ``depth_notional`` * (1 + ``level_growth`` * j) * ratio**(-``depth_elasticity``) *
    ``depth_scale``, times mean-one log-normal noise of log-std ``noise``.
    """

    enabled: bool = False
    every: int = Field(default=1, ge=1)
    levels: int = Field(default=10, ge=1, le=500)
    spread_bps: float = Field(default=1.0, gt=0)
    level_spacing_bps: float = Field(default=1.0, gt=0)
    depth_notional: float = Field(default=250_000.0, gt=0, description="quote currency at level 0")
    level_growth: float = Field(default=0.2, ge=0)
    spread_elasticity: float = Field(default=1.0, ge=0)
    depth_elasticity: float = Field(default=1.5, ge=0)
    noise: float = Field(default=0.2, ge=0, le=3)


class ExogenousSeriesConfig(StrictModel):
    """A published series that observes the latent alpha with noise.

    Each period of length ``step`` (default: the simulator's step; must be a multiple of it)
    publishes ``offset + scale * (loading * mean(alpha over the period) + noise * e)``, stamped by
    the period's open and available at its close plus ``publication_lag`` (default: the
    simulator's ``publication_lag``). ``scope: asset`` publishes one value per asset (entity =
    symbol); ``scope: market`` one global value (entity ``""``) from the cross-sectional mean
    alpha, normalised to unit variance. ``loading: 0`` gives a pure-noise decoy series.
    """

    name: str = Field(min_length=1)
    scope: Literal["asset", "market"] = "asset"
    step: str | None = None
    noise: float = Field(default=1.0, ge=0)
    loading: float = 1.0
    publication_lag: str | None = None
    offset: float = 0.0
    scale: float = Field(default=1.0, gt=0)

    _dur = duration_field("step", "publication_lag")


def _default_exogenous() -> list[ExogenousSeriesConfig]:
    return [
        ExogenousSeriesConfig(name="sentiment", noise=0.5, offset=50.0, scale=15.0),
        ExogenousSeriesConfig(name="onchain_flow", step="1d", noise=0.5, scale=1_000_000.0),
    ]


class OracleConfig(StrictModel):
    """The oracle exposure: mean-variance optimal given the true conditional mean and covariance.

    w_t = c * Sigma_t^-1 mu_t, with c fixed from the config (not the sample) so that the expected
    ex-ante volatility is ``target_vol`` (annualised); then clipped to ``max_exposure`` per
    instrument and scaled down to ``max_gross``. It ignores trading costs and funding, so it is the
    planted signal's gross upper bound.
    """

    target_vol: float = Field(default=0.3, gt=0, le=10)
    max_exposure: float = Field(default=1.0, gt=0)
    max_gross: float = Field(default=2.0, gt=0)


def _per_asset(value: float | list[float], n: int, name: str) -> list[float]:
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{name} lists {len(value)} values but there are {n} assets")
        return [float(v) for v in value]
    return [float(value)] * n


class SimConfig(StrictModel):
    """A simulated multi-asset perpetual-swap market.

    Give either ``symbols`` or ``n_assets`` (symbols default to ``SIM0``, ``SIM1``, ...).
    ``signal_strength`` is the information coefficient of the planted signal: the correlation
    between the latent alpha and the next bar's return standardised by its true conditional
    volatility (0 = no-signal control); it is per step, so the same value is a far stronger
    signal on a 5m step than on a 1d one. ``signal_halflife`` is the alpha's AR(1) half-life.

    Stress scenarios script the market with ``regime_windows`` (force a regime, e.g. a
    ``forced_only`` liquidity-drain or funding-squeeze regime, on a range of bars) and ``shocks``
    (flash crashes with partial recovery); both leave every random stream untouched, so a
    shocked market differs from its unshocked twin only by the scripted effect.
    """

    seed: int = 0
    n_assets: int = Field(default=4, ge=1, le=256)
    symbols: list[str] | None = None
    n_steps: int = Field(default=20_000, ge=2)
    step: str = "1h"
    start: str = "2022-01-01T00:00:00Z"
    start_price: float | list[float] = 100.0
    vol: float | list[float] = Field(default=0.5, description="annualised base volatility")
    drift: float | list[float] = Field(default=0.0, description="annualised expected return")
    correlation: float | list[list[float]] = 0.5
    regimes: list[RegimeConfig] = Field(default_factory=_default_regimes, min_length=1)
    jumps: JumpConfig = Field(default_factory=JumpConfig)
    funding: FundingConfig = Field(default_factory=FundingConfig)
    book: BookConfig = Field(default_factory=BookConfig)
    daily_volume: float = Field(default=5e8, gt=0, description="quote notional per day at base vol")
    latency: str = Field(default="0s", description="exchange data: available_at = ts_event + latency")
    signal_strength: float = Field(default=0.05, ge=0, lt=1)
    signal_halflife: str = "2d"
    publication_lag: str = "1h"
    exogenous: list[ExogenousSeriesConfig] = Field(default_factory=_default_exogenous)
    oracle: OracleConfig = Field(default_factory=OracleConfig)
    regime_windows: list[RegimeWindow] = Field(default_factory=list)
    shocks: list[PriceShock] = Field(default_factory=list)

    _dur = duration_field("step", "signal_halflife", "publication_lag", "latency")

    @model_validator(mode="before")
    @classmethod
    def _fill_symbols(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        symbols = data.get("symbols")
        if isinstance(symbols, list):
            n = data.get("n_assets")
            if n is not None and n != len(symbols):
                raise ValueError(f"n_assets={n} but {len(symbols)} symbols are listed")
            data["n_assets"] = len(symbols)
        elif symbols is None:
            n = data.get("n_assets", 4)
            if isinstance(n, int) and 1 <= n <= 256:  # out-of-range counts are refused by the field
                data["symbols"] = [f"SIM{i}" for i in range(n)]
        return data

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        try:
            parse_timestamp(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "SimConfig":
        n = self.n_assets
        syms = self.symbols or []
        if len(set(syms)) != len(syms) or any(not s for s in syms):
            raise ValueError(f"symbols must be distinct and non-empty, got {syms}")
        step = parse_duration(self.step)
        if step <= 0:
            raise ValueError(f"step must be positive, got {self.step!r}")
        for name in ("signal_halflife",):
            if parse_duration(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("publication_lag", "latency"):
            if parse_duration(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.n_steps * n > MAX_CELLS:
            raise ValueError(f"n_steps * n_assets = {self.n_steps * n} exceeds {MAX_CELLS}")
        prices = _per_asset(self.start_price, n, "start_price")
        if any(not np.isfinite(p) or p <= 0 for p in prices):
            raise ValueError(f"start_price must be positive and finite, got {self.start_price}")
        vols = _per_asset(self.vol, n, "vol")
        if any(not np.isfinite(v) or v <= 0 or v > 20 for v in vols):
            raise ValueError(f"vol must be in (0, 20] (annualised), got {self.vol}")
        drifts = _per_asset(self.drift, n, "drift")
        if any(not np.isfinite(d) or abs(d) > 10 for d in drifts):
            raise ValueError(f"drift must be in [-10, 10] (annualised), got {self.drift}")
        self.correlation_matrix()  # validates shape / symmetry / positive definiteness
        for r in self.regimes:
            if r.correlation is not None:
                _equicorrelation(n, r.correlation, f"regimes[{r.name}].correlation")
        names = [r.name for r in self.regimes]
        if len(set(names)) != len(names):
            raise ValueError(f"regime names must be distinct, got {names}")
        if all(r.forced_only for r in self.regimes):
            raise ValueError("at least one regime must not be forced_only (the chain needs somewhere to be)")
        for w in self.regime_windows:
            if w.regime not in names:
                raise ValueError(f"regime window names unknown regime {w.regime!r}; regimes are {names}")
            if w.start + w.steps > self.n_steps:
                raise ValueError(f"regime window [{w.start}, {w.start + w.steps}) runs past n_steps={self.n_steps}")
        for k, shock in enumerate(self.shocks):
            end = shock.step + shock.duration + (shock.recovery_steps if shock.recovery else 0)
            if end > self.n_steps:
                raise ValueError(f"shocks[{k}] runs to bar {end}, past n_steps={self.n_steps}")
            unknown = sorted(set(shock.symbols or ()) - set(syms))
            if unknown:
                raise ValueError(f"shocks[{k}] names unknown symbols {unknown}; symbols are {syms}")
        names = [e.name for e in self.exogenous]
        if len(set(names)) != len(names):
            raise ValueError(f"exogenous series names must be distinct, got {names}")
        for e in self.exogenous:
            if e.step is not None:
                es = parse_duration(e.step)
                if es <= 0 or es % step:
                    raise ValueError(
                        f"exogenous series {e.name!r}: step {e.step!r} must be a positive multiple "
                        f"of the simulator step {self.step!r}"
                    )
            if e.publication_lag is not None and parse_duration(e.publication_lag) < 0:
                raise ValueError(f"exogenous series {e.name!r}: publication_lag must not be negative")
        return self

    # ---- derived values (pure functions of the config) ---------------------------------------

    @property
    def step_ns(self) -> int:
        return parse_duration(self.step)

    @property
    def start_ns(self) -> int:
        return parse_timestamp(self.start)

    @property
    def step_years(self) -> float:
        return self.step_ns / NS_PER_YEAR

    @property
    def step_days(self) -> float:
        return self.step_ns / NS_PER_DAY

    @property
    def periods_per_year(self) -> float:
        return NS_PER_YEAR / self.step_ns

    @property
    def asset_symbols(self) -> tuple[str, ...]:
        return tuple(self.symbols or ())

    def per_asset(self, name: Literal["start_price", "vol", "drift"]) -> np.ndarray:
        """The named per-asset parameter as a float64 array of length n_assets."""
        return np.asarray(_per_asset(getattr(self, name), self.n_assets, name), dtype=np.float64)

    def correlation_matrix(self, regime: int | None = None) -> np.ndarray:
        """Correlation of diffusive shocks (the regime's override when it has one)."""
        n = self.n_assets
        if regime is not None and self.regimes[regime].correlation is not None:
            return _equicorrelation(n, self.regimes[regime].correlation, f"regimes[{regime}].correlation")
        if isinstance(self.correlation, list):
            c = np.asarray(self.correlation, dtype=np.float64)
            if c.shape != (n, n):
                raise ValueError(f"correlation matrix has shape {c.shape}, expected ({n}, {n})")
            if not np.allclose(c, c.T, atol=1e-10) or not np.allclose(np.diag(c), 1.0):
                raise ValueError("correlation matrix must be symmetric with a unit diagonal")
            if np.any(np.abs(c) > 1) or np.linalg.eigvalsh(c).min() <= 1e-10:
                raise ValueError("correlation matrix must be positive definite with entries in [-1, 1]")
            return c
        return _equicorrelation(n, float(self.correlation), "correlation")

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, source: str = "sim") -> "SimConfig":
        """Validate a loader ``options`` dict, raising :class:`ConfigError` that names each bad key."""
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"{source}: simulator options must be a mapping, got {type(options).__name__}")
        try:
            return cls.model_validate(options or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, f"{source}: invalid simulator options")) from None


def _equicorrelation(n: int, rho: float, name: str) -> np.ndarray:
    if n > 1 and not (-1.0 / (n - 1) < rho < 1.0):
        raise ValueError(f"{name}={rho} is not a valid equicorrelation for {n} assets (needs > {-1 / (n - 1):.3f})")
    c = np.full((n, n), float(rho))
    np.fill_diagonal(c, 1.0)
    return c


def format_validation_error(exc: ValidationError, header: str) -> str:
    """One line per problem: dotted path of the key, then what is wrong with it."""
    lines = [header + ":"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (not a simulator option)")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)
