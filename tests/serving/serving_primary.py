"""A primary ``dea serve`` process for the standby tests: runs :func:`serving.app.run_serve` on a
replay and SIGKILLs itself at the K-th write-ahead point (``kill -9``: no cleanup, no lease
release, the in-process paper venue dies with it). K=0 runs to the end (a reference run).

Usage: python serving_primary.py CONFIG MODEL JOURNAL K
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    from dea.config import load_config
    from serving.app import run_serve

    config, model, journal, k = argv[0], argv[1], argv[2], int(argv[3])
    calls = [0]

    def hook(point: str, t: int) -> None:
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_loop(loop) -> None:  # noqa: ANN001
        loop.hook = hook

    summary = run_serve(load_config(config), model=model, feed="replay", exchange="paper", journal=journal,
                        on_loop=on_loop)
    print(f"hook_calls={calls[0]} decisions={summary.decisions}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
