"""Exogenous transforms for sentiment, on-chain and macro series.

Each transform reads the input named in its config item: ``series: <name>`` (a global panel
series such as ``fear_greed``, ``DGS10``, ``DTWEXBGS`` -> one plain column) or ``field: <name>``
(a per-asset panel field such as Coin Metrics ``AdrActCnt`` or ``HashRate`` -> one column per
instrument). Publication lags and forward-fill onto the decision clock are the panel's job
(as-of join on ``available_at``), so these transforms only ever see values already published.

Recipes (windows/horizons are in decision rows; on a 5-minute clock one day is 288 rows):

- Fear & Greed level / change:      ``level`` / ``change`` with ``series: fear_greed``
- social sentiment / message volume: ``zscore`` with ``series: <sentiment or volume series>``
  (``log: true`` for volumes)
- search-trend change:               ``growth`` with ``field: <trend series>`` or ``series:``
- on-chain activity:                 ``growth`` or ``zscore`` (``log: true``) with
  ``field: AdrActCnt | TxCnt | HashRate | FeeTotUSD | CapMVRVCur | NVTAdj``
- macro:                             ``change`` with ``series: DGS10``; ``growth`` with
  ``series: DTWEXBGS``
"""

from __future__ import annotations

from pydantic import Field

from dea.config.base import StrictModel
from dea.features.base import ExprFeature, NoParams
from dea.features.ops import as_float64, safe_div, safe_log
from dea.features.registry import register


class _ExoFeature(ExprFeature):
    family = "exogenous"
    input_kind = "either"
    example_input = "fear_greed_index"

    def inputs(self):
        return (self.source,) if self.source is not None else ()


@register
class Level(_ExoFeature):
    """The as-of value itself (e.g. the Fear & Greed index)."""

    name = "level"
    version = 1
    Params = NoParams

    def warmup(self) -> int:
        return 0

    def compute(self, ops, x):
        return x.source() + 0.0


class _Horizon(StrictModel):
    horizon: int = Field(default=1, ge=1)


@register
class Change(_ExoFeature):
    """x_t − x_{t−h} (for levels, rates and bounded indices)."""

    name = "change"
    version = 1
    Params = _Horizon

    def warmup(self) -> int:
        return self.params.horizon

    def compute(self, ops, x):
        v = x.source() + 0.0
        return v - ops.lag(v, self.params.horizon)


@register
class Growth(_ExoFeature):
    """log(x_t / x_{t−h}) (for positive counts/levels: addresses, hash rate, trends, dollar index)."""

    name = "growth"
    version = 1
    Params = _Horizon

    def warmup(self) -> int:
        return self.params.horizon

    def compute(self, ops, x):
        lv = safe_log(x.source())
        return lv - ops.lag(lv, self.params.horizon)


class _Z(StrictModel):
    window: int = Field(default=30, ge=2)
    log: bool = False


@register
class ZScore(_ExoFeature):
    """(x − rolling mean) / rolling std over ``window`` rows; ``log: true`` transforms x → log(x) first."""

    name = "zscore"
    version = 1
    Params = _Z

    def warmup(self) -> int:
        return self.params.window - 1

    def stems(self):
        tag = "zlog" if self.params.log else "zscore"
        return (f"{tag}_{self.source.name}_{self.params.window}",)

    def compute(self, ops, x):
        v = as_float64(x.source())
        if self.params.log:
            v = safe_log(v)
        mean, std = ops.rolling_mean_std(v, self.params.window)
        return safe_div(v - mean, std)
