"""CIFAR-10 from the official python batches (FastSHAP's and SimSHAP's small-image benchmark).

``root`` is ``cifar-10-python.tar.gz`` unpacked (https://www.cs.toronto.edu/~kriz/cifar.html): a folder
holding ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and ``batches.meta``, each a pickle whose
``data`` is an (n, 3072) uint8 array of channel-major 32 x 32 images with ``labels`` beside it.
``data/layout_datasets.py cifar10 ARCHIVE OUT`` unpacks the archive there. The 50,000 training images
are split into train and ``val_size`` validation images, stratified by class and fixed by ``seed``
(ours: FastSHAP holds out 5,000 of them too); the 10,000 test images are the test split. Images are
scaled to [0, 1], resized bilinearly to ``img_size`` when it is not 32 (a patch-16 ViT needs 224) and
normalised with the training split's channel mean and std; ``augment`` adds the usual CIFAR training
augmentation (4-pixel padded random crop, horizontal flip).
"""

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, TensorDataset
from torchvision.transforms import v2

from shapvision.data.base import ShapleyDataModule
from shapvision.data.preprocessing import Preprocessing
from shapvision.local_files import local_path

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUT = (
    "ROOT/data_batch_1 ... data_batch_5, ROOT/test_batch, ROOT/batches.meta (cifar-10-batches-py)"
)
SIDE = 32


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` of one python batch file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"data.root: {path.name} is missing from {path.parent}; expected the layout {LAYOUT}"
        )
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:
        raise ValueError(
            f"data.root: {path} is not a CIFAR-10 python batch (a pickle with data and labels): "
            f"{type(error).__name__}: {error}"
        ) from error
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(labels) != len(data):
        raise ValueError(
            f"data.root: {path} holds data of shape {data.shape} and {len(labels)} labels; "
            f"expected (n, {3 * SIDE * SIDE}) and n labels"
        )
    return data.reshape(-1, 3, SIDE, SIDE), labels


class AugmentedImages(Dataset):
    """``(image, label)`` pairs with a random transform applied to the image tensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


class CIFAR10DataModule(ShapleyDataModule):
    def __init__(
        self,
        root: str,
        img_size: int = 32,
        batch_size: int = 128,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        val_size: int = 5000,
        seed: int = 0,
        augment: bool = False,
    ):
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            img_size=img_size,
            eval_batch_size=eval_batch_size,
        )
        self.root = local_path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root {self.root} does not exist; expected the layout {LAYOUT} "
                "(data/layout_datasets.py cifar10 cifar-10-python.tar.gz OUT)"
            )
        missing = [
            n
            for n in (*TRAIN_BATCHES, "test_batch", "batches.meta")
            if not (self.root / n).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"data.root {self.root} has no {', '.join(missing)}; expected the layout {LAYOUT}"
            )
        if not 0 < val_size < 50_000:
            raise ValueError(f"data.val_size must be in 1..49999, got {val_size}")
        self.val_size, self.seed, self.augment = val_size, seed, augment
        with (self.root / "batches.meta").open("rb") as handle:
            meta = pickle.load(handle, encoding="bytes")
        self._class_names = [name.decode() for name in meta[b"label_names"]]

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def preprocessing(self) -> Preprocessing | None:
        if self.train_set is None:
            return None
        return Preprocessing(self.img_size, self.mean, self.std, interpolation="bilinear")

    def _tensors(self, images: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(images).float() / 255.0
        if self.img_size != SIDE:
            tensor = F.interpolate(
                tensor, size=(self.img_size,) * 2, mode="bilinear", align_corners=False
            )
        return tensor

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        parts = [read_batch(self.root / name) for name in TRAIN_BATCHES]
        train_images = np.concatenate([p[0] for p in parts])
        train_labels = np.concatenate([p[1] for p in parts])
        test_images, test_labels = read_batch(self.root / "test_batch")
        train_idx, val_idx = train_test_split(
            np.arange(len(train_labels)),
            test_size=self.val_size,
            stratify=train_labels,
            random_state=self.seed,
        )
        images = self._tensors(train_images)
        mean = images[train_idx].mean((0, 2, 3))
        std = images[train_idx].std((0, 2, 3))
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        images = (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        labels = torch.from_numpy(train_labels)
        if self.augment:
            crop = v2.RandomCrop(self.img_size, padding=self.img_size // 8)
            transform = v2.Compose([crop, v2.RandomHorizontalFlip()])
            self.train_set = AugmentedImages(images[train_idx], labels[train_idx], transform)
        else:
            self.train_set = TensorDataset(images[train_idx], labels[train_idx])
        self.val_set = TensorDataset(images[val_idx], labels[val_idx])
        test = (self._tensors(test_images) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        self.test_set = TensorDataset(test, torch.from_numpy(test_labels))
