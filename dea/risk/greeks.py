"""Greek budgets: a pre-trade check that scales or refuses an option order that would breach them.

Budgets are per underlying and in the units of :mod:`dea.options.portfolio` (fractions of
equity): ``max_delta`` caps the whole exposure to the underlying (linear positions plus option
deltas), ``max_gamma`` the change of that exposure for a 1% move, ``max_vega`` the value change
for one volatility point. A budget left ``None`` is not enforced.

The rule, identical in backtest and live: an order of ``q`` contracts is cut to the largest
fraction ``a`` in [0, 1] such that no budgeted greek ends up beyond its budget on the side the
order pushes it toward: an order may always reduce a breach (down to the budget on the other
side), never create or widen one. With
``action: refuse`` any cut refuses the whole order. What is left is rounded down to the venue's
``contract_step``; less than one step is a refusal. The decision names the greeks that bound it.

In the risk engine (``risk.greeks: {BTC: {max_delta: .., max_vega: ..}}``, :class:`GreekBook`):
:meth:`dea.risk.engine.RiskEngine.check_option_order` runs this check with the linear
exposure of the underlying's instruments counted in the delta, and every
:meth:`~dea.risk.engine.RiskEngine.apply` cuts linear targets that would push linear + option
delta beyond ``max_delta`` (rule ``greek_budget``). The overlay's stepper
(:class:`dea.options.overlay.OverlayStepper`), run by the overlay backtest
(:mod:`dea.backtest.options_overlay`) and the live loop (:mod:`serving.options_overlay`), calls
the same :func:`check_option_order`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from dea.config.base import StrictModel
from dea.errors import RiskError
from dea.options.portfolio import GreekExposure

_NAMES = ("delta", "gamma", "vega")


class GreekBudgetConfig(StrictModel):
    """Per-underlying greek budgets as fractions of equity (``None`` = not enforced)."""

    max_delta: float | None = Field(default=None, gt=0, description="|linear + option delta| / equity")
    max_gamma: float | None = Field(default=None, gt=0, description="|exposure change for a 1% move|")
    max_vega: float | None = Field(default=None, gt=0, description="|USD per vol point| / equity")
    action: Literal["scale", "refuse"] = "scale"
    contract_step: float = Field(default=0.1, gt=0, description="order size increment in contracts (Deribit BTC: 0.1)")


@dataclass(frozen=True)
class GreekDecision:
    """What the check allowed: ``quantity`` (signed contracts, 0 when refused) out of ``requested``."""

    requested: float
    quantity: float
    binding: tuple[str, ...]
    refused: bool
    reason: str

    @property
    def scale(self) -> float:
        return self.quantity / self.requested if self.requested else 1.0


def _max_fraction(current: float, order: float, budget: float) -> float:
    """Largest a in [0, 1] with current + a*order inside [-budget, budget] on the side the order
    moves toward (a breach on the other side can only shrink)."""
    if order == 0.0:
        return 1.0
    room = (budget - current) / order if order > 0 else (budget + current) / -order
    return min(1.0, max(0.0, room))


def check_option_order(
    current: GreekExposure, per_contract: GreekExposure, quantity: float, budgets: GreekBudgetConfig
) -> GreekDecision:
    """Scale or refuse an order of ``quantity`` contracts (signed: + buys) whose greeks per
    contract are ``per_contract``, given the book's ``current`` greeks on the same underlying."""
    values = (current.delta, current.gamma, current.vega, per_contract.delta, per_contract.gamma, per_contract.vega, quantity)
    if not all(math.isfinite(v) for v in values):
        raise RiskError(f"greek check needs finite greeks and quantity; got current={current}, per_contract={per_contract}, quantity={quantity}")
    order = per_contract.scaled(quantity)
    fractions: dict[str, float] = {}
    for name in _NAMES:
        budget = getattr(budgets, f"max_{name}")
        if budget is not None:
            fractions[name] = _max_fraction(getattr(current, name), getattr(order, name), budget)
    a = min(fractions.values(), default=1.0)
    binding = tuple(n for n, f in fractions.items() if f < 1.0 and f <= a + 1e-12)
    if a >= 1.0:
        return GreekDecision(quantity, quantity, (), False, "within budgets")
    if budgets.action == "refuse":
        return GreekDecision(quantity, 0.0, binding, True, f"would breach the {'/'.join(binding)} budget (action: refuse)")
    step = budgets.contract_step
    # Round the allowed size down to whole steps (a tiny epsilon keeps 0.3/0.1 from becoming 2 steps).
    steps = math.floor(abs(quantity) * a / step + 1e-9)
    allowed = math.copysign(round(steps * step, 9), quantity) if steps else 0.0
    if steps == 0:
        return GreekDecision(quantity, 0.0, binding, True, f"the {'/'.join(binding)} budget leaves less than one contract step ({step})")
    return GreekDecision(quantity, allowed, binding, False, f"scaled to {a:.4f} of the order by the {'/'.join(binding)} budget")


class GreekBook:
    """The risk engine's view of ``risk.greeks``: per budgeted underlying, the instruments whose
    linear exposure is delta on it (``base`` equal to the underlying, or the symbol itself).

    Why here and not in :mod:`dea.risk.rules`: greek budgets concern option positions, which the
    jitted rules never see; the engine calls this after the rules, only when budgets are
    configured, so a book without them pays nothing."""

    def __init__(self, budgets: Mapping[str, GreekBudgetConfig], instruments: Sequence) -> None:
        self.budgets = dict(budgets)
        self.members: dict[str, tuple[int, ...]] = {}
        for u in self.budgets:
            idx = tuple(i for i, inst in enumerate(instruments) if (inst.base or inst.symbol) == u or inst.symbol == u)
            if not idx:
                known = sorted({inst.base or inst.symbol for inst in instruments})
                raise RiskError(f"risk.greeks budgets underlying {u!r}, but no instrument has it as base; underlyings: {known}")
            self.members[u] = idx

    def _options(self, option_greeks: Mapping[str, GreekExposure] | None) -> Mapping[str, GreekExposure]:
        option_greeks = option_greeks or {}
        unknown = sorted(set(option_greeks) - set(self.budgets))
        if unknown:
            raise RiskError(f"option greeks given for {unknown}, which have no risk.greeks budget; budgeted: {sorted(self.budgets)}")
        return option_greeks

    def current(self, underlying: str, exposure: Sequence[float], option: GreekExposure | None) -> GreekExposure:
        """The book's greeks on ``underlying``: option greeks plus the linear exposure in the delta."""
        if underlying not in self.budgets:
            raise RiskError(f"no risk.greeks budget for underlying {underlying!r}; budgeted: {sorted(self.budgets)}")
        linear = sum(exposure[i] for i in self.members[underlying])
        return (option or GreekExposure()) + GreekExposure(delta=linear)

    def cut_linear(self, out: list[float], option_greeks: Mapping[str, GreekExposure] | None) -> tuple[str, ...]:
        """Scale the linear targets ``out`` (in place) of each underlying with a ``max_delta`` so
        that linear + option delta stays within it, cutting only the side that widens a breach
        (factor in [0, 1]: the engine never adds a hedge the policy did not ask for). Returns the
        underlyings it cut."""
        opts = self._options(option_greeks)
        cut = []
        for u, b in self.budgets.items():
            if b.max_delta is None:
                continue
            idx = self.members[u]
            linear = sum(out[i] for i in idx)
            d = opts[u].delta if u in opts else 0.0
            if not math.isfinite(d):
                raise RiskError(f"option delta of {u!r} is {d}; must be finite")
            allowed = min(max(linear, -b.max_delta - d), b.max_delta - d)
            if allowed == linear or linear == 0.0:
                continue
            k = min(1.0, max(0.0, allowed / linear))
            if k == 1.0:  # a hedge already reducing the options' breach: left as the policy set it
                continue
            for i in idx:
                out[i] *= k
            cut.append(u)
        return tuple(cut)
