"""What every run of the CLIs records beside its checkpoints (the CLIs add these callbacks themselves):
the synced test metrics as ``test_metrics.json``, and the data module's counters (corrupt images
skipped, captions truncated) as logged metrics, with the epoch handed to streaming data."""

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


def run_directory(trainer) -> Path:
    """The run directory; a collective under DDP (``trainer.log_dir`` broadcasts), so call it on every rank."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class TestMetricsWriter(Callback):
    """``test_metrics.json`` in the run directory (rank 0): every scalar ``test/`` metric."""

    def on_test_end(self, trainer, pl_module) -> None:
        run_dir = run_directory(trainer)
        if not trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("test/") and v.numel() == 1
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))


class DataCounters(Callback):
    """Streaming data (webdataset shards) reshuffles per epoch: its workers read the epoch when they
    start (``datamodule.set_epoch``). Images skipped as unreadable and captions truncated to the
    context are logged per epoch (``data/skipped_images``, ``data/truncated_captions``)."""

    COUNTERS = {"num_skipped": "data/skipped_images", "num_truncated": "data/truncated_captions"}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        set_epoch = getattr(trainer.datamodule, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        for attribute, name in self.COUNTERS.items():
            value = getattr(trainer.datamodule, attribute, None)
            if value is not None:
                pl_module.log(name, float(value), rank_zero_only=True)
