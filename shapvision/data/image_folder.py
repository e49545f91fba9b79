"""A local folder in torchvision's ImageFolder layout: ImageNette, Oxford Pets, ILSVRC, ...

    ROOT/train/<class>/<image>   ROOT/val/<class>/<image>   [ROOT/test/<class>/<image>]

The layout is checked when the module is built, before any compute; a missing split or a class set
that differs between splits is an error that shows the expected layout. Unreadable images are
skipped, counted (``num_skipped``) and reported with their paths, never a crash mid-epoch.
Without a test/ folder, ``test_from_val`` splits val/ in half (ViT-Shapley's ImageNette protocol,
seed 44) or test uses val/ entirely. With ``mask_root`` (``shapvision.data.object_masks``), val and
test samples carry the object ``mask`` the localisation metrics need (RMA / RRA on Pets).
"""

import os
from pathlib import Path
from typing import Literal

import timm
import torch
from timm.data import create_transform
from torch.utils.data import Subset

from shapvision.data.base import ShapleyDataModule
from shapvision.data.image_files import ImageFiles, SkippingImageFolder
from shapvision.data.object_masks import MASK_LAYOUT, ObjectMaskedImageFolder
from shapvision.data.preprocessing import Preprocessing
from shapvision.local_files import local_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = "ROOT/train/<class>/*.jpg, ROOT/val/<class>/*.jpg and optionally ROOT/test/<class>/*.jpg"


def class_folders(split_dir: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())


class ImageFolderDataModule(ShapleyDataModule):
    def __init__(
        self,
        root: str,
        img_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 4,
        eval_batch_size: int | None = None,
        test_from_val: bool = False,
        split_seed: int = 44,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        augment: bool = True,
        predict_dir: str | None = None,
        timm_model: str | None = None,
        crop_pct: float = 0.875,
        interpolation: Literal["bilinear", "bicubic"] = "bilinear",
        mask_root: str | None = None,
    ):
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            img_size=img_size,
            eval_batch_size=eval_batch_size,
        )
        self.root = local_path(root)
        self.test_from_val = test_from_val
        self.split_seed = split_seed
        self.mean, self.std, self.augment = tuple(mean), tuple(std), augment
        self.crop_pct, self.interpolation = crop_pct, interpolation
        if timm_model is not None:
            # The preprocessing the pretrained weights were trained with (timm's data config).
            config = timm.models.get_pretrained_cfg(timm_model)
            if config is None:
                raise ValueError(
                    f"data.init_args.timm_model {timm_model!r} is not a timm model with a pretrained config"
                )
            self.mean, self.std = tuple(config.mean), tuple(config.std)
            self.crop_pct, self.interpolation = config.crop_pct, config.interpolation
        self.predict_dir = None if predict_dir is None else local_path(predict_dir)
        if self.predict_dir is not None and not self.predict_dir.is_dir():
            raise FileNotFoundError(
                f"data.predict_dir {self.predict_dir} is not a folder of images"
            )
        self._classes = self._check_layout()
        self.mask_root = None if mask_root is None else self._check_mask_root(mask_root)
        self.skipped = torch.multiprocessing.Value("i", 0)

    def _check_layout(self) -> list[str]:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root {self.root} does not exist; expected the layout {LAYOUT} (see data/README.md)"
            )
        splits = {
            name: self.root / name
            for name in ("train", "val", "test")
            if (self.root / name).is_dir()
        }
        for required in ("train", "val"):
            if required not in splits:
                found = sorted(p.name for p in self.root.iterdir())
                raise FileNotFoundError(
                    f"data.root {self.root} has no {required}/ folder (found: {found}); expected the layout {LAYOUT}"
                )
        classes = class_folders(splits["train"])
        if not classes:
            raise ValueError(
                f"{splits['train']} has no class folders; expected the layout {LAYOUT}"
            )
        for path in splits.values():
            other = class_folders(path)
            if other != classes:
                missing, extra = (
                    sorted(set(classes) - set(other)),
                    sorted(set(other) - set(classes)),
                )
                raise ValueError(
                    f"{path} has different class folders from train/: missing {missing[:5]}, extra {extra[:5]}; every split needs the same classes"
                )
        self.has_test_dir = "test" in splits
        return classes

    def _check_mask_root(self, mask_root: str) -> Path:
        root = local_path(mask_root)
        splits = ("val", "test") if self.has_test_dir else ("val",)
        for split in splits:
            if not (root / split).is_dir():
                raise FileNotFoundError(
                    f"data.mask_root {root} has no {split}/ folder; expected {MASK_LAYOUT} "
                    "(data/layout_datasets.py pets --trimaps writes it for Oxford-IIIT Pets)"
                )
        return root

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def has_masks(self) -> bool:
        return self.mask_root is not None

    @property
    def class_names(self) -> list[str]:
        return list(self._classes)

    @property
    def num_skipped(self) -> int:
        return self.skipped.value

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            self.img_size, self.mean, self.std, self.crop_pct, self.interpolation, grayscale=False
        )

    def _transform(self, train: bool):
        """timm's ``create_transform``: RandomResizedCrop + flip for training (no colour jitter), the
        suite's evaluation transform (the checkpoint's recorded preprocessing) otherwise."""
        if not (train and self.augment):
            return self.preprocessing().transform()
        return create_transform(
            self.img_size,
            is_training=True,
            color_jitter=None,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            mean=self.mean,
            std=self.std,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return

        def folder(split: str, train: bool) -> SkippingImageFolder:
            if self.mask_root is not None and not train:
                return ObjectMaskedImageFolder(
                    self.root / split, self.mask_root / split, self._transform(False), self.skipped
                )
            return SkippingImageFolder(self.root / split, self._transform(train), self.skipped)

        if self.predict_dir is not None:
            self.predict_set = ImageFiles(self.predict_dir, self._transform(False), self.skipped)
        self.train_set = folder("train", True)
        val = folder("val", False)
        if self.has_test_dir:
            self.val_set, self.test_set = val, folder("test", False)
        elif self.test_from_val:
            order = torch.randperm(
                len(val), generator=torch.Generator().manual_seed(self.split_seed)
            ).tolist()
            half = len(order) // 2
            self.val_set, self.test_set = Subset(val, order[:half]), Subset(val, order[half:])
        else:
            self.val_set = self.test_set = val
