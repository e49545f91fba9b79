"""scikit-learn's bundled handwritten digits (1,797 real 8 x 8 grey images, 10 classes): no download.

Images are scaled to [0, 1], resized bilinearly to ``img_size`` (default 32, i.e. 4 x 4 = 16 patches
of 8 px for a patch-8 ViT), copied to 3 channels and standardised with the training split's mean and
std, so 0 is the mean pixel, as for ImageNet normalisation. The train / val / test split is
stratified by class and fixed by ``seed``.

With ``ink_masks``, every sample carries a ground-truth ``mask``: the digit's ink, pixels whose
resized intensity in [0, 1] is above ``ink_threshold``; the localisation metrics (RMA, RRA,
segmentation) score explanations against it.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from shapvision.data.base import ShapleyDataModule
from shapvision.data.preprocessing import Preprocessing


class DigitsDataModule(ShapleyDataModule):
    def __init__(
        self,
        img_size: int = 32,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        eval_batch_size: int | None = None,
        ink_masks: bool = False,
        ink_threshold: float = 0.5,
    ):
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            img_size=img_size,
            eval_batch_size=eval_batch_size,
        )
        if not (
            0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ValueError(
                f"data.val_fraction and data.test_fraction must be in (0, 1) with sum < 1, got {val_fraction}, {test_fraction}"
            )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        if not 0 <= ink_threshold < 1:
            raise ValueError(f"data.ink_threshold must be in [0, 1), got {ink_threshold}")
        self.ink_masks, self.ink_threshold = ink_masks, ink_threshold

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def has_masks(self) -> bool:
        return self.ink_masks

    def preprocessing(self) -> Preprocessing | None:
        """A grey image file as these digits: bright ink on a dark ground, like the 8 x 8 scans."""
        if self.train_set is None:
            return None
        return Preprocessing(
            self.img_size,
            (self.pixel_mean,) * 3,
            (self.pixel_std,) * 3,
            interpolation="bilinear",
            grayscale=True,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = F.interpolate(
            images, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False
        )
        ink = images[:, 0] > self.ink_threshold
        images = images.expand(-1, 3, -1, -1)
        labels = torch.tensor(digits.target, dtype=torch.long)
        index = torch.arange(len(labels)).numpy()
        rest, test_idx = train_test_split(
            index, test_size=self.test_fraction, stratify=labels.numpy(), random_state=self.seed
        )
        val_share = self.val_fraction / (1 - self.test_fraction)
        train_idx, val_idx = train_test_split(
            rest, test_size=val_share, stratify=labels.numpy()[rest], random_state=self.seed
        )
        mean, std = images[train_idx].mean(), images[train_idx].std()
        self.pixel_mean, self.pixel_std = float(mean), float(std)
        images = ((images - mean) / std).contiguous()
        tensors = (images, labels, ink) if self.ink_masks else (images, labels)
        self.train_set = TensorDataset(*(t[train_idx] for t in tensors))
        self.val_set = TensorDataset(*(t[val_idx] for t in tensors))
        self.test_set = TensorDataset(*(t[test_idx] for t in tensors))
