"""Preemption under SLURM: on the warning signal, save a checkpoint between two steps and requeue.

Lightning's own handler (``SLURMEnvironment(auto_requeue=True)``) saves the HPC checkpoint inside the
signal handler, wherever the signal lands: in the middle of an optimizer step (weights half updated),
or, under DDP, on one rank while the other waits in a gradient all-reduce (the save is a collective:
the job stalls until it is killed, Lightning #21406). This callback replaces that handler: the signal
only sets a flag; after the current batch every rank learns whether any rank was signalled, they save
``default_root_dir/hpc_ckpt_<n>.ckpt`` together (a checkpoint Lightning resumes from exactly: the
requeued job, same id and directory, no ``ckpt_path``), and rank 0 runs ``scontrol requeue``.
"""

import os
import signal
import subprocess
import time

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn


class SlurmRequeue(Callback):
    def __init__(self, requeue_signal: signal.Signals = signal.SIGUSR1):
        self.requeue_signal = requeue_signal
        self.signalled = False
        self._previous_handler = None

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True

    def on_train_start(self, trainer, pl_module) -> None:
        # After Lightning registered its handler (trainer._run), so this one replaces it.
        self._previous_handler = signal.signal(self.requeue_signal, self._on_signal)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._previous_handler is not None:
            signal.signal(self.requeue_signal, self._previous_handler)
            self._previous_handler = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.signalled, all=False):
            return
        path = _CheckpointConnector.hpc_save_path(trainer.default_root_dir)
        rank_zero_info(f"{signal.Signals(self.requeue_signal).name} received: saving {path}")
        trainer.save_checkpoint(path)
        trainer.strategy.barrier("slurm_requeue")
        requeued = self._requeue(path) if trainer.is_global_zero else False
        if not trainer.strategy.broadcast(requeued, src=0):
            self.signalled = False
            return
        # SLURM ends this job now; training further would only move away from the checkpoint.
        while True:
            time.sleep(1)

    @staticmethod
    def _requeue(path: str) -> bool:
        job = os.environ["SLURM_JOB_ID"]
        result = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, check=False
        )
        if result.returncode:
            rank_zero_warn(
                f"scontrol requeue {job} failed ({result.stderr.strip()}); training goes on until the "
                f"job ends, and {path} can be resumed by hand"
            )
            return False
        rank_zero_info(f"job {job} requeued; it resumes from {path}")
        return True
