"""Lightning wrapper: rolls the policy through windows and minimises the cost-aware loss."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch import Tensor

from dea.config.learning import ObjectiveConfig
from training.objective import StepReturns, risk_adjusted_loss, rollout, rollout_masked, step_returns
from training.policies import Policy


class PolicyLearner(L.LightningModule):
    """Trains ``policy`` on rollouts; logs ``train_loss``, ``val_loss``, ``val_sharpe`` (annualised,
    after costs), ``val_turnover`` and ``val_cost_share`` per epoch."""

    def __init__(
        self,
        policy: Policy,
        *,
        fee: np.ndarray,
        objective: ObjectiveConfig,
        lr: float,
        weight_decay: float,
        periods_per_year: float,
        burn_in: int = 0,
        trade_rate_lr_scale: float = 1.0,
        head_weight_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.burn_in = burn_in
        self.trade_rate_lr_scale = trade_rate_lr_scale
        self.head_weight_decay = head_weight_decay
        self._smooth: float | None = None
        self.policy = policy
        self.register_buffer("fee", torch.as_tensor(fee, dtype=torch.float32))
        self.objective = objective
        self.lr = lr
        self.weight_decay = weight_decay
        self.periods_per_year = periods_per_year
        self.ann = math.sqrt(periods_per_year)

    def _loss(self, sr: StepReturns) -> Tensor:
        o = self.objective
        return risk_adjusted_loss(
            sr,
            o.loss,
            periods_per_year=self.periods_per_year,
            risk_aversion=o.risk_aversion,
            cvar_alpha=o.cvar_alpha,
            cvar_weight=o.cvar_weight,
            turnover_penalty=o.turnover_penalty,
            target_vol=o.target_vol,
            vol_penalty=o.vol_penalty,
        )

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, r, imp, fund = batch
        b, n = x.shape[0], self.policy.n_instruments
        w0 = x.new_zeros(b, n)
        state0 = self.policy.initial_state(b, x.device) if self.policy.is_recurrent else None
        targets, _ = rollout(self.policy, x, w0, state0, returns=r)
        sr = step_returns(targets, w0, r, self.fee, imp, fund)
        if self.burn_in:
            sr = StepReturns(*(t[:, self.burn_in :] for t in (sr.net, sr.gross, sr.fees, sr.impact, sr.funding, sr.turnover)))
        loss = self._loss(sr)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=b)
        return loss

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, r, imp, fund, mask = batch
        b, n = x.shape[0], self.policy.n_instruments
        w0 = x.new_zeros(b, n)
        state0 = self.policy.initial_state(b, x.device) if self.policy.is_recurrent else None
        targets, _ = rollout_masked(self.policy, x, mask, w0, state0, returns=r)
        sr = step_returns(targets, w0, r, self.fee, imp, fund)
        keep = mask.reshape(-1)
        flat = StepReturns(*(t.reshape(-1)[keep] for t in (sr.net, sr.gross, sr.fees, sr.impact, sr.funding, sr.turnover)))
        loss = self._loss(flat)
        net = flat.net
        sharpe = net.mean() / (net.std(unbiased=False) + 1e-12) * self.ann
        costs = (flat.fees + flat.impact).sum()
        self.log("val_loss", loss, prog_bar=True, batch_size=b)
        if self._trainer is None or not self._trainer.sanity_checking:
            v = float(loss)
            self._smooth = v if self._smooth is None else 0.5 * self._smooth + 0.5 * v
            self.log("val_loss_smooth", self._smooth, batch_size=b)
        self.log("val_sharpe", sharpe, prog_bar=True, batch_size=b)
        self.log("val_turnover", flat.turnover.mean(), batch_size=b)
        self.log("val_cost_share", costs / (flat.gross.abs().sum() + 1e-12), batch_size=b)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW with three groups: the trade-rate logits (faster, no decay: decay would pull every
        rate towards 0.5), the output layer (``head_weight_decay``: with a zero-initialised head
        this shrinks the learned adjustment towards none, i.e. towards the base) and the rest."""
        named = list(self.policy.named_parameters())
        rate = [p for n, p in named if n.endswith("trade_logit")]
        shrink = self.head_weight_decay is not None
        head = [p for n, p in named if shrink and n.startswith("head.") and n.endswith("weight")]
        rest = [p for n, p in named if not n.endswith("trade_logit") and not any(p is h for h in head)]
        groups = [{"params": rest}]
        if head:
            groups.append({"params": head, "weight_decay": float(self.head_weight_decay)})
        if rate:
            groups.append({"params": rate, "lr": self.lr * self.trade_rate_lr_scale, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
