"""``shapvision predict`` / ``shapvision explain`` output, per image: the Shapley values (``.npy``,
(N, K): a value per patch and class, K = 1 for a caption), the top classes with their scores
(``.json``) and a heatmap overlay of the top class (``.png``) whose title names the top classes.

Files are named by dataset index (``000003``), followed by the source file's name when the predict
dataset has ``paths``, so names are unique and stable whichever rank wrote them. ``predict_step``
returns ``{"values": (B, N, K), "scores": (B, K)}``. Class names come from the data module
(``ExplainImagesDataModule``: from the checkpoint).
"""

import json
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from shapvision.explain.plots import overlay_figure


def top_classes(scores, class_names: list[str] | None, k: int) -> list[dict]:
    """The ``k`` best-scored classes: ``{"index", "class", "score"}``, best first."""
    order = scores.float().argsort(descending=True)[:k].tolist()
    return [
        {"index": c, "class": class_names[c] if class_names else str(c), "score": float(scores[c])}
        for c in order
    ]


def overlay_title(stem: str, top: list[dict], caption: str | None = None) -> str:
    if caption is not None:
        return f"{stem}: {caption!r}, score {top[0]['score']:.3g}"
    return f"{stem}: " + ", ".join(f"{t['class']} ({t['score']:.2f})" for t in top)


class ShapleyPredictionWriter(BasePredictionWriter):
    def __init__(self, output_dir: str, overlays: bool = True, top_k: int = 3):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overlays, self.top_k = overlays, top_k
        self.written = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        if batch is None:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        paths = getattr(trainer.predict_dataloaders.dataset, "paths", None)
        names = getattr(trainer.datamodule, "class_names", None)
        caption = getattr(pl_module, "caption", None)
        if names is not None and len(names) != prediction["scores"].shape[-1]:
            names = None  # another dataset's classes do not name these outputs: indices instead
        for row, (image, index) in enumerate(
            zip(batch["image"], batch["index"].tolist(), strict=True)
        ):
            stem = f"{index:06d}" + (f"_{Path(paths[index]).stem}" if paths is not None else "")
            values = prediction["values"][row].float().cpu()
            np.save(self.output_dir / f"{stem}.npy", values.numpy())
            scores = prediction["scores"][row].cpu()
            top = top_classes(scores, names if caption is None else None, self.top_k)
            record = {"file": str(paths[index]) if paths is not None else None, "top": top}
            if caption is not None:
                record["caption"] = caption
            (self.output_dir / f"{stem}.json").write_text(json.dumps(record, indent=1))
            if self.overlays:
                figure = overlay_figure(
                    image.cpu(),
                    values[:, top[0]["index"]],
                    pl_module.grid_size,
                    overlay_title(stem, top, caption),
                )
                figure.savefig(self.output_dir / f"{stem}.png", dpi=100, bbox_inches="tight")
            self.written += 1

    def on_predict_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        print(f"wrote {self.written} Shapley maps (.npy, .json, .png) to {self.output_dir}")
        skipped = getattr(trainer.datamodule, "num_skipped", 0)
        if skipped:
            print(f"skipped {skipped} unreadable image file(s), named in the warnings above")
