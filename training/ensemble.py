"""An ensemble of k independently seeded policies with a ``dispersion`` output.

Why: a single network is as confident far outside its training data as inside it. k members
trained from different seeds agree where the data pinned them down and disagree where it did
not; the standard deviation of their target exposures, per instrument, is the ``dispersion``
output of the ONNX contract, which the risk engine turns into smaller positions
(``risk.dispersion_scale``: exposure *= 1 / (1 + k * dispersion)).

The ensemble is itself a policy as far as rollouts are concerned: :meth:`PolicyEnsemble.step`
returns the mean target (a convex combination of bounded targets, so it respects every cap
and the gross limit) and the members' states side by side. :meth:`forward` is what is exported:
``(target, dispersion)`` for feed-forward members, ``(target, state_out, dispersion)`` for
recurrent ones — exactly the shapes :func:`training.export.export_policy` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dea.errors import ModelError
from training.policies import Policy

if TYPE_CHECKING:  # pragma: no cover
    from dea.config import ExperimentConfig
    from training.datamodule import TrainingData
    from training.splits import Fold


class PolicyEnsemble(nn.Module):
    """Mean and spread of k policies built from the same spec (different seeds)."""

    def __init__(self, members: Sequence[Policy]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ModelError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, m in enumerate(members[1:], start=1):
            if (m.feature_names, m.instruments, m.is_recurrent) != (first.feature_names, first.instruments, first.is_recurrent):
                raise ModelError(f"ensemble member {i} differs from member 0 in features, instruments or recurrence")
        self.members = nn.ModuleList(members)
        self.spec = first.spec
        self.kind = f"ensemble[{len(members)}x{first.kind}]"
        self.feature_names = first.feature_names
        self.instruments = first.instruments
        self.n_features = first.n_features
        self.n_instruments = first.n_instruments
        self.max_gross = first.max_gross
        self.is_recurrent = first.is_recurrent
        self._sizes = [int(m.state_size) for m in members]

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def exposure_caps(self) -> dict[str, float]:
        return self.members[0].exposure_caps

    @property
    def state_size(self) -> int:
        return sum(self._sizes)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        return torch.cat([m.initial_state(batch, device) for m in self.members], dim=-1)

    def _member_states(self, state: Tensor) -> list[Tensor]:
        return list(torch.split(state, self._sizes, dim=-1))

    def _targets(self, features: Tensor, exposure: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Stacked member targets [k, B, N] and the concatenated next state."""
        if not self.is_recurrent:
            return torch.stack([m(features, exposure) for m in self.members]), None
        if state is None:
            state = self.initial_state(features.shape[0], features.device)
        outs, states = [], []
        for m, s in zip(self.members, self._member_states(state)):
            t, ns = m(features, exposure, s)
            outs.append(t)
            states.append(ns)
        return torch.stack(outs), torch.cat(states, dim=-1)

    def step(self, features: Tensor, exposure: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Mean target and next state (the uniform policy step used by rollouts)."""
        targets, new_state = self._targets(features, exposure, state)
        return targets.mean(dim=0), new_state

    def forward(self, features: Tensor, exposure: Tensor, state_in: Tensor | None = None):  # noqa: ANN201
        """Exported signature: (target, [state_out,] dispersion); dispersion = population std
        of member targets per instrument."""
        targets, new_state = self._targets(features, exposure, state_in)
        mean = targets.mean(dim=0)
        dispersion = torch.sqrt(((targets - mean) ** 2).mean(dim=0))
        if self.is_recurrent:
            return mean, new_state, dispersion
        return mean, dispersion


def member_seeds(base_seed: int, k: int) -> list[int]:
    """Seeds of the k members: far apart so folds' own seed offsets never collide."""
    return [base_seed + 10_007 * i for i in range(k)]


def fit_ensemble(cfg: "ExperimentConfig", data: "TrainingData", fold: "Fold") -> PolicyEnsemble:
    """Train ``model.ensemble`` members on ``fold`` from independent seeds and wrap them."""
    from training.fit import fit_fold

    k = cfg.model.ensemble
    if k < 2:
        raise ModelError(f"model.ensemble is {k}; an ensemble needs at least 2 members")
    members = [fit_fold(cfg, data, fold, seed=s).policy for s in member_seeds(cfg.training.seed + fold.index, k)]
    return PolicyEnsemble(members).eval()


@torch.no_grad()
def rollout_with_dispersion(ens: PolicyEnsemble, data: "TrainingData", start: int, stop: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Targets and dispersion [stop-start, N] of the ensemble rolled over rows [start, stop) as it
    would trade (exposure fed back; unusable rows hold the exposure and report zero dispersion)."""
    import numpy as np

    ens.eval()
    block = data.block(start, stop)
    x, mask = block["features"], block["mask"]
    n = ens.n_instruments
    w = torch.zeros(1, n)
    state = ens.initial_state(1) if ens.is_recurrent else None
    targets = np.zeros((stop - start, n))
    disp = np.zeros((stop - start, n))
    for t in range(stop - start):
        if bool(mask[t]):
            out = ens(x[t : t + 1], w, state)
            w, d = out[0], out[-1]
            if ens.is_recurrent:
                state = out[1]
            disp[t] = d[0].numpy()
        targets[t] = w[0].numpy()
    return targets, disp


def dispersion_comparison(cfg: "ExperimentConfig", prepared: object, *, scale: float | None = None) -> dict[str, dict[str, float]]:
    """Walk-forward out-of-sample backtests of the ensemble with and without dispersion sizing.

    Same folds, same targets, same costs and risk engine; the only difference is
    ``risk.dispersion_scale`` (``scale``, default the config's, else 1 / median dispersion so a
    typical disagreement halves the position). Returns ``{"without": metrics, "with": metrics}``
    (metrics on the stitched test blocks, plus the mean gross exposure and the scale used).
    """
    import numpy as np

    from training.evaluation import stitch
    from training.metrics_adapter import metrics_of
    from training.splits import walk_forward_folds

    data = prepared.data  # type: ignore[attr-defined]
    folds = walk_forward_folds(data.usable, cfg.training.splits, min_fit=cfg.training.seq_len, clock=data.market.clock,
                               test_start=cfg.training.test_start)
    shape = data.market.returns.shape
    tb, db = [], []
    for fold in folds:
        ens = fit_ensemble(cfg, data, fold)
        t, d = rollout_with_dispersion(ens, data, *fold.test)
        tb.append((fold.test[0], fold.test[1], t))
        db.append((fold.test[0], fold.test[1], d))
    start, stop = tb[0][0], tb[-1][1]  # adjacent test blocks
    rows = np.arange(start, stop)
    targets, disp = stitch(shape, tb), np.nan_to_num(stitch(shape, db))
    k = scale if scale is not None else (cfg.risk.dispersion_scale or 1.0 / max(float(np.median(disp[rows][disp[rows] > 0])), 1e-9))
    out = {}
    from dea.backtest.vectorized import backtest_config

    for label, kk in (("without", 0.0), ("with", k)):
        risk = cfg.risk.model_copy(update={"dispersion_scale": kk})
        bt = backtest_config(cfg, prepared.market, targets, hold_nan=True, dispersion=disp, risk=risk, name=f"ensemble-{label}")  # type: ignore[attr-defined]
        m = {k: float(v) for k, v in metrics_of(bt, start, stop).items() if isinstance(v, (int, float))}
        m["mean_gross"] = float(np.abs(np.asarray(bt.exposures)[rows]).sum(axis=1).mean())
        m["dispersion_scale"] = kk
        m["median_dispersion"] = float(np.median(disp[rows]))
        out[label] = m
    return out
