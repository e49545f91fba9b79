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


class ImageTextCLI(RunAwareCLI):
    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("model.init_args.clip_model", "data.init_args.tokenizer")
        parser.link_arguments("model.init_args.img_size", "data.init_args.img_size")


def main(args: list[str] | None = None) -> None:
    ImageTextCLI.launch(ImageTextDataModule, args)


if __name__ == "__main__":
    main(sys.argv[1:])
