"""Feature drift in the live loop: PSI / KS per feature, Prometheus metrics, configured actions.

The loop calls :meth:`DriftGuard.observe` once per decision with the raw feature vector it fed
the model. Every ``drift.every`` decisions the last ``drift.window`` vectors are scored against
the training-time reference stored with the model (:mod:`dea.drift`); when at least
``drift.min_flagged`` features drift, the configured actions run:

- ``alert``: a warning log line on the transition into drift, and the metrics below;
- ``derisk``: :attr:`DriftDecision.exposure_scale` becomes ``drift.derisk_factor`` until an
  evaluation finds the features back in line (the loop multiplies its target by it);
- ``retrain``: a JSON flag file is written once per drift episode; ``dea retrain --if-flagged``
  acts on it (cron can run that every hour; it does nothing while no flag is present).

Metrics (gauges unless noted): ``dea_drift_psi{feature}``, ``dea_drift_ks{feature}``,
``dea_drift_flagged{feature}``, ``dea_drift_features_flagged``, ``dea_drift_exposure_scale``,
``dea_drift_episodes_total`` (counter). numpy + prometheus-client + stdlib only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from dea.config.drift import DriftConfig
from dea.drift import DriftReference, DriftThresholds, FeatureDrift, RollingDriftMonitor
from dea.errors import ModelError
from dea.timeutil import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftDecision:
    """What drift asks of the loop at this decision."""

    drifting: bool
    flagged: tuple[str, ...]
    exposure_scale: float
    evaluated: bool  # scores were refreshed at this call


class DriftGuard:
    """Rolling drift monitor + actions for one model. ``registry``: where the metrics live (the
    serve process passes the registry its metrics endpoint exports)."""

    def __init__(
        self,
        reference: DriftReference,
        cfg: DriftConfig,
        *,
        feature_names: tuple[str, ...] | list[str] | None = None,
        registry: CollectorRegistry | None = None,
        model_version: str = "",
        flag_path: str | Path | None = None,
    ) -> None:
        if feature_names is not None and list(feature_names) != reference.names:
            raise ModelError(
                "drift reference features differ from the model's feature order "
                f"(reference {reference.names[:5]}..., model {list(feature_names)[:5]}...)"
            )
        self.cfg = cfg
        self.reference = reference
        self.model_version = model_version
        self.flag_path = Path(flag_path if flag_path is not None else cfg.retrain_flag)
        self.monitor = RollingDriftMonitor(
            reference,
            window=cfg.window,
            every=cfg.every,
            thresholds=DriftThresholds(psi=cfg.psi_threshold, ks=cfg.ks_threshold, min_samples=cfg.min_samples),
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self._psi = Gauge("dea_drift_psi", "PSI of a feature over the drift window", ["feature"], registry=self.registry)
        self._ks = Gauge("dea_drift_ks", "Kolmogorov-Smirnov distance of a feature over the drift window", ["feature"], registry=self.registry)
        self._flag = Gauge("dea_drift_flagged", "1 when the feature is above a drift threshold", ["feature"], registry=self.registry)
        self._n_flagged = Gauge("dea_drift_features_flagged", "features above a drift threshold", registry=self.registry)
        self._scale = Gauge("dea_drift_exposure_scale", "exposure multiplier applied because of drift", registry=self.registry)
        self._episodes = Counter("dea_drift_episodes", "drift episodes (transitions into drift)", registry=self.registry)
        self._scale.set(1.0)
        self._drifting = False
        self._flagged: tuple[str, ...] = ()
        self.last_scores: list[FeatureDrift] | None = None

    @property
    def drifting(self) -> bool:
        return self._drifting

    def observe(self, t_ns: int, features: np.ndarray) -> DriftDecision:
        """Record one decision's raw features; re-score and act when an evaluation is due."""
        if not self.cfg.enabled:
            return DriftDecision(False, (), 1.0, False)
        scores = self.monitor.update(features)
        if scores is None:
            return DriftDecision(self._drifting, self._flagged, self.exposure_scale, False)
        self.last_scores = scores
        for s in scores:
            self._psi.labels(s.name).set(s.psi)
            self._ks.labels(s.name).set(s.ks)
            self._flag.labels(s.name).set(1.0 if s.flagged else 0.0)
        flagged = tuple(s.name for s in scores if s.flagged)
        self._n_flagged.set(len(flagged))
        drifting = len(flagged) >= self.cfg.min_flagged
        if drifting and not self._drifting:
            self._enter(t_ns, flagged, scores)
        elif not drifting and self._drifting:
            log.info("drift cleared at %s: %d features flagged", iso(t_ns), len(flagged))
        self._drifting, self._flagged = drifting, flagged
        self._scale.set(self.exposure_scale)
        return DriftDecision(drifting, flagged, self.exposure_scale, True)

    @property
    def exposure_scale(self) -> float:
        return self.cfg.derisk_factor if (self._drifting and "derisk" in self.cfg.actions) else 1.0

    def _enter(self, t_ns: int, flagged: tuple[str, ...], scores: list[FeatureDrift]) -> None:
        self._episodes.inc()
        detail = {s.name: {"psi": round(s.psi, 4), "ks": round(s.ks, 4)} for s in scores if s.flagged}
        if "alert" in self.cfg.actions:
            log.warning("feature drift at %s: %d features flagged %s", iso(t_ns), len(flagged), detail)
        if "retrain" in self.cfg.actions:
            write_retrain_flag(self.flag_path, t_ns, self.model_version, detail)


def write_retrain_flag(path: str | Path, t_ns: int, model_version: str, detail: dict) -> Path:
    """Atomically write the retrain request file ``dea retrain --if-flagged`` consumes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"reason": "feature drift", "at": iso(t_ns), "model_version": model_version, "features": detail}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.chmod(tmp, 0o644)  # the retrain job may run as another user
    os.replace(tmp, path)
    return path


def attach_to_loop(loop: object, guard: DriftGuard) -> DriftGuard:
    """Feed ``guard`` every usable model input vector of ``loop`` and apply its exposure scale.

    Registers a decision monitor (:attr:`serving.loop.LiveLoop.monitors`): after the model
    answers, the exact model inputs go to :meth:`DriftGuard.observe` and a finite target is
    multiplied by :attr:`DriftGuard.exposure_scale` (1 unless ``derisk`` is configured and
    features drift). The risk engine then applies its rules to the scaled target as usual.
    Warm-up rows (not yet usable inputs) are not observed.
    """

    def monitor(t: int, x: np.ndarray, action: str, target: np.ndarray) -> tuple[str, np.ndarray]:
        guard.observe(int(t), x)
        scale = guard.exposure_scale
        if scale != 1.0 and np.isfinite(target).all():
            target = target * scale
            action = f"{action}:drift_derisk" if ":" not in action else action
        return action, target

    loop.monitors.append(monitor)  # type: ignore[attr-defined]
    return guard
