"""Object masks beside an image folder, for the localisation metrics (RMA / RRA) on Pets and the like.

    MASK_ROOT/<split>/<class>/<image stem>.png     nonzero = object, 0 = background

Each mask goes through the geometry of its image's evaluation transform (resize, centre crop) with
nearest-neighbour interpolation, so mask and image stay aligned pixel for pixel whatever the
``crop_pct`` / ``img_size``; the photometric steps (normalisation) do not apply to a mask.
``data/layout_datasets.py pets --trimaps`` writes the Oxford-IIIT Pets trimaps in this layout.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from shapvision.data.image_files import UNREADABLE, SkippingImageFolder, count_skipped

MASK_LAYOUT = "MASK_ROOT/<split>/<class>/<image stem>.png (nonzero = object)"


def flat_steps(transform) -> list:
    """The steps of a transform, nested Compose unfolded (the RGB conversion wraps timm's)."""
    if isinstance(transform, transforms.Compose):
        return [step for inner in transform.transforms for step in flat_steps(inner)]
    return [transform]


def mask_transform(image_transform: transforms.Compose) -> transforms.Compose:
    """The geometric steps of an evaluation transform (Resize, CenterCrop), nearest-neighbour, then a 0/1 tensor."""
    steps = []
    for step in flat_steps(image_transform):
        if isinstance(step, transforms.Resize):
            steps.append(transforms.Resize(step.size, transforms.InterpolationMode.NEAREST))
        elif isinstance(step, transforms.CenterCrop):
            steps.append(transforms.CenterCrop(step.size))
        elif isinstance(step, (transforms.RandomResizedCrop, transforms.RandomHorizontalFlip)):
            raise ValueError(
                "object masks follow the evaluation transform; a random crop or flip cannot be replayed on a mask"
            )
    steps.append(
        transforms.Lambda(lambda mask: torch.from_numpy(np.array(mask) != 0).float()[None])
    )
    return transforms.Compose(steps)


def mask_path(mask_split: Path, image_path: str, split_dir: Path) -> Path:
    relative = Path(image_path).relative_to(split_dir)
    return mask_split / relative.parent / f"{relative.stem}.png"


class ObjectMaskedImageFolder(SkippingImageFolder):
    """An evaluation split whose samples are ``{"image", "label", "mask"}``.

    Every image must have its mask: the missing ones are named when the split is built, before any
    compute. An unreadable image or mask is skipped and counted like any unreadable image.
    """

    def __init__(self, root: Path, mask_root: Path, transform, skipped_counter):
        super().__init__(root, transform, skipped_counter)
        self.mask_paths = [mask_path(mask_root, path, Path(root)) for path, _ in self.samples]
        missing = [str(p) for p in self.mask_paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"data.mask_root: {len(missing)} of {len(self.samples)} images of {root} have no mask, "
                f"e.g. {missing[:3]}; expected {MASK_LAYOUT}"
            )
        self.mask_transform = mask_transform(transform)

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if item is None:
            return None
        image, label = item
        path = self.mask_paths[index]
        try:
            with Image.open(path) as handle:
                mask = self.mask_transform(handle.convert("L"))
        except UNREADABLE as err:
            count_skipped(self.skipped_counter, path, err)
            return None
        return {"image": image, "label": label, "mask": mask}
