"""ImageNet-Segmentation (Guillaumin et al.; 4,276 images with object masks), as Chefer et al. evaluate it.

The single file ``gtsegs_ijcv.mat`` (MATLAB v7.3, i.e. HDF5) is read with h5py:
``/value/img`` holds an (N, 1) array of references to uint8 images stored column-major (3, W, H),
``/value/gt`` an (N, 1) array of references to 1 x 1 reference arrays that point to the (W, H) masks
(Chefer's ``data/Imagenet.py``). Images are resized to ``img_size`` x ``img_size`` without a crop
and normalised with ``mean`` / ``std`` (Chefer's ViT uses 0.5 / 0.5; set ImageNet's for other
models); masks are resized with nearest neighbour. There are no class labels: the explained class is
the model's prediction. Test split only (``shapvision test``); the structure is checked when the
module is built, before any compute.
"""

from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from shapvision.data.base import ShapleyDataModule
from shapvision.local_files import local_path

STRUCTURE = "an HDF5 (.mat v7.3) file with /value/img and /value/gt reference arrays of equal length, as gtsegs_ijcv.mat"


def check_structure(path: Path) -> int:
    """The number of images, or a clear error naming the option and the expected structure."""
    if not path.is_file():
        raise FileNotFoundError(
            f"data.init_args.path {path} not found: download gtsegs_ijcv.mat (see data/README.md) and pass its path"
        )
    try:
        with h5py.File(path, "r") as handle:
            if "value/img" not in handle or "value/gt" not in handle:
                raise ValueError(
                    f"data.init_args.path {path} has no /value/img and /value/gt; expected {STRUCTURE}"
                )
            images, masks = handle["value/img"], handle["value/gt"]
            if images.shape[0] != masks.shape[0] or images.dtype != h5py.ref_dtype:
                raise ValueError(
                    f"data.init_args.path {path}: /value/img {images.shape} {images.dtype} and /value/gt {masks.shape} "
                    f"do not match; expected {STRUCTURE}"
                )
            return images.shape[0]
    except OSError as err:
        raise ValueError(
            f"data.init_args.path {path} is not an HDF5 file ({err}); expected {STRUCTURE}"
        ) from err


class GTSegmentationDataset(Dataset):
    """Yields ``{"image", "mask"}``; the HDF5 file is opened lazily in each worker process."""

    def __init__(self, path: Path, length: int, img_size: int, mean, std):
        self.path, self.length, self.img_size = path, length, img_size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self._handle = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self):
        return {**self.__dict__, "_handle": None}

    def _file(self):
        if self._handle is None:
            self._handle = h5py.File(self.path, "r")
        return self._handle

    def __getitem__(self, index: int) -> dict:
        handle = self._file()
        image = np.array(handle[handle["value/img"][index, 0]]).transpose(2, 1, 0)  # (H, W, 3)
        mask = np.array(handle[handle[handle["value/gt"][index, 0]][0, 0]]).transpose(
            1, 0
        )  # (H, W)
        return segmentation_sample(image, mask > 0, self.img_size, self.mean, self.std)


def segmentation_sample(image: np.ndarray, mask: np.ndarray, img_size: int, mean, std) -> dict:
    """Chefer's evaluation transform: an (H, W, 3) uint8 image resized to ``img_size`` square without a
    crop (bilinear, antialiased) and normalised; its (H, W) bool object mask resized nearest-neighbour."""
    size = (img_size, img_size)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    m = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    m = F.interpolate(m, size=size, mode="nearest")[0, 0] > 0
    return {"image": (x - mean) / std, "mask": m}


class SegmentationTestSet(ShapleyDataModule):
    """What the segmentation ground truths share: a test split only, with object masks and Chefer's
    normalisation; subclasses build ``test_set`` in ``make_test_set``."""

    def __init__(self, img_size, batch_size, num_workers, num_classes, mean, std, eval_batch_size):
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            img_size=img_size,
            eval_batch_size=eval_batch_size,
        )
        self._num_classes, self.mean, self.std = num_classes, tuple(mean), tuple(std)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def has_masks(self) -> bool:
        return True

    def make_test_set(self):
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate"):
            raise ValueError(
                f"{type(self).__name__} is an evaluation set: use it with `shapvision test`"
            )
        if self.test_set is None:
            self.test_set = self.make_test_set()


class ImageNetSegmentationDataModule(SegmentationTestSet):
    def __init__(
        self,
        path: str,
        img_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        num_classes: int = 1000,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        eval_batch_size: int | None = None,
    ):
        super().__init__(img_size, batch_size, num_workers, num_classes, mean, std, eval_batch_size)
        self.path = local_path(path)
        self.length = check_structure(self.path)

    def make_test_set(self):
        return GTSegmentationDataset(self.path, self.length, self.img_size, self.mean, self.std)
