"""Policies with memory, each exported as ONE step with its state as explicit input and output.

* :class:`GRUPolicy`: a ``GRUCell`` over (scaled features, exposure); state = hidden vector.
* :class:`TCNPolicy`: a causal, dilated temporal convolution. Its state is the ring buffer of
  past layer inputs each layer needs (``(kernel-1)*dilation`` rows per layer), flattened. Stepping
  it once per decision computes exactly the last output column of the full causal convolution.
* :class:`AttentionPolicy`: single-head causal attention of the current step over a window of the
  last ``kernel_size`` embedded steps; state = the buffer of past embeddings.

Why buffers instead of sequence inputs: the ONNX contract takes one decision's features, and
torch's dynamo exporter silently fixes sequence lengths (STACK_NOTES), so any sequence axis
inside the graph is a latent bug.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from training.policies.base import Policy, PolicySpec, mlp_layers, output_head


class GRUPolicy(Policy):
    """GRU cell: ``hidden[0]`` is the state size, further ``hidden`` widths form the head MLP."""

    is_recurrent = True

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        hidden = list(spec.hidden) or [32]
        self._h = int(hidden[0])
        self.cell = nn.GRUCell(spec.n_features + spec.n_instruments, self._h)
        self.body, width = mlp_layers(self._h, hidden[1:], spec.dropout)
        self.head = output_head(width, spec)

    @property
    def state_size(self) -> int:
        return self._h

    def forward(self, features: Tensor, exposure: Tensor, state_in: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        h = self.cell(x, state_in)
        return self.bound(self.head(self.body(h)), exposure, features), h


class _BufferedStack(Policy):
    """Shared plumbing for policies whose state is a set of per-layer input buffers."""

    is_recurrent = True

    def _init_buffers(self, sizes: list[tuple[int, int]]) -> None:
        """``sizes``: per layer (rows kept, channels)."""
        self._buf_shapes = sizes
        self._state = sum(r * c for r, c in sizes)

    @property
    def state_size(self) -> int:
        return self._state

    def _split_state(self, state: Tensor) -> list[Tensor]:
        out, start = [], 0
        for rows, ch in self._buf_shapes:
            n = rows * ch
            out.append(state[:, start : start + n].reshape(-1, rows, ch))
            start += n
        return out


class TCNPolicy(_BufferedStack):
    """Causal dilated convolution layers (kernel ``k``, dilation ``k**layer``) + linear head.

    ``hidden`` gives the channels of each conv layer. Receptive field: ``1 + (k-1)*sum(k**l)``.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        k = int(spec.kernel_size)
        if k < 2:
            raise ValueError(f"tcn kernel_size must be >= 2, got {k}")
        channels = [int(h) for h in (spec.hidden or (32,))]
        self.kernel = k
        self.dilations = [k**i for i in range(len(channels))]
        n_in = spec.n_features + spec.n_instruments
        convs, sizes, width = [], [], n_in
        for ch, d in zip(channels, self.dilations):
            convs.append(nn.Linear(k * width, ch))  # == Conv1d(width, ch, k, dilation=d) at one position
            sizes.append(((k - 1) * d, width))
            width = ch
        self.convs = nn.ModuleList(convs)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.head = output_head(width, spec)
        self._init_buffers(sizes)

    def forward(self, features: Tensor, exposure: Tensor, state_in: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        new_state = []
        for conv, d, buf in zip(self.convs, self.dilations, self._split_state(state_in)):
            full = torch.cat([buf, x.unsqueeze(1)], dim=1)  # [B, (k-1)d + 1, C]
            taps = full[:, ::d, :]  # k taps, oldest first, ending at the current step
            x = self.drop(self.act(conv(taps.reshape(taps.shape[0], -1))))
            new_state.append(full[:, 1:, :].reshape(full.shape[0], -1))
        return self.bound(self.head(x), exposure, features), torch.cat(new_state, dim=1)


class AttentionPolicy(_BufferedStack):
    """Causal single-head attention over the last ``kernel_size`` steps' embeddings.

    ``hidden[0]`` is the embedding width; further widths form the head MLP. A learned recency
    bias per lag lets the model prefer recent steps without positional encodings.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        hidden = list(spec.hidden) or [32]
        d = int(hidden[0])
        self.window = int(spec.kernel_size)
        if self.window < 2:
            raise ValueError(f"attention kernel_size (window) must be >= 2, got {self.window}")
        self.embed = nn.Linear(spec.n_features + spec.n_instruments, d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.lag_bias = nn.Parameter(torch.zeros(self.window))
        self.body, width = mlp_layers(2 * d, hidden[1:], spec.dropout)
        self.head = output_head(width, spec)
        self._d = d
        self._init_buffers([(self.window - 1, d)])

    def forward(self, features: Tensor, exposure: Tensor, state_in: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.scale_features(features), exposure], dim=-1)
        e = torch.tanh(self.embed(x))
        (buf,) = self._split_state(state_in)
        window = torch.cat([buf, e.unsqueeze(1)], dim=1)  # [B, W, d], oldest first
        q = self.q(e).unsqueeze(1)  # [B, 1, d]
        logits = (q * self.k(window)).sum(-1) / math.sqrt(self._d) + self.lag_bias  # [B, W]
        attn = torch.softmax(logits, dim=-1).unsqueeze(-1)
        ctx = (attn * self.v(window)).sum(1)
        out = self.head(self.body(torch.cat([e, ctx], dim=-1)))
        return self.bound(out, exposure, features), window[:, 1:, :].reshape(window.shape[0], -1)
