"""``shapvision predict`` output: per image, the raw Shapley values (``.npy``, (N, K)) and a heatmap overlay PNG.

Add it to the trainer's callbacks; images are named after their source file when the predict dataset
has ``paths`` (``ImageFolderDataModule(predict_dir=...)``), else by running index.
"""

from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from shapvision.explain.plots import overlay_figure


class ShapleyPredictionWriter(BasePredictionWriter):
    def __init__(self, output_dir: str, overlays: bool = True):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overlays = overlays
        self.written = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        if batch is None:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        images, ids = batch["image"], batch["index"]
        paths = getattr(trainer.predict_dataloaders.dataset, "paths", None)
        for image, index, values in zip(images, ids.tolist(), prediction, strict=True):
            stem = Path(paths[index]).stem if paths is not None else f"{index:06d}"
            np.save(self.output_dir / f"{stem}.npy", values.float().cpu().numpy())
            if self.overlays:
                target = int(values.sum(0).argmax())
                figure = overlay_figure(
                    image.cpu(),
                    values[:, target].cpu(),
                    pl_module.grid_size,
                    f"{stem}: class {target}",
                )
                figure.savefig(self.output_dir / f"{stem}.png", dpi=100, bbox_inches="tight")
            self.written += 1

    def on_predict_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            print(f"wrote {self.written} Shapley maps (.npy + .png) to {self.output_dir}")
