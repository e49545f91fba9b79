"""Writes an evaluation run's table, rank 0: ``evaluation.csv`` / ``.json`` (every cell with its
bootstrap bounds ``<column>_ci_low`` / ``_ci_high``), ``evaluation.md`` (``mean ± half-width`` of the
95 % interval) and ``per_image.pt`` (each method's per-image values per metric, for
``python -m shapvision_drivers.tables ... --compare A B``)."""

import json
from pathlib import Path

import torch

from shapvision.callbacks.run_records import run_directory
from shapvision.modules.evaluation_core import EvaluationResult, EvaluationResultCallback
from shapvision.table_files import markdown_table, write_csv


class EvaluationTableWriter(EvaluationResultCallback):
    """``output_dir`` defaults to the run directory; ``title`` heads the Markdown table."""

    def __init__(
        self, output_dir: str | None = None, title: str | None = None, print_table: bool = True
    ):
        self.output_dir, self.title, self.print_table = output_dir, title, print_table

    def on_evaluation_result(self, trainer, pl_module, result: EvaluationResult) -> None:
        out = Path(self.output_dir) if self.output_dir else run_directory(trainer)
        if not trainer.is_global_zero or not (result.table or result.model_metrics):
            return
        out.mkdir(parents=True, exist_ok=True)
        rows = result.table
        write_csv(out / "evaluation.csv", rows)
        header = {
            "checkpoint": result.checkpoint,
            "test_accuracy": result.accuracy,
            "model_metrics": result.model_metrics,
        }
        (out / "evaluation.json").write_text(json.dumps({**header, "rows": rows}, indent=2))
        if result.per_image:
            torch.save(result.per_image, out / "per_image.pt")
        summary = (
            "" if result.accuracy is None else f"Model test accuracy: {result.accuracy:.4f}.\n\n"
        )
        if result.model_metrics:
            summary += (
                "Model: "
                + ", ".join(f"{k} {v:.4f}" for k, v in result.model_metrics.items())
                + ".\n\n"
            )
        table = markdown_table(rows, self.title) if rows else f"### {self.title or 'evaluation'}\n"
        (out / "evaluation.md").write_text(table + "\n" + summary)
        if self.print_table:
            print(
                "\n"
                + table
                + summary
                + f"written: {out / 'evaluation.csv'}, {out / 'evaluation.md'}"
            )
