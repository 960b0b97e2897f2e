"""Feed-forward policies: one decision from the current features and exposure alone."""

from __future__ import annotations

from torch import Tensor, nn
import torch

from training.policies.base import Policy, PolicySpec, mlp_layers


def _small_head(n_in: int, n_out: int) -> nn.Linear:
    """Output layer initialised near zero, so an untrained policy starts close to flat."""
    head = nn.Linear(n_in, n_out)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    return head


class LinearPolicy(Policy):
    """score = A·z + B·exposure + b: the smallest policy, a useful sanity check and baseline."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.head = _small_head(spec.n_features + spec.n_instruments, spec.n_instruments)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        return self.bound(self.head(x), exposure)


class MLPPolicy(Policy):
    """Multi-layer perceptron over scaled features and current exposure."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.body, width = mlp_layers(spec.n_features + spec.n_instruments, spec.hidden, spec.dropout)
        self.head = _small_head(width, spec.n_instruments)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        return self.bound(self.head(self.body(x)), exposure)


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
        self.head = _small_head(width, 1)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        z = self.scale_features(features)  # [B, F]
        b, n = z.shape[0], self.n_instruments
        own = z[:, self.own_idx] * self.own_avail  # [B, N, S]
        parts = [own, self.own_avail.expand(b, -1, -1)]
        if self.global_idx.numel():
            parts.append(z[:, self.global_idx].unsqueeze(1).expand(-1, n, -1))
        parts += [exposure.unsqueeze(-1), self.onehot.expand(b, -1, -1)]
        x = torch.cat(parts, dim=-1)  # [B, N, D]
        return self.bound(self.head(self.body(x)).squeeze(-1), exposure)
