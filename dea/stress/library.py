"""Turn the ``stress.scenarios`` config entries into shocked market paths.

One function per config kind would repeat the same window arithmetic; instead
:func:`build_scenario` converts the entry's share/duration into step indices once and calls the
matching generator of :mod:`dea.stress.generators`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dea.config.stress import (
    CorrelationOneScenario,
    FlashCrashScenario,
    FundingSqueezeScenario,
    HistoricalScenario,
    LatencySpikeScenario,
    LiquidityDrainScenario,
    OrderRejectsScenario,
    Scenario,
    StaleFeedScenario,
    VolSpikeScenario,
    WorstDrawdownScenario,
)
from dea.errors import ConfigError
from dea.stress import generators as g
from dea.stress.history import read_prices, slice_window, worst_drawdowns
from dea.stress.path import MarketPath
from dea.timeutil import parse_duration


def build_scenario(spec: Scenario, base: MarketPath, resolve: Callable[[str], Path] = Path) -> MarketPath:
    """The shocked path for one scenario entry (``resolve`` maps config-relative source paths)."""
    name = spec.label

    def span(duration: str) -> tuple[int, int]:
        return g.window(base, spec.start, max(spec.min_steps, g.steps_for(base, parse_duration(duration))))

    inst = spec.instruments
    if isinstance(spec, FlashCrashScenario):
        i0, _ = span(spec.duration)
        return g.flash_crash(
            base,
            i0=i0,
            crash_steps=max(spec.min_steps, g.steps_for(base, parse_duration(spec.duration))),
            drop=spec.drop,
            recovery=spec.recovery,
            recovery_steps=g.steps_for(base, parse_duration(spec.recovery_duration)),
            instruments=inst,
            volume_factor=spec.volume_factor,
            spread_factor=spec.spread_factor,
            name=name,
        )
    if isinstance(spec, VolSpikeScenario):
        i0, i1 = span(spec.duration)
        return g.vol_spike(base, i0=i0, i1=i1, factor=spec.factor, instruments=inst, name=name)
    if isinstance(spec, LiquidityDrainScenario):
        i0, i1 = span(spec.duration)
        return g.liquidity_drain(
            base, i0=i0, i1=i1, depth_factor=spec.depth_factor, spread_factor=spec.spread_factor, instruments=inst, name=name
        )
    if isinstance(spec, FundingSqueezeScenario):
        i0, i1 = span(spec.duration)
        return g.funding_squeeze(
            base, i0=i0, i1=i1, rate=spec.rate, interval_ns=parse_duration(spec.interval), instruments=inst, name=name
        )
    if isinstance(spec, CorrelationOneScenario):
        i0, i1 = span(spec.duration)
        return g.correlation_one(base, i0=i0, i1=i1, leader=spec.leader, instruments=inst, name=name)
    if isinstance(spec, StaleFeedScenario):
        i0, i1 = span(spec.duration)
        return g.stale_feed(base, i0=i0, i1=i1, name=name)
    if isinstance(spec, LatencySpikeScenario):
        i0, i1 = span(spec.duration)
        return g.latency_spike(base, i0=i0, i1=i1, latency_ns=parse_duration(spec.latency), name=name)
    if isinstance(spec, OrderRejectsScenario):
        i0, i1 = span(spec.duration)
        return g.order_rejects(base, i0=i0, i1=i1, share=spec.share, name=name)
    if isinstance(spec, HistoricalScenario):
        src = resolve(spec.source)
        clock, values = read_prices(src, spec.format, spec.column)
        hist = slice_window(clock, values, spec.start_time, spec.end_time, str(src))
        i0, _ = g.window(base, spec.start, 1)
        return g.transplant(base, i0=i0, history=hist, instruments=inst, name=name)
    if isinstance(spec, WorstDrawdownScenario):
        if spec.source is None:
            series, what = base.price[:, base.columns(inst)[0]], f"base path {base.instruments[base.columns(inst)[0]]}"
        else:
            src = resolve(spec.source)
            series, what = read_prices(src, spec.format, spec.column)[1], str(src)
        found = worst_drawdowns(series, spec.max_length, spec.rank)
        if len(found) < spec.rank:
            raise ConfigError(f"scenario {name!r}: {what} has only {len(found)} drawdowns, rank {spec.rank} asked")
        dd = found[spec.rank - 1]
        lo, hi = max(0, dd.peak - spec.pad), min(series.size, dd.trough + spec.pad + 1)
        i0, _ = g.window(base, spec.start, 1)
        return g.transplant(base, i0=i0, history=series[lo:hi], instruments=inst, name=name)
    raise ConfigError(f"unknown scenario kind {getattr(spec, 'kind', spec)!r}")  # pragma: no cover - union is closed


def build_library(specs: list[Scenario], base: MarketPath, resolve: Callable[[str], Path] = Path) -> list[MarketPath]:
    """Every configured scenario, in order (the base path itself is not included)."""
    return [build_scenario(s, base, resolve) for s in specs]


def select(specs: list[Scenario], names: str | None) -> list[Scenario]:
    """Filter by a comma-separated list of labels (``None``/``all``: everything)."""
    if not names or names.strip() == "all":
        return list(specs)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.label: s for s in specs}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ConfigError(f"unknown stress scenario(s) {unknown}; configured: {sorted(known)}")
    return [known[n] for n in wanted]
