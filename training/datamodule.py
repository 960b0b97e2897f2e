"""Lightning data for one walk-forward fold: rollout windows for fitting, whole blocks for
validation and testing.

Training batches are windows of ``burn_in + seq_len`` consecutive decision steps lying entirely
inside the fold's fit block and made only of usable rows (valid features, known return, funding
and impact), so no window ever straddles a gap, the purge or a later block. The first
``burn_in`` steps are rolled but not scored: each scored window then starts from the exposure
(and recurrent state) the policy itself would hold there, not from flat — otherwise a policy that
trades slowly (as costs demand) looks bad in every window just because it starts empty. Validation is the whole validation
block rolled as one sequence (as it would be traded). Scaling is NOT applied here: the fold's
scaler is fitted on the fit block only and baked into the policy module (see
:mod:`training.policies`), so batches carry raw features.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dea.errors import ConfigError
from training.market import MarketArrays
from training.splits import Fold


@dataclass(frozen=True)
class TrainingData:
    """Raw feature matrix and market arrays on one decision clock."""

    features: np.ndarray  # [T, F] raw prepared inputs (NaN only where ``valid`` is False)
    feature_names: tuple[str, ...]
    valid: np.ndarray  # [T] bool: features usable at t
    market: MarketArrays

    def __post_init__(self) -> None:
        T = self.market.returns.shape[0]
        if self.features.shape != (T, len(self.feature_names)):
            raise ConfigError(
                f"feature matrix shape {self.features.shape} does not match {T} clock rows x "
                f"{len(self.feature_names)} feature names"
            )
        if self.valid.shape != (T,):
            raise ConfigError(f"valid mask shape {self.valid.shape} != ({T},)")

    @property
    def usable(self) -> np.ndarray:
        """Rows [T] a policy can be trained and scored on."""
        finite = np.isfinite(self.features).all(axis=1)
        return self.valid & finite & self.market.tradable

    def block(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        """Tensors for rows [start, stop), with a ``mask`` of usable rows (NaN zeroed where unusable)."""
        sl = slice(start, stop)
        usable = self.usable[sl]
        x = np.where(usable[:, None], self.features[sl], 0.0)
        m = self.market

        def clean(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.where(usable[:, None], a[sl], 0.0), dtype=torch.float32)

        return {
            "features": torch.as_tensor(x, dtype=torch.float32),
            "returns": clean(m.returns),
            "impact": clean(m.impact),
            "funding": clean(m.funding),
            "mask": torch.as_tensor(usable),
        }


def window_starts(usable: np.ndarray, start: int, stop: int, seq_len: int, stride: int) -> np.ndarray:
    """Start rows of all-usable windows of ``seq_len`` inside [start, stop), every ``stride``."""
    ok = usable[start:stop].astype(np.int64)
    if ok.size < seq_len:
        return np.empty(0, dtype=np.int64)
    csum = np.concatenate([[0], np.cumsum(ok)])
    full = (csum[seq_len:] - csum[:-seq_len]) == seq_len  # window starting at i is all usable
    cand = np.flatnonzero(full)
    if cand.size == 0:
        return cand.astype(np.int64)
    # keep a regular stride, restarting the grid after each unusable stretch
    keep = [int(cand[0])]
    for c in cand[1:]:
        if c - keep[-1] >= stride:
            keep.append(int(c))
    return np.asarray(keep, dtype=np.int64) + start


class WindowDataset(Dataset):
    """Windows of ``seq_len`` rows (features, returns, impact, funding) by start row."""

    def __init__(self, data: TrainingData, starts: np.ndarray, seq_len: int) -> None:
        m = data.market
        self.x = torch.as_tensor(np.nan_to_num(data.features), dtype=torch.float32)
        self.r = torch.as_tensor(np.nan_to_num(m.returns), dtype=torch.float32)
        self.imp = torch.as_tensor(np.nan_to_num(m.impact), dtype=torch.float32)
        self.fund = torch.as_tensor(np.nan_to_num(m.funding), dtype=torch.float32)
        self.starts = starts
        self.seq_len = seq_len

    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        s = int(self.starts[i])
        sl = slice(s, s + self.seq_len)
        return self.x[sl], self.r[sl], self.imp[sl], self.fund[sl]


class BlockDataset(Dataset):
    """One whole block as a single sequence (validation / test rollouts)."""

    def __init__(self, block: dict[str, torch.Tensor]) -> None:
        self.block = block

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        b = self.block
        return b["features"], b["returns"], b["impact"], b["funding"], b["mask"]


class FoldDataModule(L.LightningDataModule):
    """Fit windows and the validation block of one :class:`~training.splits.Fold`."""

    def __init__(
        self,
        data: TrainingData,
        fold: Fold,
        *,
        seq_len: int,
        stride: int,
        batch_size: int,
        seed: int,
        burn_in: int = 0,
    ) -> None:
        super().__init__()
        self.data = data
        self.fold = fold
        self.burn_in = burn_in
        self.seq_len = seq_len + burn_in
        self.stride = max(1, stride)
        self.batch_size = batch_size
        self.seed = seed
        self.starts = window_starts(data.usable, *fold.fit, self.seq_len, self.stride)
        if self.starts.size == 0:
            raise ConfigError(
                f"fold {fold.index}: the fit block {fold.fit} has no run of {self.seq_len} usable rows "
                f"(burn_in {burn_in} + seq_len {seq_len}); lower them or check the feature warm-up / missing data"
            )

    @property
    def n_windows(self) -> int:
        return int(self.starts.size)

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            WindowDataset(self.data, self.starts, self.seq_len),
            batch_size=self.batch_size,
            shuffle=True,
            generator=gen,
            num_workers=0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(BlockDataset(self.data.block(*self.fold.val)), batch_size=1, num_workers=0)
