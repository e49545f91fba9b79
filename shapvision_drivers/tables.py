"""The seeds' tables: each one a set of evaluation runs (configs under experiments/) merged into one table.

    python -m shapvision_drivers.tables compare-digits
    python -m shapvision_drivers.tables svo-faithfulness --checkpoints runs/imagenet --data /data [-- --trainer.devices 8]

Every run is ``shapvision test --config TRAINER --config RUN [options after --]``, writing into
``OUT/<run>/`` (evaluation.csv / .md / .json, heatmaps.png, TensorBoard); the merged table, a row per
(model, method) with the table's columns, goes to ``OUT/table.md`` and ``OUT/table.csv``.
``--checkpoints`` and ``--data`` set ${CHECKPOINTS} and ${SHAPVISION_DATA}, which the configs use;
``--weights`` sets ${WEIGHTS}, the pretrained weights file of the zero-shot rows (SVO Table 4's CLIP):
a run whose config needs it is printed as "not run" when it is not given.
Every cell carries its 95 % bootstrap interval over images. ``--compare A B`` adds, for every run
that has both methods, a paired bootstrap test per column on the images both were scored on
(``OUT/comparison.md`` / ``.csv``); with ``--no-run`` it reads the runs already in OUT.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from shapvision.metrics.bootstrap import paired_bootstrap
from shapvision.metrics.registry import METRICS
from shapvision.table_files import markdown_table, write_csv
from shapvision_drivers.passthrough import EXPERIMENTS, split_passthrough
from shapvision_drivers.published import paper_beside_ours, read_published

TABLES_FILE = EXPERIMENTS / "tables" / "tables.yaml"
CLIS = {"shapvision": "shapvision.cli", "shapvision-clip": "shapvision.clip_cli"}
# variables a run may need that a table can do without: the run is skipped, and said so, when unset
OPTIONAL_VARIABLES = {"WEIGHTS": "--weights"}


@dataclass(frozen=True)
class Table:
    title: str
    trainer: str
    runs: dict[str, tuple[str, ...]]  # run -> its configs, read in this order
    columns: tuple[str, ...]
    cli: str = "shapvision"
    published: str | None = None  # the entry of published.yaml printed beside ours


def read_tables(path: Path = TABLES_FILE) -> dict[str, Table]:
    """The tables of ``experiments/tables/tables.yaml``, by name."""
    tables = {}
    for name, spec in yaml.safe_load(path.read_text()).items():
        cli = spec.get("cli", "shapvision")
        if cli not in CLIS:
            raise ValueError(
                f"{path}: table {name!r} has cli {cli!r}; expected one of {list(CLIS)}"
            )
        tables[name] = Table(
            spec["title"],
            spec["trainer"],
            {
                key: (configs,) if isinstance(configs, str) else tuple(configs)
                for key, configs in spec["runs"].items()
            },
            tuple(spec.get("columns", ())),
            cli,
            spec.get("published"),
        )
    return tables


TABLES = read_tables()


def run_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key.lower()).strip("_")


def run_command(
    table: Table, configs: tuple[str, ...], out: Path, folder: str, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        CLIS[table.cli],
        "test",
        "--config",
        table.trainer,
        *[argument for config in configs for argument in ("--config", config)],
        "--trainer.logger.class_path",
        "lightning.pytorch.loggers.TensorBoardLogger",
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.logger.init_args.name",
        folder,
        "--trainer.logger.init_args.version",
        "",
        *extra,
    ]


def skipped_runs(table: Table, env: dict[str, str]) -> dict[str, str]:
    """The runs whose config uses an optional variable that is not set: {run: why}."""
    skipped = {}
    for key, configs in table.runs.items():
        for config in configs:
            text = (EXPERIMENTS.parent / config).read_text()
            for variable, option in OPTIONAL_VARIABLES.items():
                if "${" + variable + "}" in text and not env.get(variable):
                    skipped[key] = f"{config} needs ${{{variable}}}: pass {option} FILE"
    return skipped


def run_evaluations(
    name: str, out: Path, extra: list[str], env: dict[str, str], jobs: int, skipped=()
) -> None:
    """Every run of the table but ``skipped``, ``jobs`` at a time. With several at a time each gets its
    share of the cores (``OMP_NUM_THREADS``) and writes its output to ``OUT/<run>.log``, shown if it fails."""
    table = TABLES[name]
    pending = [(key, configs) for key, configs in table.runs.items() if key not in skipped]
    cores = os.cpu_count() or 1
    while pending:
        batch, pending = pending[:jobs], pending[jobs:]
        running = []
        for key, configs in batch:
            folder = run_name(key)
            command = run_command(table, configs, out, folder, extra)
            config = " + ".join(configs)
            print(f"== {name}: {key} ({config})", flush=True)
            if len(batch) == 1:
                running.append((key, config, None, subprocess.Popen(command, env=env)))
                continue
            log = out / f"{folder}.log"
            threads = str(max(1, cores // len(batch)))
            with log.open("w") as handle:
                process = subprocess.Popen(
                    command,
                    env={**env, "OMP_NUM_THREADS": threads},
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            running.append((key, config, log, process))
        for key, config, log, process in running:
            if process.wait():
                shown = f":\n{log.read_text()[-4000:]}" if log else "; see its output above"
                raise SystemExit(
                    f"shapvision_drivers.tables: the run {key!r} ({config}) failed{shown}"
                )


def run_table(name: str, out: Path, extra: list[str], env: dict[str, str], jobs: int = 1) -> str:
    table = TABLES[name]
    rows, sections, model_rows = [], [], []
    start = time.time()
    skipped = skipped_runs(table, env)
    for key, why in skipped.items():
        print(f"== {name}: {key}: not run ({why})", flush=True)
    run_evaluations(name, out, extra, env, jobs, skipped)
    for key in table.runs:
        if key in skipped:
            continue
        folder = run_name(key)
        report = json.loads((out / folder / "evaluation.json").read_text())
        accuracy = report["test_accuracy"]
        if report.get("model_metrics"):
            model_rows.append({"model": key, **report["model_metrics"]})
        for row in report["rows"]:
            rows.append({"model": key, "model_accuracy": accuracy, **row})
        sections.append(f"![{key}]({folder}/heatmaps.png)")
    columns = [
        "model",
        "method",
        *[c for c in (*table.columns, "median_rank") if any(c in r for r in rows)],
    ]
    bounds = [c + bound for c in columns for bound in ("_ci_low", "_ci_high")]
    shown = [
        {c: row.get(c, "") for c in columns} | {b: row[b] for b in bounds if b in row}
        for row in rows
    ]
    write_csv(out / "table.csv", rows)
    accuracy = "\n".join(
        f"- {key}: accuracy on the evaluated test images {r['model_accuracy']:.4f}"
        if r["model_accuracy"] is not None
        else f"- {key}: no labels"
        for key, r in {r["model"]: r for r in rows}.items()
    )
    models = f"{markdown_table(model_rows)}\n" if model_rows else ""
    if model_rows:
        accuracy = (
            "Retrieval above: R@K text -> image (t2i) and image -> text (i2t) on the test images."
        )
    if skipped:
        accuracy += "\n" + "\n".join(f"- {key}: not run ({why})" for key, why in skipped.items())
    text = (
        f"# {table.title}\n\n{models}{markdown_table(shown) if shown else ''}\n{accuracy}\n\n"
        f"Wall time: {time.time() - start:.0f} s. Full columns: table.csv; per run: */evaluation.md.\n\n"
        + "\n".join(sections)
        + "\n"
    )
    if table.published:
        text += published_section(table.published, rows, model_rows, out)
    (out / "table.md").write_text(text)
    return text


def published_section(key: str, rows: list[dict], model_rows: list[dict], out: Path) -> str:
    """The published figures of ``key`` beside ours (``OUT/paper.md`` / ``.csv``), as Markdown."""
    entry = read_published()[key]
    lined_up = paper_beside_ours(entry, rows + [{"method": "model", **r} for r in model_rows])
    write_csv(out / "paper.csv", lined_up)
    section = (
        f"\n## Published beside ours\n\nSource: {entry['source']}. Ours in the paper's units"
        f"{' (x ' + str(entry['ours_scale']) + ')' if 'ours_scale' in entry else ''}; diff = ours - paper.\n\n"
        + markdown_table(lined_up)
    )
    (out / "paper.md").write_text(section.lstrip("\n"))
    return section


def compare_methods(name: str, out: Path, a: str, b: str, resamples: int = 2000) -> str:
    """Paired bootstrap of methods ``a`` and ``b`` in every run of the table that scored both."""
    rows = []
    for key in TABLES[name].runs:
        path = out / run_name(key) / "per_image.pt"
        if not path.is_file():
            continue
        per_image = torch.load(path)
        if a not in per_image or b not in per_image:
            continue
        for metric, values in per_image[a].items():
            if metric not in per_image[b] or metric not in METRICS:
                continue
            test = paired_bootstrap(METRICS[metric], values, per_image[b][metric], resamples)
            for column, result in test.items():
                rows.append(
                    {
                        "model": key,
                        "column": column,
                        a: result["a"],
                        b: result["b"],
                        "difference": result["difference"],
                        "p_value": result["p_value"],
                        "images": result["images"],
                    }
                )
    if not rows:
        raise SystemExit(
            f"shapvision_drivers.tables --compare: no run of {name!r} in {out} scored both {a!r} and {b!r} "
            "(method row names as in evaluation.md)"
        )
    write_csv(out / "comparison.csv", rows)
    text = (
        f"# {a} vs {b}: paired bootstrap over the images both were scored on ({resamples} resamples)\n\n"
        + markdown_table(rows)
        + "\np_value: two-sided, of no difference between the two methods on that column.\n"
    )
    (out / "comparison.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    argv, extra = split_passthrough(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--out", type=Path, help="default: runs/tables/<table>")
    parser.add_argument("--checkpoints", help="sets ${CHECKPOINTS}: the folder of the trained runs")
    parser.add_argument("--data", help="sets ${SHAPVISION_DATA}: the folder of the datasets")
    parser.add_argument(
        "--weights",
        help="sets ${WEIGHTS}: the pretrained weights file of the zero-shot rows (open_clip's EVA02-B-16)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="evaluation runs at a time, sharing the CPU cores (small models on a CPU run faster side by side)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="paired bootstrap p-values between methods A and B per column, on the same images",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="with --compare: read the runs already in OUT instead of running the table",
    )
    args = parser.parse_args(argv)
    if args.no_run and not args.compare:
        parser.error("--no-run only applies with --compare")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    env = dict(os.environ)
    if args.checkpoints:
        env["CHECKPOINTS"] = str(Path(args.checkpoints).expanduser().resolve())
    if args.data:
        env["SHAPVISION_DATA"] = str(Path(args.data).expanduser().resolve())
    if args.weights:
        env["WEIGHTS"] = str(Path(args.weights).expanduser().resolve())
    out = args.out or Path("runs/tables") / args.table
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_run:
        print(run_table(args.table, out, extra, env, args.jobs))
        print(f"written: {out / 'table.md'}, {out / 'table.csv'}")
    if args.compare:
        print(compare_methods(args.table, out, *args.compare))
        print(f"written: {out / 'comparison.md'}, {out / 'comparison.csv'}")


if __name__ == "__main__":
    main()
