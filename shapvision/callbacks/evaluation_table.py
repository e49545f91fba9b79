"""Writes an evaluation run's table: ``evaluation.csv`` and ``evaluation.md`` (a row per method), rank 0."""

import csv
import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback

FORMAT = "{:.4f}"


def markdown_table(rows: list[dict], title: str | None = None) -> str:
    columns = [c for c in rows[0] if c != "library"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            FORMAT.format(row[c]) if isinstance(row.get(c), float) else str(row.get(c, ""))
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
