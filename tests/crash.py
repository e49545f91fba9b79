"""A callback that kills its own process with SIGKILL at a given training batch, once (a marker file
remembers it), so a test can crash a fit mid-epoch and rerun the very same command."""

import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillOnce(Callback):
    def __init__(self, epoch: int, batch: int, marker: str):
        self.epoch, self.batch, self.marker = epoch, batch, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (
            trainer.current_epoch == self.epoch
            and batch_idx == self.batch
            and not self.marker.exists()
        ):
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
