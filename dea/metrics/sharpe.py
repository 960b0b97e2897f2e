"""Probabilistic and deflated Sharpe ratios (Bailey & López de Prado, 2012 and 2014).

Why: the best of many tried configurations has a high Sharpe ratio by luck alone. The deflated
Sharpe ratio is the probability that the true Sharpe exceeds the maximum expected from
``n_trials`` unskilled trials whose Sharpe ratios have variance ``trials_sharpe_variance``,
correcting for track-record length, skewness and fat tails. All Sharpe ratios here are per
period (not annualised): divide annual figures by sqrt(periods per year), variances by it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_obs: int, skew: float = 0.0,
                               kurtosis: float = 3.0) -> float:
    """P(true Sharpe > ``benchmark``) given an observed per-period ``sharpe`` over ``n_obs``
    returns with the given skewness and (non-excess) kurtosis."""
    if n_obs < 2:
        raise ValueError(f"need at least 2 observations, got {n_obs}")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        raise ValueError(f"non-positive Sharpe-ratio variance term ({denom}); check skew/kurtosis")
    return _N.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def expected_max_sharpe(n_trials: int, trials_sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` unskilled trials (the DSR threshold)."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if trials_sharpe_variance < 0:
        raise ValueError(f"trials_sharpe_variance must be >= 0, got {trials_sharpe_variance}")
    if n_trials == 1:
        return 0.0
    z1 = _N.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(trials_sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def null_trials_sharpe_variance(n_obs: int) -> float:
    """Per-period variance of one unskilled trial's Sharpe estimate (true Sharpe 0, normal
    returns): ``1 / (n_obs - 1)``.

    The stand-in for ``trials_sharpe_variance`` when the candidates' Sharpe ratios are not all
    known (e.g. only the chosen one was evaluated on these rows): it treats the ``n_trials``
    candidates as independent draws of pure noise. Candidates that are variants of one model are
    correlated, so their real spread is smaller and this deflates more strictly than needed.
    """
    if n_obs < 2:
        raise ValueError(f"need at least 2 observations, got {n_obs}")
    return 1.0 / (n_obs - 1)


def deflated_sharpe_ratio(sharpe: float, *, n_trials: int, trials_sharpe_variance: float, n_obs: int,
                          skew: float = 0.0, kurtosis: float = 3.0,
                          return_threshold: bool = False) -> float | tuple[float, float]:
    """Deflated Sharpe ratio of a per-period ``sharpe`` (see module docstring).

    With ``return_threshold`` also returns the per-period threshold SR0 it was deflated against.
    """
    sr0 = expected_max_sharpe(n_trials, trials_sharpe_variance)
    if any(map(math.isnan, (sharpe, skew, kurtosis))):
        dsr = math.nan
    else:
        dsr = probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)
    return (dsr, sr0) if return_threshold else dsr
