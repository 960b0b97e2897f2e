"""Exposure policies: torch modules that map (raw features, current exposure) to target exposure.

This docstring is the stable contract that training, export (``training.export``) and tuning rely
on. Every policy is a :class:`Policy` (a ``torch.nn.Module``) built from a :class:`PolicySpec`.

Forward signatures (all tensors float32)
----------------------------------------
Feed-forward policies (``kind`` in ``linear``, ``mlp``, ``shared`` — one network applied to every
instrument's own features; ``policy.is_recurrent is False``)::

    forward(features: Tensor[B, F], exposure: Tensor[B, N]) -> target: Tensor[B, N]

Recurrent policies (``kind`` in ``gru``, ``tcn``, ``attention``; ``policy.is_recurrent is True``)::

    forward(features: Tensor[B, F], exposure: Tensor[B, N], state_in: Tensor[B, H])
        -> (target: Tensor[B, N], state_out: Tensor[B, H])

One call is ONE decision step, so the module exports as is to the ONNX contract (DESIGN.md):
``features`` (raw), ``exposure``, optional ``state_in`` -> ``target_exposure``, optional
``state_out``. The GRU is a single ``GRUCell`` step; the temporal convolution and attention
variants carry their window of past inputs in ``state_in``/``state_out`` (a ring buffer flattened
to ``[B, H]``), so no sequence dimension ever appears in the exported graph. The initial state
is all zeros (``policy.initial_state(B)``).

What happens inside every policy
--------------------------------
1. ``features`` are RAW (unscaled, in ``policy.feature_names`` order). The module scales them
   with its own buffers ``center`` [F] and ``scale`` [F]: ``z = clamp((x - center) / scale,
   -clip, clip)`` (no clamp when ``spec.clip is None``). The buffers are set from the fold's
   training-only scaler with :meth:`Policy.set_scaler`, so an export bakes scaling into the graph.
   NaN inputs are NOT replaced: a NaN feature yields a NaN target, which the live loop treats as a
   model failure (fallback) instead of silently trading on a zero.
2. The body maps ``(z, exposure[, state])`` to one unbounded score per instrument.
3. ``desired = caps * tanh(score)`` bounds each instrument by its cap (buffer ``caps`` [N]).
4. Partial adjustment (``spec.partial_adjustment``, default on): ``target = held + rate *
   (desired - held)`` with ``held = clamp(exposure, -caps, caps)`` and ``rate = sigmoid(
   trade_logit)`` a learned per-instrument share in (0, 1) (``policy.trade_rate``). Under trading
   costs the optimal policy trades partially towards an aim (Garleanu & Pedersen 2013); building
   that in lets a network learn *how fast* to trade instead of having to invert a tanh.
5. Differentiable gross-leverage projection: ``target *= min(1, max_gross / sum_i |target_i|)``
   (a radial retraction onto the gross-exposure ball; it keeps direction and relative sizes and
   is the identity inside the ball).

Attributes for metadata (export reads these)
--------------------------------------------
``policy.spec`` (:class:`PolicySpec`, JSON via ``spec.to_dict()``), ``policy.kind``,
``policy.feature_names`` (tuple[str]), ``policy.instruments`` (tuple[str]),
``policy.exposure_caps`` (dict symbol -> cap), ``policy.max_gross`` (float),
``policy.n_features`` (F), ``policy.n_instruments`` (N), ``policy.is_recurrent`` (bool),
``policy.state_size`` (H; 0 for feed-forward), ``policy.initial_state(batch) -> Tensor[B, H]``,
``policy.trade_rate`` (Tensor[N]),
and ``policy.step(features, exposure, state) -> (target, state)`` (uniform call for both kinds;
``state`` is ``None`` for feed-forward policies).

Persistence (no pickles): :func:`save_policy(policy, folder)` writes ``policy_spec.json`` and
``policy_state.pt`` (a plain tensor state dict, loadable with ``torch.load(weights_only=True)``);
:func:`load_policy(folder)` rebuilds the module.
"""

from training.policies.base import Policy, PolicySpec
from training.policies.factory import POLICY_KINDS, build_policy, load_policy, save_policy, spec_from_config

__all__ = [
    "POLICY_KINDS",
    "Policy",
    "PolicySpec",
    "build_policy",
    "load_policy",
    "save_policy",
    "spec_from_config",
]
