"""The suite's one writer of tables: Markdown (cells ``mean ± half-width`` where a row carries the
bootstrap bounds ``<column>_ci_low`` / ``_ci_high``) and CSV, for evaluation runs, the seeds' tables,
the demo report and the ablations alike."""

import csv
import math
from pathlib import Path

FORMAT = "{:.4f}"
BOUNDS = ("_ci_low", "_ci_high")


def columns_of(rows: list[dict]) -> list[str]:
    """Every key of the rows, in first-seen order."""
    return list(dict.fromkeys(c for row in rows for c in row))


FORMAT = "{:.4f}"
BOUNDS = ("_ci_low", "_ci_high")


def format_cell(row: dict, column: str) -> str:
    value = row.get(column, "")
    if not isinstance(value, float):
        return "" if value is None else str(value)
    low, high = (row.get(column + bound) for bound in BOUNDS)
    if isinstance(low, float) and isinstance(high, float) and not math.isnan(high - low):
        return f"{value:.4f} ± {(high - low) / 2:.4f}"
    return FORMAT.format(value)


def markdown_table(
    rows: list[dict],
    title: str | None = None,
    columns: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Rows as a Markdown table: ``columns`` (default every column but ``library`` and the bounds),
    headed by ``headers`` where given (default the column names)."""
    if columns is None:
        columns = [c for c in columns_of(rows) if c != "library" and not c.endswith(BOUNDS)]
    headers = headers or {}
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(headers.get(c, c) for c in columns) + " |"]
    lines += ["|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row, c) for c in columns) + " |")
    note = (
        "\nCells: mean ± half-width of the 95 % bootstrap interval over images; median_rank: the "
        "method's median rank across the ranked columns (1 = best).\n"
        if any(c.endswith(BOUNDS) for row in rows for c in row)
        else ""
    )
    return "\n".join(lines) + "\n" + note


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV, a column for every key of any row."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns_of(rows))
        writer.writeheader()
        writer.writerows(rows)
