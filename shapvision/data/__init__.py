"""LightningDataModules on one shared base."""

from shapvision.data.base import ShapleyDataModule
from shapvision.data.digits import DigitsDataModule
from shapvision.data.image_folder import ImageFolderDataModule

__all__ = ["DigitsDataModule", "ImageFolderDataModule", "ShapleyDataModule"]
