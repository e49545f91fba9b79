"""The ``shapvision`` command: LightningCLI with every LightningModule and DataModule in subclass mode.

    shapvision fit --config experiments/digits/classifier.yaml
    shapvision test --config experiments/digits/evaluation_vitshapley.yaml
    shapvision fit --print_config --config ...

``data.num_classes`` and ``data.img_size`` are linked into the model, so the head and the patch grid
always match the data; the resolved config is saved in the run directory.

``--run_id ID`` (or ``slurm``) gives a run its own directory and ``--resume true`` resumes a fit
from its ``last.ckpt`` (``shapvision.cli_runs``).

With ``--ckpt_path`` the config decides the model's options and the checkpoint supplies the weights
(Lightning's default would replace the model options with the checkpoint's hyperparameters and
silently ignore overrides such as ``--model.init_args.value_batch_size``).
"""

import sys

from shapvision.cli_runs import RunAwareCLI
from shapvision.data.base import ShapleyDataModule


class ShapvisionCLI(RunAwareCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )
        parser.link_arguments("data.img_size", "model.init_args.img_size", apply_on="instantiate")


def main(args: list[str] | None = None) -> None:
    ShapvisionCLI.launch(ShapleyDataModule, args)


if __name__ == "__main__":
    main(sys.argv[1:])
