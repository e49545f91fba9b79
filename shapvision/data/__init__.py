"""LightningDataModules on one shared base."""

from shapvision.data.base import ShapleyDataModule
from shapvision.data.cc3m import CC3MDataModule
from shapvision.data.cifar10 import CIFAR10DataModule
from shapvision.data.digit_scenes import DigitScenesDataModule
from shapvision.data.digits import DigitsDataModule
from shapvision.data.explain_images import ExplainImagesDataModule
from shapvision.data.image_folder import ImageFolderDataModule
from shapvision.data.image_text import ImageTextDataModule
from shapvision.data.imagenet_s import ImageNetSDataModule
from shapvision.data.imagenet_segmentation import ImageNetSegmentationDataModule
from shapvision.data.karpathy import KarpathyDataModule
from shapvision.data.mura import MURADataModule
from shapvision.data.parquet_image_text import ParquetImageTextDataModule

__all__ = [
    "CC3MDataModule",
    "CIFAR10DataModule",
    "KarpathyDataModule",
    "ParquetImageTextDataModule",
    "DigitScenesDataModule",
    "DigitsDataModule",
    "ExplainImagesDataModule",
    "ImageFolderDataModule",
    "ImageNetSDataModule",
    "ImageNetSegmentationDataModule",
    "ImageTextDataModule",
    "MURADataModule",
    "ShapleyDataModule",
]
