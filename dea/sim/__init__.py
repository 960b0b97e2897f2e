"""Market simulator: a seeded multi-asset perpetual-swap market with a planted signal.

Public API (numpy + pydantic at import time; pyarrow only inside the table builders):

- :class:`dea.sim.config.SimConfig` - every option, validated (unknown keys refused).
- :func:`dea.sim.market.simulate` (and ``simulate_cached``) -> :class:`dea.sim.market.SimMarket`
  with prices, returns, regimes, the latent alpha and the oracle exposure as [T, N] arrays.
- :func:`dea.sim.tables.sim_tables` - the ``format: sim`` data source: options dict -> canonical
  tables (``bars``, ``funding``, ``mark``, ``exogenous``, optionally ``book`` / ``quotes``).
- :mod:`dea.sim.oracle` - scoring against the oracle (``oracle_sharpe``, ``strategy_returns``,
  ``exposure_on_clock``); :func:`dea.sim.book.book_snapshots` - the L2 book as numpy arrays.
"""
