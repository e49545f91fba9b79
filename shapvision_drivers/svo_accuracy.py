"""SVO Table 1: top-1 accuracy, parameters and FLOPs per image, plain vs SVO, per backbone.

    python -m shapvision_drivers.svo_accuracy --checkpoints runs/imagenet --data /data [-- --trainer.devices 8]

The rows are ``experiments/tables/svo_accuracy/rows.yaml``: each names a run folder under
``--checkpoints`` holding ``best.ckpt``. Accuracy is ``shapvision test`` of that checkpoint (the
evaluation module, ``accuracy.yaml`` beside the rows) on ``--data``/imagenet (val); parameters and
FLOPs are measured on the checkpoint's own model at its own image size (224 for the ImageNet runs) with ``torch.utils.flop_counter``
(:mod:`shapvision.models.cost`): the inference forward that gives the model's outputs (SVO: the
votes; a CLIP model: its image tower's embedding). The paper's figures are printed beside ours; a
row whose checkpoint is missing says so instead of a figure. Written to OUT/table.md and table.csv.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from shapvision.models.cost import ModelCost, measure_cost
from shapvision.modules.checkpoints import load_module
from shapvision.table_files import markdown_table, write_csv
from shapvision_drivers.passthrough import split_passthrough

ROWS = Path("experiments/tables/svo_accuracy/rows.yaml")


def inference_cost(module) -> ModelCost:
    """What one image costs the module's explaining forward: a CLIP model's image tower, or the
    whole classifier (SVO: its votes, whose sum is the logits)."""
    img_size = int(module.hparams.img_size)
    towers = getattr(module, "towers", None)
    if towers is not None:
        return measure_cost(towers.clip.visual, module.image_features, img_size)
    forward = getattr(module, "explain", module)
    return measure_cost(module, forward, img_size)


def top1_accuracy(spec: dict, checkpoint: Path, out: Path, tables: dict, extra, env) -> float:
    """Top-1 of the checkpoint on the test split (the evaluation module's ``test_accuracy``)."""
    name = spec["run"]
    command = [
        sys.executable,
        "-m",
        "shapvision.cli",
        "test",
        "--config",
        tables["trainer"],
        "--config",
        tables["accuracy"],
        "--model.init_args.checkpoint",
        str(checkpoint),
        "--data.init_args.timm_model",
        spec["timm_model"],
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.logger.init_args.name",
        name,
        "--trainer.logger.init_args.version",
        "",
        *extra,
    ]
    print(f"== svo-accuracy: {spec['backbone']} {spec['model']} ({checkpoint})", flush=True)
    if subprocess.run(command, env=env).returncode:
        raise SystemExit(
            f"shapvision_drivers.svo_accuracy: testing {checkpoint} failed; see its output above"
        )
    return json.loads((out / name / "evaluation.json").read_text())["test_accuracy"]


def table_row(spec: dict, checkpoints: Path, out: Path, tables: dict, extra, env) -> dict:
    paper = spec.get("paper", {})
    row = {
        "backbone": spec["backbone"],
        "model": spec["model"],
        "paper row": paper.get("row", ""),
        "acc@1 paper": paper.get("accuracy", ""),
        "acc@1 ours": "",
        "acc@1 diff": "",
        "params (M) paper": paper.get("parameters_m", ""),
        "params (M) ours": "",
        "GMACs paper": paper.get("gmacs", ""),
        "GMACs ours": "",
        "GFLOPs ours": "",
        "img_size": "",
        "note": "",
    }
    checkpoint = checkpoints / spec["run"] / "best.ckpt"
    if not checkpoint.is_file():
        row["note"] = f"not run: {checkpoint} not found"
        return row
    module = load_module(str(checkpoint), f"--checkpoints {checkpoints}").eval()
    cost = inference_cost(module)
    row.update(
        {
            "params (M) ours": round(cost.parameters / 1e6, 2),
            "GMACs ours": round(cost.multiply_adds / 1e9, 3),
            "GFLOPs ours": round(cost.flops / 1e9, 3),
            "img_size": int(module.hparams.img_size),
        }
    )
    if spec.get("timm_model"):
        accuracy = 100 * top1_accuracy(spec, checkpoint, out, tables, extra, env)
        row["acc@1 ours"] = round(accuracy, 2)
        if paper.get("accuracy") is not None:
            row["acc@1 diff"] = round(accuracy - paper["accuracy"], 2)
    else:
        row["note"] = "image-text model: no ImageNet accuracy (retrieval: make table-svo-retrieval)"
    return row


def main(argv: list[str] | None = None) -> None:
    argv, extra = split_passthrough(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoints", type=Path, default=Path("runs/imagenet"))
    parser.add_argument("--data", help="sets ${SHAPVISION_DATA}: the folder holding imagenet/")
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument("--out", type=Path, default=Path("runs/tables/svo-accuracy"))
    args = parser.parse_args(argv)
    spec = yaml.safe_load(args.rows.read_text())
    env = dict(os.environ)
    if args.data:
        env["SHAPVISION_DATA"] = str(Path(args.data).expanduser().resolve())
    checkpoints = args.checkpoints.expanduser().resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [table_row(row, checkpoints, args.out, spec, extra, env) for row in spec["rows"]]
    write_csv(args.out / "table.csv", rows)
    text = (
        "# SVO Table 1: ImageNet top-1, parameters and cost per image, plain vs SVO\n\n"
        + markdown_table(rows)
        + "\nGMACs = multiply-adds (the paper's unit), GFLOPs = 2 x GMACs, measured with "
        "torch.utils.flop_counter on one image at img_size.\n"
    )
    (args.out / "table.md").write_text(text)
    print(text)
    print(f"written: {args.out / 'table.md'}, {args.out / 'table.csv'}")


if __name__ == "__main__":
    main()
