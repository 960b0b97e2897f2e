"""Feed-forward policies: one decision from the current features and exposure alone."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.policies.base import Policy, PolicySpec, mlp_layers, output_head


class BasePolicy(Policy):
    """The base allocation alone (``model.kind: base``): no learned adjustment.

    It is what every adjusted policy starts from and what nested selection falls back to when no
    adjustment validates better; it needs no training and exports like any other policy.
    """

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        scores = features.new_zeros(features.shape[0], self.n_scores)
        return self.bound(scores, exposure, features)


class LinearPolicy(Policy):
    """score = A·z + B·exposure + b: the smallest policy, a useful sanity check and baseline."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.head = output_head(spec.n_features + spec.n_instruments, spec)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        return self.bound(self.head(x), exposure, features)


class ForecastPolicy(Policy):
    """Two-stage policy: a linear forecast of each instrument's next volatility-standardised
    return (``z = r[t+1] / sigma[t]``, a per-step Sharpe forecast), sized by a mean-variance rule
    in volatility units (``tilt = tanh(z / (s * risk_aversion))``, ``s`` the forecast's in-sample
    spread) over the base, then partial adjustment towards that aim — the turnover cost.

    The forecast layer is fitted in closed form (ridge, :func:`training.forecast_policy.fit_forecast_policy`),
    not by gradient descent; the module exports to ONNX like every other policy.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.head = nn.Linear(spec.n_features, spec.n_instruments)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        tilt = self.head(self.scale_features(features))
        if self.n_scores > self.n_instruments:  # over a base: scale fixed at 1
            tilt = torch.cat([tilt, tilt.new_zeros(tilt.shape[0], self.n_scores - self.n_instruments)], dim=-1)
        return self.bound(tilt, exposure, features)


class MLPPolicy(Policy):
    """Multi-layer perceptron over scaled features and current exposure."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.body, width = mlp_layers(spec.n_features + spec.n_instruments, spec.hidden, spec.dropout)
        self.head = output_head(width, spec)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        return self.bound(self.head(self.body(x)), exposure, features)


class SharedPolicy(Policy):
    """One network applied to every instrument (parameter sharing across the cross-section).

    Instrument i's input: its own per-instrument features (same stems for all instruments, see
    :mod:`training.policies.layout`), their availability flags, the global features, its current
    exposure and a one-hot of the instrument (so per-instrument offsets remain learnable). With
    N instruments it sees N times more examples per parameter than :class:`MLPPolicy`, the
    usual remedy when the signal is weak and the history short. ``hidden: []`` makes it linear.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        from training.policies.layout import instrument_layout

        layout = instrument_layout(spec.feature_names, spec.instruments)
        n, s = layout.own.shape
        self.register_buffer("own_idx", torch.as_tensor(layout.own.clip(min=0)), persistent=False)
        self.register_buffer("own_avail", torch.as_tensor(layout.available, dtype=torch.float32), persistent=False)
        self.register_buffer("global_idx", torch.as_tensor(layout.global_cols), persistent=False)
        self.register_buffer("onehot", torch.eye(n), persistent=False)
        n_in = 2 * s + int(layout.global_cols.size) + 1 + n
        self.body, width = mlp_layers(n_in, spec.hidden, spec.dropout)
        self.head = output_head(width, spec, n_out=spec.scores_per_instrument)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        z = self.scale_features(features)  # [B, F]
        b, n = z.shape[0], self.n_instruments
        own = z[:, self.own_idx] * self.own_avail  # [B, N, S]
        parts = [own, self.own_avail.expand(b, -1, -1)]
        if self.global_idx.numel():
            parts.append(z[:, self.global_idx].unsqueeze(1).expand(-1, n, -1))
        parts += [exposure.unsqueeze(-1), self.onehot.expand(b, -1, -1)]
        x = torch.cat(parts, dim=-1)  # [B, N, D]
        scores = self.head(self.body(x))  # [B, N, k]: (tilt, scale) per instrument
        return self.bound(scores.transpose(1, 2).reshape(b, -1), exposure, features)
