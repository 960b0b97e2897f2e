"""Every long command exits non-zero with a one-line reason when a stop signal arrives, also
while a Lightning trainer (which installs its own SIGTERM notifier) is fitting."""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

from dea.cli import main as cli


def _run(monkeypatch, handler) -> int:
    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="dea")
        sub = p.add_subparsers(dest="command")
        sub.add_parser("train").set_defaults(handler=handler)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    return cli.main(["train"])


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_exits_128_plus_signal_with_one_line(monkeypatch, capsys, sig, code):
    before = signal.getsignal(sig)

    def slow(_args):
        os.kill(os.getpid(), sig)
        time.sleep(5)
        return 0

    assert _run(monkeypatch, slow) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dea train: interrupted by {signal.Signals(sig).name}; stopped before finishing, its outputs may be incomplete (exit {code})"]
    assert signal.getsignal(sig) is before  # handlers restored after the command


def test_sigterm_during_lightning_fit_exits_143(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning.pytorch")

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, i):
            if i == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return self.lin(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(_args):
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=4)
        trainer = L.Trainer(max_epochs=100, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(Tiny(), data)
        return 0  # reached only if the signal was swallowed

    assert _run(monkeypatch, fit) == 143
    assert "dea train: interrupted by SIGTERM" in capsys.readouterr().err
