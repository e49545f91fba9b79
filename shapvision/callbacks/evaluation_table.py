"""Writes an evaluation run's table, rank 0: ``evaluation.csv`` / ``.json`` (every cell with its
bootstrap bounds ``<column>_ci_low`` / ``_ci_high``), ``evaluation.md`` (``mean ± half-width`` of the
95 % interval) and ``per_image.pt`` (each method's per-image values per metric, for
``python -m shapvision.tables ... --compare A B``)."""

import csv
import json
import math
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

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


def markdown_table(rows: list[dict], title: str | None = None) -> str:
    columns = [
        c
        for c in dict.fromkeys(c for row in rows for c in row)
        if c != "library" and not c.endswith(BOUNDS)
    ]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row, c) for c in columns) + " |")
    note = (
        "\nCells: mean ± half-width of the 95 % bootstrap interval over images; median_rank: the "
        "method's median rank across the ranked columns (1 = best).\n"
        if any(c.endswith(BOUNDS) for row in rows for c in row)
        else ""
    )
    return "\n".join(lines) + "\n" + note


class EvaluationTableWriter(Callback):
    """``output_dir`` defaults to the run directory; ``title`` heads the Markdown table."""

    def __init__(
        self, output_dir: str | None = None, title: str | None = None, print_table: bool = True
    ):
        self.output_dir, self.title, self.print_table = output_dir, title, print_table

    def on_test_end(self, trainer, pl_module) -> None:
        out = Path(self.output_dir) if self.output_dir else pl_module.run_dir()
        model_metrics = getattr(pl_module, "model_metrics", {})
        if not trainer.is_global_zero or not (pl_module.table or model_metrics):
            return
        out.mkdir(parents=True, exist_ok=True)
        rows = pl_module.table
        columns = list(dict.fromkeys(c for row in rows for c in row))
        with open(out / "evaluation.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        header = {
            "checkpoint": pl_module.hparams.checkpoint,
            "test_accuracy": pl_module.test_accuracy,
            "model_metrics": model_metrics,
        }
        (out / "evaluation.json").write_text(json.dumps({**header, "rows": rows}, indent=2))
        if pl_module.per_image:
            torch.save(pl_module.per_image, out / "per_image.pt")
        accuracy = (
            ""
            if pl_module.test_accuracy is None
            else f"Model test accuracy: {pl_module.test_accuracy:.4f}.\n\n"
        )
        if model_metrics:
            accuracy += (
                "Model: " + ", ".join(f"{k} {v:.4f}" for k, v in model_metrics.items()) + ".\n\n"
            )
        table = markdown_table(rows, self.title) if rows else f"### {self.title or 'evaluation'}\n"
        (out / "evaluation.md").write_text(table + "\n" + accuracy)
        if self.print_table:
            print(
                "\n"
                + table
                + accuracy
                + f"written: {out / 'evaluation.csv'}, {out / 'evaluation.md'}"
            )
