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
        return self.bound(self.head(x))


class MLPPolicy(Policy):
    """Multi-layer perceptron over scaled features and current exposure."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.body, width = mlp_layers(spec.n_features + spec.n_instruments, spec.hidden, spec.dropout)
        self.head = _small_head(width, spec.n_instruments)

    def forward(self, features: Tensor, exposure: Tensor) -> Tensor:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        return self.bound(self.head(self.body(x)))
