"""Runs that do not collide and that resume: what both LightningCLIs of the suite share.

- ``--run_id ID`` puts a run in its own directory: ``ID`` is appended to the trainer's
  ``default_root_dir``, to every ``ModelCheckpoint`` ``dirpath``, and becomes the logger's version,
  so two array tasks of one experiment never overwrite each other; the resolved config is saved
  there. ``--run_id slurm`` takes it from the job (``job<SLURM_JOB_ID>``, or
  ``job<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>`` for an array task): a requeued job keeps its id,
  so it finds its HPC checkpoint (``default_root_dir/hpc_ckpt_*.ckpt``, which Lightning resumes from
  by itself when no ``ckpt_path`` is given). Under SLURM every trainer gets ``SlurmRequeue``, which
  saves that checkpoint between two steps on ``SIGUSR1`` and requeues the job.
- ``--resume true`` (``fit``) resumes from the run's ``last.ckpt`` (the ``ModelCheckpoint`` with
  ``save_last``) when one exists, and starts fresh otherwise; without it a run never resumes by
  accident. It stands aside for an explicit ``--ckpt_path`` and for a requeued SLURM job's HPC
  checkpoint. A ``last.ckpt`` whose model, data or objective differ from the config is refused.
"""

import logging
import os
import sys
from pathlib import Path

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.cli import LightningCLI

from shapvision.callbacks.run_records import DataCounters, TestMetricsWriter
from shapvision.callbacks.slurm_requeue import SlurmRequeue
from shapvision.errors import (
    ConfigurationError,
    ConstructorFailed,
    exit_with_message,
    report_constructor_errors,
)
from shapvision.local_files import local_path, read_checkpoint
from shapvision.modules.base import ShapleyModule
from shapvision.modules.identity import checkpoint_kind, shapvision_identity

RUN_ID_SLURM = "slurm"
CHECKPOINT_CALLBACK = "lightning.pytorch.callbacks.ModelCheckpoint"


def slurm_run_id() -> str:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"job{array_job}_{task}"
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        raise ConfigurationError(
            "--run_id slurm is for jobs under SLURM, but SLURM_JOB_ID is not set"
        )
    return f"job{job}"


def checkpoint_dirpaths(trainer_config) -> list:
    """The ``init_args`` of every ModelCheckpoint in the trainer's callbacks (Namespaces, editable)."""
    found = []
    for callback in trainer_config.get("callbacks") or []:
        class_path = getattr(callback, "class_path", None)
        if class_path and class_path.endswith("ModelCheckpoint"):
            found.append(callback.init_args)
    return found


LINKED_FROM_DATA = {"num_classes": "data.num_classes", "img_size": "data.init_args.img_size"}


def identity_differences(checkpoint: dict, model, datamodule) -> list[str]:
    """The identity options (backbone, classes, image size, objective, ...) in which a checkpoint and
    the configured model differ, each as "option: checkpoint A, config B"."""
    saved = checkpoint.get("shapvision_identity", {})
    current = shapvision_identity(model, datamodule)
    differences = []
    for option, value in current.items():
        if option in ("module", "data") or option not in saved or saved[option] == value:
            continue
        where = f"model.init_args.{option}"
        if option in LINKED_FROM_DATA:
            where += f", linked from {LINKED_FROM_DATA[option]}"
        differences.append(f"{option} ({where}): checkpoint {saved[option]}, config {value}")
    return differences


def check_resumable(path: Path, model, datamodule) -> None:
    """Refuse a ``last.ckpt`` of another model, data or objective than the config's."""
    checkpoint = read_checkpoint(path, "--resume")
    differences = identity_differences(checkpoint, model, datamodule)
    saved_data = checkpoint.get("shapvision_identity", {}).get("data")
    current_data = shapvision_identity(model, datamodule)["data"]
    if saved_data and saved_data != current_data:
        differences.insert(0, f"data: checkpoint {saved_data}, config {current_data}")
    if differences:
        raise ConfigurationError(
            f"--resume: {path} was trained with another setup ({'; '.join(differences)}). Resuming "
            "would change what the checkpoint means: restore those options, or start a fresh run "
            "(a new --run_id, or without --resume)"
        )


def check_checkpoint(path: str, model, datamodule) -> None:
    """``--ckpt_path`` must exist and hold this model: its kind, classes, image size, backbone, ...
    Checked before any compute, instead of a state_dict size mismatch deep in Lightning."""
    file = local_path(path)
    checkpoint = read_checkpoint(file, "--ckpt_path")
    kind, model_kind = checkpoint.get("shapvision_module"), checkpoint_kind(type(model))
    if kind is None:
        raise ConfigurationError(
            f"--ckpt_path {file} was not written by a shapvision module (no shapvision_module "
            f"entry); the model is {model_kind}"
        )
    if kind != model_kind:
        raise ConfigurationError(
            f"--ckpt_path {file} is a {kind} checkpoint, but the model (--model) is {model_kind}: "
            f"use the {kind} run's config, or a {model_kind} checkpoint"
        )
    differences = identity_differences(checkpoint, model, datamodule)
    if differences:
        raise ConfigurationError(
            f"--ckpt_path {file} does not fit the configured {model_kind}: {'; '.join(differences)}. "
            "Use the config the checkpoint was trained with, or a checkpoint of this setup"
        )


class LightningTipFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


# one instance: adding it again (every launch in one process) is a no-op for logging
TIP_FILTER = LightningTipFilter()


def silence_lightning_tips() -> None:
    """Lightning advertises its cloud products at every fit (a "Tip" per logger and checkpoint)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(TIP_FILTER)


class RunAwareCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--run_id",
            type=str | None,
            default=None,
            help="a run directory of its own under every output path ('slurm': from the job id)",
        )
        parser.add_argument(
            "--resume",
            type=bool,
            default=False,
            help="fit: resume from the run's last.ckpt when it exists (after a crash)",
        )

    def _place_run_directory(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_id = config.get("run_id")
        if not run_id:
            return
        if run_id == RUN_ID_SLURM:
            run_id = slurm_run_id()
            config.run_id = run_id
        trainer = config.trainer
        trainer.default_root_dir = str(Path(trainer.get("default_root_dir") or ".") / run_id)
        for init_args in checkpoint_dirpaths(trainer):
            if init_args.get("dirpath"):
                init_args.dirpath = str(Path(init_args.dirpath) / run_id)
        logger = trainer.get("logger")
        if getattr(logger, "init_args", None) is not None:
            logger.init_args.version = run_id

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.extend([TestMetricsWriter(), DataCounters()])
        if SLURMEnvironment.detect():
            trainer.callbacks.append(SlurmRequeue())
        return trainer

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model options; the checkpoint is used for its weights only."""

    def before_instantiate_classes(self) -> None:
        self._place_run_directory()
        # ahead of Lightning's own instantiators (prepend), so they build every module of the suite
        for base in (L.LightningModule, L.LightningDataModule):
            self.parser.add_instantiator(report_constructor_errors, base, prepend=True)

    def parse_arguments(self, parser, args) -> None:
        # the CLIs always pass their arguments (sys.argv rewritten for `shapvision explain`), which
        # Lightning's own parse_arguments warns about as if a user mixed both
        self.config = parser.parse_args(args)

    @classmethod
    def launch(cls, datamodule_class, args: list[str] | None = None):
        """The suite's CLI settings: every ShapleyModule and every ``datamodule_class`` in subclass
        mode. A configuration error, or any error of a module's or data module's constructor, ends
        the command with ``error: <message>`` and exit status 2."""
        silence_lightning_tips()
        try:
            return cls(
                ShapleyModule,
                datamodule_class,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                args=sys.argv[1:] if args is None else args,
                auto_configure_optimizers=False,
            )
        except (ConstructorFailed, ConfigurationError) as error:
            exit_with_message(error)

    def _check_ckpt_path(self) -> None:
        path = self.config_init[self.subcommand].get("ckpt_path")
        if path and path not in ("last", "best", "hpc", "registry"):
            check_checkpoint(path, self.model, self.datamodule)

    def before_validate(self) -> None:
        self._check_ckpt_path()

    def before_test(self) -> None:
        self._check_ckpt_path()

    def before_predict(self) -> None:
        self._check_ckpt_path()

    def before_fit(self) -> None:
        self._check_ckpt_path()
        config = self.config_init[self.subcommand]
        if not config.get("resume"):
            return
        if config.get("ckpt_path"):
            raise ConfigurationError(
                "--resume and --ckpt_path both name a checkpoint to start from; pass only one"
            )
        if os.environ.get("SLURM_JOB_ID") and list(
            Path(self.trainer.default_root_dir).glob("hpc_ckpt_*.ckpt")
        ):
            return  # a requeued job: Lightning resumes from its HPC checkpoint
        callback = self.trainer.checkpoint_callback
        if callback is None or not callback.save_last or callback.dirpath is None:
            raise ConfigurationError(
                "--resume needs a ModelCheckpoint with save_last: true and a dirpath in the trainer callbacks"
            )
        last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        if not last.is_file():
            print(f"--resume: no {last} yet; starting a fresh run")
            return
        check_resumable(last, self.model, self.datamodule)
        print(f"--resume: resuming from {last}")
        config["ckpt_path"] = str(last)
