"""Serving imports the streaming order-book path: it must load with numpy + stdlib (+ orjson,
pydantic) only — never numba, pyarrow, pandas or torch."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("numba", "pyarrow", "pandas", "torch", "llvmlite", "scipy", "sklearn", "mlflow")


def test_streaming_modules_import_without_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "import dea.book, dea.book.binance, dea.book.l2, dea.book.formulas, dea.book.sequencing\n"
        "import dea.features.orderbook\n"
        "from dea.features.orderbook import OrderbookFeatureStream\n"
        "OrderbookFeatureStream()\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"
