"""A metric's computed values as table cells, and the rank-aggregation column of a table.

Cells are the metric's ``columns`` with their bootstrap bounds (``<column>_ci_low`` / ``_ci_high``)
and its scalar extras (counts of undefined images, reference std); curves and per-image values stay
out of the table. The median rank (LATEC, Klein et al. 2024: metrics disagree, so methods are ranked
per metric and the ranks aggregated) uses each column's direction from the metric's
``higher_is_better``; ties share their average rank, and a column a method lacks is left out of its
median.
"""

import math
import statistics

import torch


def metric_cells(metric, values: dict) -> dict[str, float]:
    cells = {}
    for column in metric.columns:
        cells[column] = float(values[column])
        for bound in ("ci_low", "ci_high"):
            if f"{column}_{bound}" in values:
                cells[f"{column}_{bound}"] = float(values[f"{column}_{bound}"])
    for name, value in values.items():
        if name not in cells and isinstance(value, torch.Tensor) and value.numel() == 1:
            cells[name] = float(value)
    return cells


def median_ranks(rows: list[dict], higher_is_better: dict[str, bool]) -> list[float | None]:
    """Per row, the median over ranked columns of its rank among the rows (1 = best)."""
    ranks: list[list[float]] = [[] for _ in rows]
    for column, higher in higher_is_better.items():
        scored = [
            (i, row[column])
            for i, row in enumerate(rows)
            if isinstance(row.get(column), float) and not math.isnan(row[column])
        ]
        if len(scored) < 2:
            continue
        for i, value in scored:
            better = sum(1 for _, v in scored if (v > value if higher else v < value))
            equal = sum(1 for _, v in scored if v == value)
            ranks[i].append(better + (equal + 1) / 2)
    return [statistics.median(r) if r else None for r in ranks]
