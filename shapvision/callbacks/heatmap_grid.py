"""Writes the methods' heatmaps side by side for the first test images: PNG and TensorBoard, rank 0."""

from pathlib import Path

from shapvision.callbacks.run_records import run_directory
from shapvision.explain.plots import method_grid_figure
from shapvision.modules.evaluation_core import EvaluationResult, EvaluationResultCallback


class HeatmapGridWriter(EvaluationResultCallback):
    def __init__(self, output_dir: str | None = None, filename: str = "heatmaps.png"):
        self.output_dir, self.filename = output_dir, filename

    def on_evaluation_result(self, trainer, pl_module, result: EvaluationResult) -> None:
        out = Path(self.output_dir) if self.output_dir else run_directory(trainer)
        if not trainer.is_global_zero or not result.examples:
            return
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        figure = method_grid_figure(result.examples, names)
        out.mkdir(parents=True, exist_ok=True)
        figure.savefig(out / self.filename, dpi=110, bbox_inches="tight")
        experiment = getattr(pl_module.logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure("test/heatmaps", figure, global_step=pl_module.global_step)
