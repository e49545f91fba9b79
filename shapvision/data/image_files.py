"""Image files that may be unreadable: a corrupt or truncated file is skipped, counted and named, never a crash.

Datasets here return None for such a file; the collate function drops it without shifting any other
index (``shapvision.data.batch``), and the data module reports the shared count (``num_skipped``).
"""

import warnings
from pathlib import Path

import torch
from torchvision import datasets

UNREADABLE = (OSError, ValueError, SyntaxError)


def count_skipped(counter, path, err) -> None:
    """Record an unreadable image: one more in the shared counter and a warning that names the file."""
    with counter.get_lock():
        counter.value += 1
    warnings.warn(f"skipping unreadable image {path}: {err}", stacklevel=3)


def load_or_count(path, transform, counter):
    """The transformed image at ``path``, or None (counted and named) when it cannot be read."""
    try:
        return transform(datasets.folder.default_loader(str(path)))
    except UNREADABLE as err:
        count_skipped(counter, path, err)
        return None


class SkippingImageFolder(datasets.ImageFolder):
    """ImageFolder whose unreadable files yield None (dropped by the collate function) and are counted."""

    def __init__(self, root, transform, skipped_counter):
        super().__init__(root, transform=transform)
        self.skipped_counter = skipped_counter

    def __getitem__(self, index):
        path, _ = self.samples[index]
        try:
            return super().__getitem__(index)
        except UNREADABLE as err:
            count_skipped(self.skipped_counter, path, err)
            return None


class ImageFiles(torch.utils.data.Dataset):
    """One image file, or a flat folder of them, for ``predict``: yields ``{"image"}`` (no label);
    ``paths`` names each index. ``option`` is the option that named the path (for errors)."""

    EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

    def __init__(self, folder: Path, transform, skipped_counter, option: str = "data.predict_dir"):
        if folder.is_file():
            self.paths = [folder]
        else:
            self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in self.EXTENSIONS)
        if not self.paths:
            raise FileNotFoundError(
                f"{option} {folder} holds no images ({', '.join(self.EXTENSIONS)})"
            )
        self.transform, self.skipped_counter = transform, skipped_counter

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        image = load_or_count(self.paths[index], self.transform, self.skipped_counter)
        return None if image is None else {"image": image}
