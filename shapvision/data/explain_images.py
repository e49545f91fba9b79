"""Your own images, prepared as the checkpoint's training data was: ``shapvision explain``'s data.

Image size, normalisation and class names come from the checkpoint (``shapvision_data``, written by
every module of the suite), so no dataset root is needed. ``images`` is a file or a flat folder;
unreadable files are counted and named, never a crash.
"""

import torch

from shapvision.data.base import ShapleyDataModule
from shapvision.data.image_files import ImageFiles
from shapvision.data.preprocessing import Preprocessing
from shapvision.errors import ConfigurationError
from shapvision.local_files import local_path, read_checkpoint


def checkpoint_data(path: str, option: str) -> dict:
    """A checkpoint's ``shapvision_data``: its preprocessing and, for classifiers, its class names."""
    checkpoint = read_checkpoint(path, option)
    file = local_path(path)
    data = checkpoint.get("shapvision_data")
    if not data or "preprocessing" not in data:
        raise ConfigurationError(
            f"{option} {file} does not record how its images were prepared (checkpoints written "
            "before shapvision saved it, or trained on data without image files): retrain it"
        )
    return data


class ExplainImagesDataModule(ShapleyDataModule):
    def __init__(self, images: str, checkpoint: str, batch_size: int = 16, num_workers: int = 0):
        data = checkpoint_data(checkpoint, "data.init_args.checkpoint")
        self.recipe = Preprocessing.from_dict(data["preprocessing"])
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, img_size=self.recipe.img_size
        )
        self.images = local_path(images)
        if not self.images.exists():
            raise ConfigurationError(
                f"data.init_args.images: no such file or folder: {self.images}"
            )
        self._class_names = data.get("class_names")
        self.skipped = torch.multiprocessing.Value("i", 0)

    @property
    def num_classes(self) -> int | None:
        return None if self._class_names is None else len(self._class_names)

    @property
    def class_names(self) -> list[str] | None:
        return self._class_names

    @property
    def num_skipped(self) -> int:
        return self.skipped.value

    def preprocessing(self) -> Preprocessing:
        return self.recipe

    def setup(self, stage: str | None = None) -> None:
        if self.predict_set is None:
            self.predict_set = ImageFiles(
                self.images, self.recipe.transform(), self.skipped, option="data.init_args.images"
            )
