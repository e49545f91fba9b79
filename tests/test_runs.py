"""Runs that do not collide and that resume (`--run_id`, `--resume`): a fit killed with SIGKILL
mid-epoch and rerun with --resume ends where the uninterrupted run ends, and so does one resumed from
a checkpoint saved in mid-epoch (as on a SLURM preemption); resuming under a changed
model is refused; two array tasks write to different directories."""

import os

import pytest
import torch

from .helpers import TINY_BACKBONE, final_state, fit_config, shapvision


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
