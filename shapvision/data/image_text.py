"""The image-text data layer: captioned images as dict batches, tokenised with the model's tokenizer.

Training samples are (image, caption) pairs, one per caption::

    {"image": (3, H, W), "text": (context,), "caption_index": int, "image_index": int}

Evaluation samples are images with their first ``captions_per_image`` captions, for retrieval::

    {"image": (3, H, W), "text": (C, context), "caption_index": (C,), "image_index": int}

The tokenizer is the model's (``open_clip.get_tokenizer(model name)``, linked by ``shapvision-clip``
from ``model.init_args.clip_model``); captions longer than its context are truncated by it, and every
truncation is counted (``num_truncated``) and logged. Images are read lazily: an unreadable one is
dropped, counted and named like any image of the suite (``shapvision.data.image_files``). Image-text
data has no classes.
"""

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from open_clip.transform import image_transform
from PIL import Image
from torch.utils.data import Dataset

from shapvision.data.base import ShapleyDataModule
from shapvision.data.image_files import UNREADABLE, count_skipped
from shapvision.data.preprocessing import Preprocessing

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class CaptionedImage:
    """One image (a file path, encoded bytes, or an already transformed tensor) and its captions;
    ``regions`` ``(C, N)``: the patches each caption names, where a set knows them (digit scenes)."""

    image: str | Path | bytes | torch.Tensor
    captions: Sequence[str]
    regions: torch.Tensor | None = None


class CaptionTokenizer:
    """The model's tokenizer, counting the captions it has to truncate (shared across workers)."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.context_length = self.tokenizer.context_length
        self.truncated = torch.multiprocessing.Value("i", 0)

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        captions = list(captions)
        long = self.tokenizer(captions, context_length=4 * self.context_length)
        too_long = (long != 0).sum(1) > self.context_length
        if bool(too_long.any()):
            with self.truncated.get_lock():
                first = self.truncated.value == 0
                self.truncated.value += int(too_long.sum())
            if first:
                caption = captions[int(too_long.nonzero()[0])]
                warnings.warn(
                    f"captions longer than the {self.model_name} context ({self.context_length} tokens) are "
                    f"truncated and counted (data/truncated_captions), e.g. {caption[:80]!r}",
                    stacklevel=2,
                )
        return self.tokenizer(captions)


def read_image(item: CaptionedImage, transform, skipped) -> torch.Tensor | None:
    if isinstance(item.image, torch.Tensor):
        return item.image
    try:
        source = io.BytesIO(item.image) if isinstance(item.image, bytes) else item.image
        with Image.open(source) as handle:
            return transform(handle.convert("RGB"))
    except UNREADABLE as err:
        name = "<bytes>" if isinstance(item.image, bytes) else item.image
        count_skipped(skipped, name, err)
        return None


class CaptionPairs(Dataset):
    """Every (image, caption) pair of a split, image by image: the training samples."""

    def __init__(self, items: Sequence[CaptionedImage], transform, tokenizer, skipped):
        self.items, self.transform, self.tokenizer, self.skipped = (
            items,
            transform,
            tokenizer,
            skipped,
        )
        counts = getattr(items, "caption_counts", None) or [len(item.captions) for item in items]
        self.pairs = [(i, j) for i, count in enumerate(counts) for j in range(count)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict | None:
        image_index, caption = self.pairs[index]
        item = self.items[image_index]
        image = read_image(item, self.transform, self.skipped)
        if image is None:
            return None
        return {
            "image": image,
            "text": self.tokenizer([item.captions[caption]])[0],
            "caption_index": index,
            "image_index": image_index,
        }


class CaptionedImages(Dataset):
    """Images with their first C captions: the retrieval samples. Caption ids are ``image * C + j``."""

    def __init__(
        self,
        items: Sequence[CaptionedImage],
        transform,
        tokenizer,
        skipped,
        captions_per_image: int,
    ):
        counts = getattr(items, "caption_counts", None) or [len(item.captions) for item in items]
        short = [i for i, count in enumerate(counts) if count < captions_per_image]
        if short:
            raise ValueError(
                f"{len(short)} images have fewer than data.captions_per_image={captions_per_image} captions "
                f"(e.g. image {short[0]} has {counts[short[0]]}); lower captions_per_image"
            )
        self.items, self.transform, self.tokenizer, self.skipped = (
            items,
            transform,
            tokenizer,
            skipped,
        )
        self.captions_per_image = captions_per_image

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict | None:
        item = self.items[index]
        image = read_image(item, self.transform, self.skipped)
        if image is None:
            return None
        count = self.captions_per_image
        sample = {
            "image": image,
            "text": self.tokenizer(item.captions[:count]),
            "caption_index": torch.arange(index * count, (index + 1) * count),
            "image_index": index,
        }
        if item.regions is not None:
            sample["caption_patches"] = item.regions[:count]
        return sample


class ImageTextDataModule(ShapleyDataModule):
    """Base of the image-text data modules: subclasses return each split's ``CaptionedImage`` list."""

    def __init__(
        self,
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
            batch_size=batch_size,
            num_workers=num_workers,
            img_size=img_size,
            eval_batch_size=eval_batch_size,
        )
        if captions_per_image < 1:
            raise ValueError(f"data.captions_per_image must be >= 1, got {captions_per_image}")
        self.tokenizer = CaptionTokenizer(tokenizer)
        self.captions_per_image = captions_per_image
        self.mean, self.std = tuple(mean), tuple(std)
        self.skipped = torch.multiprocessing.Value("i", 0)

    @property
    def num_classes(self) -> int:
        raise AttributeError("image-text data has no classes")

    @property
    def num_skipped(self) -> int:
        return self.skipped.value

    @property
    def num_truncated(self) -> int:
        return self.tokenizer.truncated.value

    def preprocessing(self) -> Preprocessing:
        """open_clip's evaluation transform: shorter side to img_size (bicubic), centre crop."""
        return Preprocessing(self.img_size, self.mean, self.std, interpolation="bicubic")

    def transform(self, train: bool) -> Callable:
        """open_clip's preprocessing: resize + centre crop (random resized crop for training), normalise."""
        return image_transform(self.img_size, is_train=train, mean=self.mean, std=self.std)

    def split_items(self, split: str) -> Sequence[CaptionedImage]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = CaptionPairs(
            self.split_items("train"), self.transform(True), self.tokenizer, self.skipped
        )
        self.val_set, self.test_set = (
            CaptionedImages(
                self.split_items(split),
                self.transform(False),
                self.tokenizer,
                self.skipped,
                self.captions_per_image,
            )
            for split in ("val", "test")
        )
