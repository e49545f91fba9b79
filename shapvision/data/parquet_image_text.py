"""Local parquet / arrow copies of an image-caption set, read with Hugging Face ``datasets``.

One file (or glob) per split, as ``data_files`` of ``datasets.load_dataset("parquet" | "arrow")``,
with an image column (an HF ``Image`` feature, stored as ``{"bytes", "path"}``, or raw bytes) and a
caption column (a list of captions per row, or one string). Nothing is downloaded: the files are
local. Rows are decoded lazily, image bytes only when a sample is read.
"""

import glob
from collections.abc import Sequence
from typing import Literal

import datasets

from shapvision.data.image_text import OPENAI_MEAN, OPENAI_STD, CaptionedImage, ImageTextDataModule
from shapvision.local_files import local_path


class HFCaptionedImages(Sequence):
    """A ``datasets.Dataset`` seen as a sequence of :class:`CaptionedImage`."""

    def __init__(self, table: datasets.Dataset, image_column: str, caption_column: str):
        self.table, self.image_column, self.caption_column = table, image_column, caption_column
        self.caption_counts = [len(c) if isinstance(c, list) else 1 for c in table[caption_column]]

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> CaptionedImage:
        row = self.table[int(index)]
        image = row[self.image_column]
        if isinstance(image, dict):
            image = image.get("bytes") or image.get("path")
        captions = row[self.caption_column]
        return CaptionedImage(image, captions if isinstance(captions, list) else [captions])


class ParquetImageTextDataModule(ImageTextDataModule):
    def __init__(
        self,
        train_files: str,
        val_files: str,
        test_files: str | None = None,
        file_format: Literal["parquet", "arrow"] = "parquet",
        image_column: str = "image",
        caption_column: str = "captions",
        tokenizer: str = "EVA02-B-16",
        img_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 4,
        eval_batch_size: int | None = None,
        captions_per_image: int = 5,
        mean: tuple[float, float, float] = OPENAI_MEAN,
        std: tuple[float, float, float] = OPENAI_STD,
    ):
        super().__init__(
            tokenizer,
            img_size,
            batch_size,
            num_workers,
            eval_batch_size,
            captions_per_image,
            mean,
            std,
        )
        self.files = {"train": train_files, "val": val_files, "test": test_files or val_files}
        for split, pattern in self.files.items():
            if not glob.glob(str(local_path(pattern))):
                raise FileNotFoundError(f"data.{split}_files {pattern} matches no file")
        self.file_format, self.image_column, self.caption_column = (
            file_format,
            image_column,
            caption_column,
        )

    def split_items(self, split: str) -> HFCaptionedImages:
        table = datasets.load_dataset(
            self.file_format, data_files=str(local_path(self.files[split])), split="train"
        )
        missing = [
            c for c in (self.image_column, self.caption_column) if c not in table.column_names
        ]
        if missing:
            raise ValueError(
                f"data.{split}_files {self.files[split]} has no column {missing}; its columns are "
                f"{table.column_names} (set data.image_column / data.caption_column)"
            )
        if isinstance(table.features[self.image_column], datasets.Image):
            table = table.cast_column(self.image_column, datasets.Image(decode=False))
        return HFCaptionedImages(table, self.image_column, self.caption_column)
