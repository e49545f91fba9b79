"""LightningDataModules on one shared base."""

from shapvision.data.base import ShapleyDataModule
from shapvision.data.digits import DigitsDataModule
from shapvision.data.image_folder import ImageFolderDataModule
from shapvision.data.imagenet_segmentation import ImageNetSegmentationDataModule
from shapvision.data.mura import MURADataModule

__all__ = [
    "DigitsDataModule",
    "ImageFolderDataModule",
    "ImageNetSegmentationDataModule",
    "MURADataModule",
    "ShapleyDataModule",
]
