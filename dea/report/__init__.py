"""Tearsheets and metrics tables. matplotlib (PNG) and plotly (the interactive page, ``report``
extra) are imported lazily, only when a tearsheet is written."""

from dea.report.table import format_metrics_table, metric_rows


def write_tearsheet(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin lazy wrapper
    """See :func:`dea.report.tearsheet.write_tearsheet` (imported lazily: it pulls in matplotlib's
    Agg backend only when a tearsheet is written)."""
    from dea.report.tearsheet import write_tearsheet as _write

    return _write(*args, **kwargs)


__all__ = ["format_metrics_table", "metric_rows", "write_tearsheet"]
