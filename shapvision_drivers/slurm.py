"""SLURM submissions: sbatch scripts whose resources match the trainer, and dependent pipelines.

    python -m shapvision_drivers.slurm script --config experiments/imagenet/trainer.yaml \\
        --config experiments/imagenet/svo_vit.yaml --nodes 2 --gpus-per-node 8 --time 48:00:00 \\
        --partition gpu --account myproject -- --data.init_args.root /data/imagenet
    python -m shapvision_drivers.slurm pipeline vitshapley-imagenette --nodes 1 --gpus-per-node 4 \\
        --time 12:00:00 --submit -- --data.init_args.root /data/imagenette2

A script asks SLURM for ``--nodes`` x ``--ntasks-per-node`` tasks and passes the same numbers to the
trainer (``--trainer.num_nodes``, ``--trainer.devices``): both come from one set of options, so they
cannot disagree. Each job runs ``srun <cli> <command> ... --run_id slurm`` (its own run directory,
named by the job id, see ``shapvision.cli_runs``) with ``--signal=SIGUSR1@90 --requeue
--open-mode=append``: on the signal Lightning saves an HPC checkpoint and requeues, and the
requeued job (same id, same directory, no ``ckpt_path``) resumes from it.

A pipeline submits its stages as dependent jobs (``afterok``); each stage reads the previous stage's
checkpoint from the run directory that job writes (``<its ModelCheckpoint dirpath>/job<id>/best.ckpt``),
never from a fixed path. Without ``--submit`` the scripts are written and printed, not submitted.

``templates`` writes experiments/slurm/: one script per training stage of every experiment folder,
with that folder's usual resources, and one per seeds' table (one GPU); regenerate after changing a
config (a test checks they match).
"""

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from shapvision_drivers.passthrough import EXPERIMENTS

CLIS = {"shapvision": "shapvision.cli", "shapvision-clip": "shapvision.clip_cli"}
PIPELINES_FILE = EXPERIMENTS / "slurm" / "pipelines.yaml"
RESOURCES_FILE = EXPERIMENTS / "slurm" / "resources.yaml"


@dataclass(frozen=True)
class Stage:
    name: str
    configs: tuple[str, ...]
    previous_option: str | None = None  # the option that takes the previous stage's checkpoint
    cli: str = "shapvision"
    after: str | None = (
        None  # the stage it follows (default: the one before it), e.g. a second explainer
    )


def read_pipelines(path: Path = PIPELINES_FILE) -> dict[str, tuple[Stage, ...]]:
    """The pipelines of ``experiments/slurm/pipelines.yaml``: name -> its stages, in order."""
    pipelines = {}
    for name, stages in yaml.safe_load(path.read_text()).items():
        pipelines[name] = tuple(
            Stage(
                stage["name"],
                tuple(stage["configs"]),
                stage.get("previous_option"),
                stage.get("cli", "shapvision"),
                stage.get("after"),
            )
            for stage in stages
        )
        names = [stage.name for stage in pipelines[name]]
        for i, stage in enumerate(pipelines[name]):
            if stage.after is not None and stage.after not in names[:i]:
                raise ValueError(
                    f"{path}: pipeline {name!r} stage {stage.name!r} follows {stage.after!r}, "
                    f"which is not one of the stages before it ({names[:i]})"
                )
        unknown = {stage.cli for stage in pipelines[name]} - set(CLIS)
        if unknown:
            raise ValueError(f"{path}: pipeline {name!r} names unknown CLIs {sorted(unknown)}")
    return pipelines


PIPELINES = read_pipelines()
# The committed templates' resources per experiment folder, and the tables that get a script.
RESOURCES = yaml.safe_load(RESOURCES_FILE.read_text())
TEMPLATE_RESOURCES, SEED_TABLES = RESOURCES["folders"], tuple(RESOURCES["seed_tables"])
NOT_FIT_STAGES = ("trainer", "evaluation_", "demo_")
TEMPLATE_LOGS = (
    "experiments/slurm/logs"  # kept in git (empty): SLURM needs the folder at submission
)


def table_script(table: str, time: str = "24:00:00", cpus_per_task: int = 8) -> str:
    """One seeds' table (``python -m shapvision_drivers.tables``: one ``shapvision test`` after another) as a
    one-GPU job. Not requeued: a table has nothing to resume, a preempted one is resubmitted."""
    header = sbatch_header(
        f"table-{table}", 1, 1, 1, cpus_per_task, time, TEMPLATE_LOGS, requeue=False
    )
    lines = [
        *header,
        "",
        "# Options after the script's name (--data /data --checkpoints runs/imagenet) go to the table.",
        "set -euo pipefail",
        f'srun python -m shapvision_drivers.tables {table} --out "runs/tables/{table}/job$SLURM_JOB_ID" "$@" '
        "-- --trainer.num_nodes 1 --trainer.devices 1",
        "",
    ]
    return "\n".join(lines)


def templates() -> dict[str, str]:
    """{file name: script} for every training stage under experiments/ (one job per stage) and every
    seeds' table."""
    scripts = {f"table-{table}.sbatch": table_script(table) for table in SEED_TABLES}
    for folder, resources in TEMPLATE_RESOURCES.items():
        trainer = f"experiments/{folder}/trainer.yaml"
        for stage in sorted(Path("experiments", folder).glob("*.yaml")):
            if stage.stem.startswith(NOT_FIT_STAGES):
                continue
            name = f"{folder}-{stage.stem}"
            scripts[f"{name}.sbatch"] = sbatch_script(
                "fit",
                (trainer, str(stage)),
                job_name=name,
                partition=None,
                account=None,
                cli="shapvision-clip" if "clip" in folder else "shapvision",
                python="python",
                log_dir=TEMPLATE_LOGS,
                **resources,
            )
    return scripts


def checkpoint_dirpath(configs: tuple[str, ...]) -> str:
    """The ModelCheckpoint dirpath of the last config that sets one (where a stage's run writes)."""
    dirpath = None
    for config in configs:
        trainer = (yaml.safe_load(Path(config).read_text()) or {}).get("trainer") or {}
        for callback in trainer.get("callbacks") or []:
            if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith(
                "ModelCheckpoint"
            ):
                dirpath = (callback.get("init_args") or {}).get("dirpath", dirpath)
    if dirpath is None:
        raise ValueError(
            f"none of {list(configs)} has a ModelCheckpoint with a dirpath: nowhere to find its checkpoint"
        )
    return dirpath


def sbatch_header(
    job_name: str,
    nodes: int,
    tasks: int,
    gpus_per_node: int,
    cpus_per_task: int,
    time: str,
    log_dir: str,
    requeue: bool,
) -> list[str]:
    """The ``#SBATCH`` lines every script starts with; ``requeue``: SIGUSR1 90 s before the limit."""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        f"#SBATCH --ntasks-per-node={tasks}",
    ]
    if gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={gpus_per_node}")
    lines += [f"#SBATCH --cpus-per-task={cpus_per_task}", f"#SBATCH --time={time}"]
    if requeue:
        lines += ["#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue"]
    return lines + ["#SBATCH --open-mode=append", f"#SBATCH --output={log_dir}/%x-%j.out"]


def sbatch_script(
    command: str,
    configs: tuple[str, ...],
    *,
    job_name: str,
    nodes: int,
    gpus_per_node: int,
    tasks_per_node: int | None,
    cpus_per_task: int,
    time: str,
    partition: str | None,
    account: str | None,
    cli: str = "shapvision",
    extra: tuple[str, ...] = (),
    python: str = sys.executable,
    log_dir: str = "runs/slurm",
) -> str:
    if nodes < 1:
        raise ValueError(f"--nodes must be >= 1, got {nodes}")
    tasks = tasks_per_node or max(gpus_per_node, 1)
    if gpus_per_node and tasks != gpus_per_node:
        raise ValueError(
            f"--ntasks-per-node {tasks} != --gpus-per-node {gpus_per_node}: Lightning runs one task per GPU"
        )
    lines = sbatch_header(
        job_name, nodes, tasks, gpus_per_node, cpus_per_task, time, log_dir, requeue=True
    )
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    trainer = ["--trainer.num_nodes", str(nodes), "--trainer.devices", str(tasks)]
    if not gpus_per_node:
        trainer += ["--trainer.accelerator", "cpu"]
    if nodes * tasks > 1:
        trainer += ["--trainer.strategy", "ddp"]
    argv = [python, "-m", CLIS[cli], command]
    for config in configs:
        argv += ["--config", config]
    argv += [*trainer, "--run_id", "slurm", *extra]
    lines += [
        "",
        "# Options after the script's name (sbatch SCRIPT --data.init_args.root /data ...) go to the CLI.",
        "set -euo pipefail",
        "srun " + shlex.join(argv) + ' "$@"',
        "",
    ]
    return "\n".join(lines)


def parse_sbatch_lines(script: str) -> dict[str, str]:
    """``#SBATCH --key=value`` lines -> {key: value} (flags without a value map to "")."""
    options = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            options[key] = value
    return options


def submit(script: Path, dependency: str | None) -> str:
    command = ["sbatch", "--parsable"]
    if dependency:
        command.append(f"--dependency=afterok:{dependency}")
    result = subprocess.run([*command, str(script)], capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"sbatch failed for {script}: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = tuple(argv[argv.index("--") + 1 :]) if "--" in argv else ()
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["script", "pipeline", "templates"])
    parser.add_argument(
        "pipeline", nargs="?", choices=sorted(PIPELINES), help="pipeline mode: which chain"
    )
    parser.add_argument(
        "--config", action="append", default=[], help="script mode: configs, in order"
    )
    parser.add_argument("--command", default="fit", choices=["fit", "validate", "test", "predict"])
    parser.add_argument("--cli", default="shapvision", choices=sorted(CLIS))
    parser.add_argument("--job-name")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=1, help="0: CPU tasks")
    parser.add_argument(
        "--ntasks-per-node", type=int, help="CPU runs: tasks (DDP processes) per node"
    )
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--time", default="24:00:00")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/slurm"), help="where scripts are written"
    )
    parser.add_argument("--submit", action="store_true", help="pipeline mode: sbatch the chain")
    args = parser.parse_args(argv)
    resources = dict(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        tasks_per_node=args.ntasks_per_node,
        cpus_per_task=args.cpus_per_task,
        time=args.time,
        partition=args.partition,
        account=args.account,
        log_dir=str(args.out),
    )
    # SLURM opens the job's output file before the script runs: its folder must exist now
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "templates":
        folder = args.out if "--out" in argv else Path("experiments/slurm")
        folder.mkdir(parents=True, exist_ok=True)
        scripts = templates()
        for name, script in scripts.items():
            (folder / name).write_text(script)
        print(f"{len(scripts)} scripts in {folder}")
        return
    if args.mode == "script":
        if not args.config:
            parser.error("script mode needs --config (one or more)")
        name = args.job_name or Path(args.config[-1]).stem
        print(
            sbatch_script(
                args.command,
                tuple(args.config),
                job_name=name,
                cli=args.cli,
                extra=extra,
                **resources,
            )
        )
        return
    if args.pipeline is None:
        parser.error("pipeline mode needs the pipeline's name")
    previous_job, previous_stage = None, None
    jobs, stages = {}, {}
    for stage in PIPELINES[args.pipeline]:
        if stage.after is not None:
            previous_job, previous_stage = jobs[stage.after], stages[stage.after]
        stage_extra = extra
        if stage.previous_option:
            source = checkpoint_dirpath(previous_stage.configs)
            job = previous_job if args.submit else "<JOBID>"
            stage_extra = (f"--{stage.previous_option}", f"{source}/job{job}/best.ckpt", *extra)
        script = sbatch_script(
            "fit",
            stage.configs,
            job_name=f"{args.pipeline}-{stage.name}",
            cli=stage.cli,
            extra=stage_extra,
            **resources,
        )
        path = args.out / f"{args.pipeline}-{stage.name}.sbatch"
        path.write_text(script)
        if args.submit:
            previous_job = submit(path, previous_job)
            print(f"{stage.name}: job {previous_job} ({path})")
        else:
            print(f"# {path}\n{script}")
        previous_stage = stage
        jobs[stage.name], stages[stage.name] = previous_job, stage


if __name__ == "__main__":
    main()
