"""Per-image attributions of an evaluation run, on request: ``<method>/<dataset index>.npy`` (N,) per patch."""

from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback


class AttributionWriter(Callback):
    def __init__(self, output_dir: str):
        self.output_dir = Path(output_dir)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not outputs:
            return
        for method, values in outputs["attributions"].items():
            folder = self.output_dir / method
            folder.mkdir(parents=True, exist_ok=True)
            for index, row in zip(
                outputs["index"].tolist(), values.detach().float().cpu().numpy(), strict=True
            ):
                np.save(folder / f"{index:06d}.npy", row)
