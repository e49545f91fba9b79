"""``shapvision predict`` output: per image, the raw Shapley values (``.npy``, (N, K)) and a heatmap
overlay PNG of the model's predicted class.

Add it to the trainer's callbacks. Files are named by dataset index (``000003``), followed by the
source file's name when the predict dataset has ``paths`` (``ImageFolderDataModule(predict_dir=...)``),
so names are unique and stable whichever rank wrote them. ``predict_step`` returns
``{"values": (B, N, K), "predicted": (B,)}``.
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
        rows = zip(
            images,
            ids.tolist(),
            prediction["values"],
            prediction["predicted"].tolist(),
            strict=True,
        )
        for image, index, values, predicted in rows:
            stem = f"{index:06d}" + (f"_{Path(paths[index]).stem}" if paths is not None else "")
            np.save(self.output_dir / f"{stem}.npy", values.float().cpu().numpy())
            if self.overlays:
                figure = overlay_figure(
                    image.cpu(),
                    values[:, predicted].cpu(),
                    pl_module.grid_size,
                    f"{stem}: predicted class {predicted}",
                )
                figure.savefig(self.output_dir / f"{stem}.png", dpi=100, bbox_inches="tight")
            self.written += 1

    def on_predict_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            print(f"wrote {self.written} Shapley maps (.npy + .png) to {self.output_dir}")
