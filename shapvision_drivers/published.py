"""The seeds' published figures beside ours: ``experiments/tables/published.yaml`` holds each table's
figures with their source; ``paper_beside_ours`` lines them up with a merged table's rows.

Per published row and column: ``<column> paper``, ``<column> ours`` (our value times the entry's
``ours_scale``, the paper's units: one number, or one per column) and ``<column> diff`` (ours - paper); a row we have no figure
for says why (``not_run``, or that its run did not produce it). Our rows the paper has no row for
stay in the main table only.
"""

import math
from pathlib import Path

import yaml

from shapvision_drivers.passthrough import EXPERIMENTS

PUBLISHED_FILE = EXPERIMENTS / "tables" / "published.yaml"


def read_published(path: Path = PUBLISHED_FILE) -> dict:
    """The entries of published.yaml, each checked: a source, columns, rows that name every column
    and either our row (``ours``) or why there is none (``not_run``)."""
    entries = yaml.safe_load(path.read_text())
    for name, entry in entries.items():
        missing = {"source", "columns", "rows"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {name!r} has no {sorted(missing)}")
        for row in entry["rows"]:
            if ("ours" in row) == ("not_run" in row):
                raise ValueError(
                    f"{path}: {name} row {row.get('row')!r} needs exactly one of `ours` "
                    "(our row, 'model / method') and `not_run` (why we have none)"
                )
            unknown = set(row) - {"row", "ours", "not_run", *entry["columns"]}
            if unknown:
                raise ValueError(
                    f"{path}: {name} row {row['row']!r} has unknown keys {sorted(unknown)}"
                )
    return entries


def number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def paper_beside_ours(entry: dict, rows: list[dict]) -> list[dict]:
    """One row per published row: its figures, ours (scaled to the paper's units) and the difference.

    ``rows`` are the merged table's rows (``model``, ``method``, the metric columns)."""
    scales = entry.get("ours_scale", 1)
    ours_by_key = {f"{r['model']} / {r['method']}": r for r in rows}
    lined_up = []
    for published in entry["rows"]:
        line = {"paper row": published["row"], "ours": published.get("ours", "")}
        ours = ours_by_key.get(published.get("ours"))
        for column in entry["columns"]:
            paper = number(published.get(column))
            mine = None if ours is None else number(ours.get(column))
            scale = scales.get(column, 1) if isinstance(scales, dict) else scales
            mine = None if mine is None else mine * float(scale)
            line[f"{column} paper"] = "" if paper is None else paper
            line[f"{column} ours"] = "" if mine is None else mine
            line[f"{column} diff"] = "" if paper is None or mine is None else mine - paper
        if "not_run" in published:
            line["status"] = f"not run: {published['not_run']}"
        elif ours is None:
            line["status"] = "not in this run's rows"
        else:
            line["status"] = ""
        lined_up.append(line)
    return lined_up
