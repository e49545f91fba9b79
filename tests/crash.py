"""Test callbacks. KillOnce kills its own process with SIGKILL at a given training batch, once (a marker file
remembers it), so a test can crash a fit mid-epoch and rerun the very same command. With ``save_to``
it first saves a checkpoint after that batch, as ``SlurmRequeue`` does on a preemption signal.
SlowSteps makes a job slow enough to be signalled in mid-training."""

import os
import signal
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillOnce(Callback):
    def __init__(self, epoch: int, batch: int, marker: str, save_to: str | None = None):
        self.epoch, self.batch, self.marker, self.save_to = epoch, batch, Path(marker), save_to

    def _due(self, trainer, batch_idx: int) -> bool:
        return (
            trainer.current_epoch == self.epoch
            and batch_idx == self.batch
            and not self.marker.exists()
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.save_to is None and self._due(trainer, batch_idx):
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.save_to is not None and self._due(trainer, batch_idx):
            trainer.save_checkpoint(self.save_to)
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


class SlowSteps(Callback):
    """Each training step takes ``seconds`` longer, and rank 0 writes ``epoch batch`` to ``progress``
    after each, so a test can signal a job at a known point of its training."""

    def __init__(self, seconds: float, progress: str):
        self.seconds, self.progress = seconds, Path(progress)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            self.progress.write_text(f"{trainer.current_epoch} {batch_idx}")
        time.sleep(self.seconds)
