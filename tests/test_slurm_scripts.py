"""sbatch scripts whose #SBATCH lines match the trainer options, the committed templates in
experiments/slurm/, and a dependent pipeline submission (checked against a recording stand-in for
sbatch; the same commands on a real Slurm are tests/test_slurm_cluster.py, `make test-slurm`)."""

import os
import shlex
from pathlib import Path

import pytest

from shapvision_drivers.slurm import parse_sbatch_lines, sbatch_script, templates

from .helpers import REPOSITORY, run_module


def trainer_options(script: str) -> dict[str, str]:
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    argv = shlex.split(srun)
    return {
        argv[i][len("--trainer.") :]: argv[i + 1]
        for i in range(len(argv) - 1)
        if argv[i].startswith("--trainer.")
    }


@pytest.mark.parametrize("nodes, gpus, tasks", [(2, 8, None), (4, 0, 2), (1, 1, None)])
def test_sbatch_resources_parse_back_to_the_trainer_options(nodes, gpus, tasks):
    script = sbatch_script(
        "fit",
        ("experiments/imagenet/trainer.yaml", "experiments/imagenet/svo_vit.yaml"),
        job_name="svo",
        nodes=nodes,
        gpus_per_node=gpus,
        tasks_per_node=tasks,
        cpus_per_task=10,
        time="48:00:00",
        partition="gpu",
        account="proj",
    )
    sbatch, trainer = parse_sbatch_lines(script), trainer_options(script)
    assert sbatch["nodes"] == trainer["num_nodes"] == str(nodes)
    assert sbatch["ntasks-per-node"] == trainer["devices"]
    assert sbatch.get("gpus-per-node", "0") == str(gpus)
    assert (trainer.get("accelerator") == "cpu") == (gpus == 0)
    assert (trainer.get("strategy") == "ddp") == (nodes * int(trainer["devices"]) > 1)
    assert (
        sbatch["signal"] == "SIGUSR1@90" and "requeue" in sbatch and sbatch["open-mode"] == "append"
    )
    assert (
        sbatch["partition"] == "gpu" and sbatch["account"] == "proj" and sbatch["job-name"] == "svo"
    )
    assert "--run_id slurm" in script
    with pytest.raises(ValueError, match="--ntasks-per-node 2 != --gpus-per-node 4"):
        sbatch_script(
            "fit",
            ("a.yaml",),
            job_name="x",
            nodes=1,
            gpus_per_node=4,
            tasks_per_node=2,
            cpus_per_task=1,
            time="1:00:00",
            partition=None,
            account=None,
        )


def fake_sbatch(tmp_path, first_job: int):
    """An ``sbatch`` on PATH that logs its arguments and answers job ids first_job, first_job + 1, ..."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    fake = bin_dir / "sbatch"
    fake.write_text(
        "#!/bin/bash\n"
        f"n=$(( $(wc -l < {log} 2>/dev/null || echo 0) + {first_job} ))\n"
        f'echo "$n $*" >> {log}\n'
        'echo "$n;cluster"\n'
    )
    fake.chmod(0o755)
    return log, {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_pipeline_submits_dependent_jobs_that_read_the_previous_run(tmp_path):
    log, env = fake_sbatch(tmp_path, first_job=101)
    run_module(
        "shapvision_drivers.slurm",
        *[
            "pipeline",
            "vitshapley-digits",
            "--submit",
            "--gpus-per-node",
            "0",
            "--out",
            str(tmp_path / "scripts"),
            "--",
            "--trainer.max_epochs",
            "1",
        ],
        cwd=Path.cwd(),
        env=env,
        timeout=120,
    )
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["101", "102", "103"]
    assert "--dependency" not in calls[0]
    assert "--dependency=afterok:101" in calls[1] and "--dependency=afterok:102" in calls[2]
    surrogate = (tmp_path / "scripts" / "vitshapley-digits-surrogate.sbatch").read_text()
    explainer = (tmp_path / "scripts" / "vitshapley-digits-explainer.sbatch").read_text()
    assert (
        "--model.init_args.classifier_checkpoint runs/digits/classifier/job101/best.ckpt"
        in surrogate
    )
    assert (
        "--model.init_args.surrogate_checkpoint runs/digits/surrogate/job102/best.ckpt" in explainer
    )
    assert surrogate.rstrip().endswith('--trainer.max_epochs 1 "$@"')  # sbatch's own extras last


def test_a_second_explainer_follows_the_surrogate_not_the_stage_before_it(tmp_path):
    log, env = fake_sbatch(tmp_path, first_job=201)
    arguments = ["pipeline", "simshap-cifar10", "--submit", "--out", str(tmp_path / "scripts")]
    run_module("shapvision_drivers.slurm", *arguments, cwd=Path.cwd(), env=env, timeout=120)
    calls = log.read_text().splitlines()
    # classifier 201, surrogate 202, FastSHAP 203 and SimSHAP 204 both after the surrogate
    assert "--dependency=afterok:202" in calls[2] and "--dependency=afterok:202" in calls[3]
    simshap = (tmp_path / "scripts" / "simshap-cifar10-explainer_simshap.sbatch").read_text()
    assert (
        "--model.init_args.surrogate_checkpoint runs/cifar10/surrogate/job202/best.ckpt" in simshap
    )


def test_a_stage_that_follows_a_later_stage_is_refused(tmp_path):
    from shapvision_drivers.slurm import read_pipelines

    path = tmp_path / "pipelines.yaml"
    path.write_text(
        "p:\n- name: a\n  configs: [x.yaml]\n- name: b\n  after: c\n  configs: [y.yaml]\n"
        "- name: c\n  configs: [z.yaml]\n"
    )
    with pytest.raises(
        ValueError, match="stage 'b' follows 'c', which is not one of the stages before it"
    ):
        read_pipelines(path)


def test_the_committed_templates_are_the_generators_and_match_their_trainers():
    generated = templates()
    committed = {
        p.name: p.read_text() for p in (REPOSITORY / "experiments" / "slurm").glob("*.sbatch")
    }
    assert committed == generated, (
        "experiments/slurm/ is stale: python -m shapvision_drivers.slurm templates"
    )
    assert "imagenet-svo_vit.sbatch" in generated and "cc3m-svo_clip.sbatch" in generated
    for name, script in generated.items():
        sbatch, trainer = parse_sbatch_lines(script), trainer_options(script)
        assert sbatch["nodes"] == trainer["num_nodes"], name
        assert sbatch["ntasks-per-node"] == trainer["devices"], name
        assert sbatch.get("gpus-per-node", trainer["devices"]) == trainer["devices"], name
        assert (REPOSITORY / sbatch["output"]).parent.is_dir(), name  # SLURM cannot create it
