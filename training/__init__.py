"""DEA training: Lightning policies on a cost- and risk-aware objective, walk-forward evaluation,
MLflow tracking. Entry point: :func:`training.pipeline.train`; policy modules: :mod:`training.policies`.
"""
