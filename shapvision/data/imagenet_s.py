"""ImageNet-S (Gao et al., TPAMI 2022), the dataset SVO Table 3 cites, as a second segmentation ground
truth beside Chefer's ``gtsegs_ijcv.mat``.

Layout of a release (``LUSSeg/ImageNet-S``; ``root`` is one of ``ImageNetS50`` / ``ImageNetS300`` /
``ImageNetS919``): images ``<split>/<wnid>/<name>.JPEG`` (copied from ImageNet val by the release's
``datapreparation_val.py``) and masks ``<split>-segmentation/<wnid>/<name>.png``, for the ``validation``
split (752 / 4,097 / 12,419 images; the test masks are held by the benchmark's server). A mask PNG is
RGB with the class id = R + 256 * G: 0 = background, 1000 = ignore, otherwise the 1-based row of the
release's category list. The object mask is every pixel of a class id other than 0 and 1000.

Evaluated as Chefer's protocol (the one SVO Table 3 follows): images resized to ``img_size`` square
without a crop and normalised with ``mean`` / ``std`` (0.5 / 0.5 for Chefer's ViT), masks
nearest-neighbour, the explained class the model's prediction (no labels). Ours, an option: the binary
protocol has no ignore label, so ``ignore_as`` says whether ImageNet-S's ignore pixels (1000) count as
``background`` (default) or ``object``. Every image must have its mask (checked when the module is
built); an unreadable image or mask is skipped, counted and named, as for image folders.
"""

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from shapvision.data.image_files import UNREADABLE, count_skipped
from shapvision.data.imagenet_segmentation import SegmentationTestSet, segmentation_sample
from shapvision.local_files import local_path

BACKGROUND, IGNORE = 0, 1000
IGNORE_AS = ("background", "object")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
LAYOUT = (
    "<root>/<split>/<wnid>/<name>.JPEG with masks <root>/<split>-segmentation/<wnid>/<name>.png"
)


def class_ids(mask_rgb: np.ndarray) -> np.ndarray:
    """ImageNet-S's class id per pixel of an (H, W, 3) uint8 mask: R + 256 * G."""
    return mask_rgb[..., 0].astype(np.int64) + 256 * mask_rgb[..., 1].astype(np.int64)


def object_mask(mask_rgb: np.ndarray, ignore_as: str = "background") -> np.ndarray:
    ids = class_ids(mask_rgb)
    objects = (ids != BACKGROUND) & (ids != IGNORE)
    return objects | (ids == IGNORE) if ignore_as == "object" else objects


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, mask) paths in sorted order; a clear error for a missing folder or mask."""
    images, masks = root / split, root / f"{split}-segmentation"
    for folder in (images, masks):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"data.init_args.root {root} has no {folder.name}/ folder; expected {LAYOUT} "
                "(an ImageNet-S release, see data/README.md)"
            )
    pairs, missing = [], []
    for path in sorted(images.glob("*/*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = masks / path.parent.name / f"{path.stem}.png"
        (pairs if mask.is_file() else missing).append((path, mask))
    if missing:
        raise FileNotFoundError(
            f"data.init_args.root {root}: {len(missing)} images of {split}/ have no mask, e.g. "
            f"{missing[0][1]} for {missing[0][0]}; expected {LAYOUT}"
        )
    if not pairs:
        raise FileNotFoundError(
            f"data.init_args.root {root}: no images under {images}; expected {LAYOUT}"
        )
    return pairs


class ImageNetSDataset(Dataset):
    """Yields ``{"image", "mask"}``, or None (counted and named) for an unreadable file."""

    def __init__(self, pairs, img_size, mean, std, ignore_as, skipped_counter):
        self.pairs, self.img_size, self.ignore_as = pairs, img_size, ignore_as
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.skipped_counter = skipped_counter

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict | None:
        image_path, mask_path = self.pairs[index]
        try:
            with Image.open(image_path) as image, Image.open(mask_path) as mask:
                pixels = np.asarray(image.convert("RGB"))
                ids = np.asarray(mask.convert("RGB"))
        except UNREADABLE as err:
            count_skipped(self.skipped_counter, f"{image_path} or {mask_path}", err)
            return None
        if ids.shape[:2] != pixels.shape[:2]:
            warnings.warn(
                f"mask {mask_path} is {ids.shape[1]} x {ids.shape[0]} but its image is "
                f"{pixels.shape[1]} x {pixels.shape[0]}; both are resized to {self.img_size} square",
                stacklevel=2,
            )
        objects = object_mask(ids, self.ignore_as)
        return segmentation_sample(pixels, objects, self.img_size, self.mean, self.std)


class ImageNetSDataModule(SegmentationTestSet):
    def __init__(
        self,
        root: str,
        split: str = "validation",
        img_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        num_classes: int = 1000,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        ignore_as: str = "background",
        eval_batch_size: int | None = None,
    ):
        super().__init__(img_size, batch_size, num_workers, num_classes, mean, std, eval_batch_size)
        if ignore_as not in IGNORE_AS:
            raise ValueError(
                f"data.init_args.ignore_as must be one of {IGNORE_AS}, got {ignore_as!r}"
            )
        self.root = local_path(root)
        self.pairs = find_pairs(self.root, split)
        self.ignore_as = ignore_as
        self.skipped = torch.multiprocessing.Value("i", 0)

    @property
    def num_skipped(self) -> int:
        return self.skipped.value

    def make_test_set(self):
        return ImageNetSDataset(
            self.pairs, self.img_size, self.mean, self.std, self.ignore_as, self.skipped
        )
