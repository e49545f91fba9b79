"""The ``shapvision`` command: LightningCLI with every LightningModule and DataModule in subclass mode.

    shapvision fit --config experiments/digits/classifier.yaml
    shapvision test --config experiments/digits/evaluation_vitshapley.yaml
    shapvision fit --print_config --config ...

``data.num_classes`` and ``data.img_size`` are linked into the model, so the head and the patch grid
always match the data; the resolved config is saved in the run directory.

``shapvision explain CHECKPOINT IMAGES [--out DIR] [--caption TEXT]`` explains your own images with
an explaining checkpoint alone: a ``predict`` with ``ExplainCheckpoint`` and ``ExplainImagesDataModule``
(image size, normalisation and class names from the checkpoint) and the ``ShapleyPredictionWriter``.

``--run_id ID`` (or ``slurm``) gives a run its own directory and ``--resume true`` resumes a fit
from its ``last.ckpt`` (``shapvision.cli_runs``).

With ``--ckpt_path`` the config decides the model's options and the checkpoint supplies the weights
(Lightning's default would replace the model options with the checkpoint's hyperparameters and
silently ignore overrides such as ``--model.init_args.value_batch_size``).
"""

import argparse
import sys
from pathlib import Path

from shapvision.cli_runs import RunAwareCLI
from shapvision.data.base import ShapleyDataModule


class ShapvisionCLI(RunAwareCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )
        parser.link_arguments("data.img_size", "model.init_args.img_size", apply_on="instantiate")


def explain_arguments(args: list[str]) -> list[str]:
    """``shapvision explain CHECKPOINT IMAGES`` as the LightningCLI ``predict`` it stands for."""
    parser = argparse.ArgumentParser(
        prog="shapvision explain",
        description="Explain your own images with a trained checkpoint alone (Explainer, SVO-ViT / "
        "SVO-ResNet, or SVO-CLIP with --caption): per image a .npy of Shapley values, a .json of the "
        "top classes and a .png overlay. Other options go to `shapvision predict` (e.g. "
        "--trainer.accelerator cpu, --trainer.devices 4).",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by shapvision")
    parser.add_argument("images", help="an image file or a folder of images")
    parser.add_argument("--out", help="output folder (default: runs/explain/<images name>)")
    parser.add_argument("--caption", help="SVO-CLIP: the caption to explain each image against")
    parser.add_argument("--batch_size", type=int, default=16)
    known, rest = parser.parse_known_args(args)
    out = known.out or str(Path("runs/explain") / Path(known.images).resolve().name)
    caption = ["--model.init_args.caption", known.caption] if known.caption is not None else []
    return [
        "predict",
        "--model", "shapvision.modules.ExplainCheckpoint",
        "--model.init_args.checkpoint", known.checkpoint,
        *caption,
        "--data", "shapvision.data.ExplainImagesDataModule",
        "--data.init_args.images", known.images,
        "--data.init_args.checkpoint", known.checkpoint,
        "--data.init_args.batch_size", str(known.batch_size),
        "--trainer.callbacks+=shapvision.explain.ShapleyPredictionWriter",
        "--trainer.callbacks.output_dir", out,
        "--trainer.logger", "false",
        # Lightning writes the run's config.yaml to default_root_dir: beside the outputs, not the cwd
        "--trainer.default_root_dir", out,
        *rest,
    ]  # fmt: skip


def main(args: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if args is None else args)
    if args[:1] == ["explain"]:
        args = explain_arguments(args[1:])
    ShapvisionCLI.launch(ShapleyDataModule, args)


if __name__ == "__main__":
    main()
