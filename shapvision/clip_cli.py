"""The ``shapvision-clip`` command: LightningCLI for the image-text modules and data modules.

    shapvision-clip fit --config experiments/digits_clip/trainer.yaml --config experiments/digits_clip/svo_clip.yaml
    shapvision-clip test --config ... --ckpt_path runs/digits_clip/svo_clip/best.ckpt

The tokenizer and image size come from the model: ``model.init_args.clip_model`` is linked to
``data.init_args.tokenizer`` and ``model.init_args.img_size`` to ``data.init_args.img_size``, so the
captions are always tokenised by the model's own tokenizer (image-text data has no class count to
link the other way, which is why this is a command of its own beside ``shapvision``).
As with ``shapvision``, ``--ckpt_path`` supplies weights only; the config decides the options.
"""

import sys

from shapvision.cli_runs import RunAwareCLI
from shapvision.data.image_text import ImageTextDataModule
from shapvision.modules.base import ShapleyModule


class ImageTextCLI(RunAwareCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("model.init_args.clip_model", "data.init_args.tokenizer")
        parser.link_arguments("model.init_args.img_size", "data.init_args.img_size")

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model options; the checkpoint is used for its weights only."""


def main(args: list[str] | None = None) -> None:
    ImageTextCLI(
        ShapleyModule,
        ImageTextDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
