"""Train fold 0 of the tiny experiment with Lightning DDP on 2 CPU processes (gloo).

Run as a script (Lightning's DDP launcher re-runs it for rank 1): ``python ddp_fit.py OUT_DIR``.
Devices, strategy and nodes come from ``training.trainer`` in the config, as in ``dea train``.
Each rank writes ``rank<k>.json`` with what its trainer saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class Report(Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        info = {
            "global_rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "backend": str(getattr(trainer.strategy, "process_group_backend", "")),
            "steps": trainer.global_step,
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


def main(out: Path) -> None:
    from dea.config import load_config
    from training.fit import fit_fold
    from training.prepare import prepare_data
    from training.splits import walk_forward_folds

    cfg = load_config(
        Path(__file__).with_name("tiny_sim.yaml"),
        ["training.trainer.accelerator=cpu", "training.trainer.devices=2", "training.trainer.strategy=ddp",
         "training.trainer.num_nodes=1", "training.epochs=1", "training.num_threads=1"],
    )
    prepared = prepare_data(cfg)
    fold = walk_forward_folds(prepared.data.usable, cfg.training.splits, min_fit=cfg.training.seq_len)[0]
    fit_fold(cfg, prepared.data, fold, extra_callbacks=[Report(out)])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
