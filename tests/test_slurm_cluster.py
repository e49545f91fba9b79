"""``make test-slurm``: the project's own sbatch scripts on a real Slurm (a controller and two nodes on
this machine, tests/slurm_cluster.py), on CPU with a tiny digits classifier:

- a 2-node x 1-task DDP fit and test give the weights and metrics of a 1-process run with the same
  global batch (rank r of the 2 trains on samples r, r+2, ... of the epoch's shuffle, so a step sees
  the 1-process step's samples);
- a job signalled with SIGUSR1 in mid-epoch saves, is requeued, resumes from its HPC checkpoint and
  ends with the uninterrupted job's weights and metrics;
- the classifier -> surrogate -> explainer pipeline runs to the end as dependent jobs, each stage
  reading the checkpoint of the job before it.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from .helpers import REPOSITORY, final_state, fit_config, run_module, shapvision, working_copy
from .slurm_cluster import SlurmSetupError, job_state, local_slurm, wait_for, wait_for_job

pytestmark = pytest.mark.slurm
JOB_TIMEOUT = 240
# The slurm script options of every job here: CPU tasks, one per node, a time limit so that a broken
# setup ends instead of hanging.
CPU_TASKS = ["--gpus-per-node", "0", "--ntasks-per-node", "1", "--cpus-per-task", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("sbatch") is None:
        message = "Slurm is not installed: run `make test-slurm`, which installs it"
        if os.environ.get("SHAPVISION_REQUIRE_SLURM"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("slurm")
    with local_slurm(root) as env:
        yield {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}


def slurm_script(env, cwd: Path, *options: str) -> str:
    return run_module(
        "shapvision_drivers.slurm", "script", *options, cwd=cwd, env=env, timeout=60
    ).stdout


def sbatch(env, cwd: Path, script: str, name: str) -> str:
    path = cwd / f"{name}.sbatch"
    path.write_text(script)
    result = subprocess.run(
        ["sbatch", "--parsable", str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def slurm_log(cwd: Path, name: str, job: str) -> Path:
    return cwd / "runs" / "slurm" / f"{name}-{job}.out"


def assert_same_function_weights(weights: dict, expected: dict, atol: float) -> None:
    """Weights equal within ``atol``, except the attention key biases: softmax ignores them, so their
    gradient is zero up to rounding, which Adam's normalisation turns into steps of about the learning
    rate in either direction (rounding differs between one process and an all-reduce over two)."""
    for name, value in expected.items():
        actual = weights[name]
        if name.endswith("attn.qkv.bias"):
            third = len(value) // 3
            keep = torch.cat([torch.arange(third), torch.arange(2 * third, 3 * third)])
            actual, value = actual[keep], value[keep]
        assert torch.allclose(actual, value, atol=atol), name


def submit_and_wait(env, cwd: Path, name: str, *options: str, extra=()) -> str:
    script = slurm_script(
        env, cwd, *options, "--job-name", name, "--time", "00:04:00", "--", *extra
    )
    job = sbatch(env, cwd, script, name)
    wait_for_job(job, env, JOB_TIMEOUT, slurm_log(cwd, name, job))
    return job


def test_two_node_ddp_fit_and_test_equal_one_process_and_a_preempted_job_resumes(cluster, tmp_path):
    progress = tmp_path / "progress"
    slow = {
        "class_path": "tests.crash.SlowSteps",
        "init_args": {"seconds": 0.5, "progress": str(progress)},
    }
    config = fit_config(tmp_path, callbacks=[slow])
    two_nodes = ["--config", str(config), "--nodes", "2", *CPU_TASKS]
    half_batches = ["--data.init_args.batch_size", "16", "--data.init_args.eval_batch_size", "64"]

    # The reference: one process, the global batch (2 x 16 for training, 2 x 64 for evaluation).
    reference = fit_config(tmp_path)
    global_batch = ["--data.init_args.batch_size", "32", "--data.init_args.eval_batch_size", "128"]
    shapvision("fit", "--config", reference, "--run_id", "one_process", *global_batch)
    one_weights, one_metrics = final_state(tmp_path, "one_process")
    shapvision(
        "test",
        "--config",
        reference,
        "--run_id",
        "one_process_test",
        *global_batch,
        "--trainer.limit_test_batches",
        "1",
        "--ckpt_path",
        tmp_path / "checkpoints" / "one_process" / "last.ckpt",
    )

    ddp = submit_and_wait(cluster, tmp_path, "ddp-fit", *two_nodes, extra=half_batches)
    log = slurm_log(tmp_path, "ddp-fit", ddp).read_text()
    assert "MEMBER: 2/2" in log and "GLOBAL_RANK: 1" in log  # one DDP group over both nodes
    ddp_test = submit_and_wait(
        cluster,
        tmp_path,
        "ddp-test",
        *two_nodes,
        "--command",
        "test",
        extra=[
            *half_batches,
            "--trainer.limit_test_batches",
            "1",
            "--ckpt_path",
            str(tmp_path / "checkpoints" / f"job{ddp}" / "last.ckpt"),
        ],
    )
    ddp_weights, ddp_metrics = final_state(tmp_path, f"job{ddp}")
    assert_same_function_weights(ddp_weights, one_weights, atol=1e-5)
    assert ddp_metrics == pytest.approx(one_metrics, abs=1e-5) and ddp_metrics
    test_metrics = [
        json.loads((tmp_path / "logs" / "classifier" / run / "test_metrics.json").read_text())
        for run in ("one_process_test", f"job{ddp_test}")
    ]
    assert test_metrics[1] == pytest.approx(test_metrics[0], abs=1e-5) and test_metrics[0]

    # The same job, signalled in mid-epoch 1 as SLURM does before preempting it.
    progress.unlink()
    script = slurm_script(
        cluster,
        tmp_path,
        *two_nodes,
        "--job-name",
        "preempted",
        "--time",
        "00:04:00",
        "--",
        *half_batches,
    )
    job = sbatch(cluster, tmp_path, script, "preempted")
    job_log = slurm_log(tmp_path, "preempted", job)

    def in_epoch_one() -> bool:
        if job_state(job, cluster).get("JobState") not in {"RUNNING", "PENDING", "CONFIGURING"}:
            raise SlurmSetupError(
                f"job {job} ended before it could be signalled:\n{job_log.read_text()[-3000:]}"
            )
        return progress.is_file() and tuple(map(int, progress.read_text().split())) >= (1, 1)

    wait_for(in_epoch_one, JOB_TIMEOUT, f"job {job} to reach epoch 1")
    subprocess.run(["scancel", "--signal=USR1", job], env=cluster, check=True, timeout=30)
    wait_for(
        lambda: int(job_state(job, cluster).get("Restarts", 0)) >= 1,
        60,
        f"job {job} to be requeued",
    )
    state = wait_for_job(job, cluster, JOB_TIMEOUT, job_log)
    assert state["Restarts"] == "1"
    log = job_log.read_text()
    assert "SIGUSR1 received: saving" in log and f"job {job} requeued" in log
    hpc = tmp_path / "root" / f"job{job}" / "hpc_ckpt_1.ckpt"
    saved = torch.load(hpc, weights_only=False)
    assert saved["epoch"] == 1 and 0 < saved["DigitsDataModule"]["batches_trained"] < 6  # mid-epoch
    assert "Restoring states from the checkpoint path at " + str(hpc) in log
    resumed_weights, resumed_metrics = final_state(tmp_path, f"job{job}")
    for name, value in ddp_weights.items():
        assert torch.allclose(resumed_weights[name], value, atol=1e-6), name
    assert resumed_metrics == pytest.approx(ddp_metrics, abs=1e-6)


def test_the_pipeline_runs_as_dependent_jobs_each_reading_the_previous_checkpoint(
    cluster, tmp_path
):
    working_copy(tmp_path)
    tiny = [
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.enable_progress_bar",
        "false",
    ]
    result = run_module(
        "shapvision_drivers.slurm",
        *[
            "pipeline",
            "vitshapley-digits",
            "--nodes",
            "1",
            *CPU_TASKS,
            "--time",
            "00:04:00",
            "--submit",
            "--",
            *tiny,
        ],
        cwd=tmp_path,
        env=cluster,
        timeout=120,
    )
    # one line per stage: "<stage>: job <id> (<script>)"
    jobs = {
        line.split(": job ")[0]: line.split(": job ")[1].split()[0]
        for line in result.stdout.splitlines()
        if ": job " in line
    }
    assert list(jobs) == ["classifier", "surrogate", "explainer"]
    for stage, job in jobs.items():
        wait_for_job(
            job, cluster, JOB_TIMEOUT, slurm_log(tmp_path, f"vitshapley-digits-{stage}", job)
        )
    folders = {
        "classifier": "classifier",
        "surrogate": "surrogate",
        "explainer": "explainer_fastshap",
    }
    for stage, job in jobs.items():
        assert (tmp_path / "runs" / "digits" / folders[stage] / f"job{job}" / "best.ckpt").is_file()
    explainer = torch.load(
        tmp_path
        / "runs"
        / "digits"
        / "explainer_fastshap"
        / f"job{jobs['explainer']}"
        / "best.ckpt",
        weights_only=False,
    )
    assert explainer["hyper_parameters"]["surrogate_checkpoint"] == (
        f"runs/digits/surrogate/job{jobs['surrogate']}/best.ckpt"
    )
