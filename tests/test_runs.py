"""Runs that do not collide and that resume (`--run_id`, `--resume`): a fit killed with SIGKILL
mid-epoch and rerun with --resume ends where the uninterrupted run ends, and so does one resumed from
a checkpoint saved in mid-epoch (as on a SLURM preemption); resuming under a changed
model is refused; two array tasks write to different directories."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from .test_pipeline import TINY_BACKBONE

ROOT = Path(__file__).resolve().parents[1]


def fit_config(folder: Path, callbacks=(), **model_options) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 3,
            "limit_train_batches": 6,
            "limit_val_batches": 1,
            "limit_test_batches": 2,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(folder / "root"),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(folder / "logs"), "name": "classifier"},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(folder / "checkpoints"),
                        "filename": "best",
                        "save_last": True,
                        "enable_version_counter": False,
                    },
                },
                *callbacks,
            ],
        },
        "data": {
            "class_path": "shapvision.data.DigitsDataModule",
            "init_args": {"img_size": 32, "batch_size": 32, "eval_batch_size": 64},
        },
        "model": {
            "class_path": "shapvision.modules.Classifier",
            "init_args": {
                "backbone": "vit_tiny_patch16_224",
                "backbone_kwargs": TINY_BACKBONE,
                "lr": 1e-3,
                **model_options,
            },
        },
    }
    path = folder / f"config_{len(list(folder.glob('config_*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def shapvision(*args, check=True, cli="shapvision.cli"):
    """A CLI run in a process of its own (``cli``: the module, e.g. ``shapvision.clip_cli``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", cli, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def final_state(folder: Path, run_id: str) -> tuple[dict, dict]:
    """The weights of the run's last.ckpt and its last validation metrics (metrics.csv)."""
    last = folder / "checkpoints" / run_id / "last.ckpt"
    weights = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    with open(folder / "logs" / "classifier" / run_id / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/acc")]
    return weights, {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


def test_a_fit_killed_or_preempted_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    config = fit_config(tmp_path)
    shapvision("fit", "--config", config, "--run_id", "straight")
    kill = {
        "class_path": "tests.crash.KillOnce",
        "init_args": {"epoch": 1, "batch": 3, "marker": str(tmp_path / "killed")},
    }
    crashing = fit_config(tmp_path, callbacks=[kill])
    first = shapvision(
        "fit", "--config", crashing, "--run_id", "crashed", "--resume", "true", check=False
    )
    assert first.returncode == -9 and (tmp_path / "killed").exists()  # SIGKILL in epoch 1
    saved = torch.load(tmp_path / "checkpoints" / "crashed" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 0  # the end of epoch 0 was saved, epoch 1 was lost
    again = shapvision("fit", "--config", crashing, "--run_id", "crashed", "--resume", "true")
    assert "--resume: resuming from" in again.stdout
    straight, straight_metrics = final_state(tmp_path, "straight")
    resumed, resumed_metrics = final_state(tmp_path, "crashed")
    for name, value in straight.items():
        assert torch.allclose(resumed[name], value, atol=1e-6), name
    assert resumed_metrics.keys() == straight_metrics.keys() and resumed_metrics
    assert resumed_metrics == pytest.approx(straight_metrics, abs=1e-6)

    # A checkpoint saved after batch 2 of epoch 1, as a preempted SLURM job's: the resumed epoch
    # trains on the rest of that epoch's shuffle with the same masks (ResumableSampler, the saved
    # random state), so it also ends where the uninterrupted run ends.
    mid_epoch = tmp_path / "mid_epoch.ckpt"
    kill = {
        "class_path": "tests.crash.KillOnce",
        "init_args": {
            "epoch": 1,
            "batch": 2,
            "marker": str(tmp_path / "killed_mid_epoch"),
            "save_to": str(mid_epoch),
        },
    }
    preempted = fit_config(tmp_path, callbacks=[kill])
    first = shapvision("fit", "--config", preempted, "--run_id", "preempted", check=False)
    assert first.returncode == -9 and mid_epoch.is_file()
    state = torch.load(mid_epoch, weights_only=False)
    assert state["epoch"] == 1 and state["DigitsDataModule"] == {"epoch": 1, "batches_trained": 3}
    shapvision("fit", "--config", preempted, "--run_id", "preempted", "--ckpt_path", mid_epoch)
    resumed, resumed_metrics = final_state(tmp_path, "preempted")
    for name, value in straight.items():
        assert torch.allclose(resumed[name], value, atol=1e-6), name
    assert resumed_metrics == pytest.approx(straight_metrics, abs=1e-6)


@pytest.mark.slow  # four CLI runs: `make test-slow`
def test_resume_refuses_a_changed_model_and_array_tasks_get_their_own_directories(
    tmp_path, monkeypatch
):
    shapvision(
        "fit", "--config", fit_config(tmp_path), "--run_id", "run", "--trainer.max_epochs", "1"
    )
    changed = fit_config(tmp_path, backbone_kwargs={**TINY_BACKBONE, "depth": 2})
    result = shapvision(
        "fit", "--config", changed, "--run_id", "run", "--resume", "true", check=False
    )
    assert result.returncode != 0
    assert (
        "was trained with another setup (backbone_kwargs (model.init_args.backbone_kwargs): checkpoint"
        in result.stderr
    )
    for task in ("0", "1"):
        env = {"SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "70", "SLURM_ARRAY_TASK_ID": task}
        monkeypatch.setattr(os, "environ", {**os.environ, **env})
        shapvision(
            "fit",
            "--config",
            fit_config(tmp_path),
            "--run_id",
            "slurm",
            "--trainer.max_epochs",
            "1",
        )
    for task in ("0", "1"):
        run = f"job70_{task}"
        assert (tmp_path / "checkpoints" / run / "last.ckpt").is_file()
        assert (tmp_path / "logs" / "classifier" / run / "config.yaml").is_file()
