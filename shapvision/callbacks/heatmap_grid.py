"""Writes the methods' heatmaps side by side for the first test images: PNG and TensorBoard, rank 0."""

from pathlib import Path

from lightning.pytorch.callbacks import Callback

from shapvision.explain.plots import method_grid_figure


class HeatmapGridWriter(Callback):
    def __init__(self, output_dir: str | None = None, filename: str = "heatmaps.png"):
        self.output_dir, self.filename = output_dir, filename

    def on_test_end(self, trainer, pl_module) -> None:
        out = Path(self.output_dir) if self.output_dir else pl_module.run_dir()
        if not trainer.is_global_zero or not pl_module.examples:
            return
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        figure = method_grid_figure(pl_module.examples, names)
        out.mkdir(parents=True, exist_ok=True)
        figure.savefig(out / self.filename, dpi=110, bbox_inches="tight")
        experiment = getattr(pl_module.logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure("test/heatmaps", figure, global_step=pl_module.global_step)
