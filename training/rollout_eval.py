"""Run a trained policy over a block of the panel as it would trade live (no gradients).

Exposure and recurrent state carry from step to step; on rows whose features are not usable the
policy is not consulted and the exposure is held (the live loop's ``hold`` fallback).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.datamodule import TrainingData
from training.objective import drift, rollout_masked
from training.policies import Policy


@dataclass(frozen=True)
class BlockRollout:
    """Exposures decided on rows [start, stop) and the inputs each decision saw."""

    start: int
    stop: int
    exposures: np.ndarray  # [n, N] target exposure decided at each row
    inputs_features: np.ndarray  # [n, F] raw features fed to the policy
    inputs_exposure: np.ndarray  # [n, N] exposure held before the decision (drifted)
    inputs_state: np.ndarray | None  # [n, H] state before the decision (recurrent only)
    final_state: np.ndarray | None
    dispersion: np.ndarray | None = None  # [n, N] ensemble spread of the decision (ensembles only)


@torch.no_grad()
def run_block(
    policy: Policy,
    data: TrainingData,
    start: int,
    stop: int,
    *,
    exposure0: np.ndarray | None = None,
    state0: np.ndarray | None = None,
    record_state: bool = True,
) -> BlockRollout:
    """Roll ``policy`` over rows [start, stop) from ``exposure0`` (default flat) and ``state0``."""
    policy.eval()
    block = data.block(start, stop)
    n = policy.n_instruments
    w0 = torch.zeros(1, n) if exposure0 is None else torch.as_tensor(exposure0, dtype=torch.float32).reshape(1, n)
    s0 = None
    if policy.is_recurrent:
        s0 = policy.initial_state(1) if state0 is None else torch.as_tensor(state0, dtype=torch.float32).reshape(1, -1)
    x = block["features"].unsqueeze(0)
    mask = block["mask"].unsqueeze(0)
    r = block["returns"].unsqueeze(0)
    states: list[torch.Tensor] = []
    if policy.is_recurrent and record_state:
        # replay to record the state before each step (cheap: one more pass, no grad)
        w, s = w0, s0
        for t in range(x.shape[1]):
            states.append(s[0].clone())
            nw, ns = policy.step(x[:, t, :], w, s)
            keep = mask[:, t].unsqueeze(-1)
            w = drift(torch.where(keep, nw, w), r[:, t, :])
            s = torch.where(keep, ns, s)
    targets_t, final = rollout_masked(policy, x, mask, w0, s0, returns=r)
    held = torch.cat([w0.unsqueeze(1), drift(targets_t[:, :-1, :], r[:, :-1, :])], dim=1)
    targets = targets_t[0].numpy().astype(np.float64)
    prev = held[0].numpy().astype(np.float64)
    dispersion = None
    if hasattr(policy, "members"):  # an ensemble: its exported forward also returns the spread
        args = [x[0], held[0].float()] + ([torch.stack(states)] if states else [])
        if policy.is_recurrent and not states:
            raise ValueError("ensemble dispersion of a recurrent policy needs record_state=True")
        dispersion = policy(*args)[-1].numpy().astype(np.float64)
        dispersion[~block["mask"].numpy()] = 0.0
    return BlockRollout(
        start=start,
        stop=stop,
        exposures=targets,
        inputs_features=block["features"].numpy(),
        inputs_exposure=prev.astype(np.float32),
        inputs_state=torch.stack(states).numpy() if states else None,
        final_state=None if final is None else final[0].numpy(),
        dispersion=dispersion,
    )
