"""COCO and Flickr30k retrieval from the Karpathy split JSON plus the image folder.

    dataset_coco.json / dataset_flickr30k.json:
        {"images": [{"filename", "split", "sentences": [{"raw", ...}], ("filepath": "val2014")}], ...}
    IMAGE_ROOT/<filepath>/<filename> (COCO: train2014/, val2014/)   IMAGE_ROOT/<filename> (Flickr30k)

Splits: train = ``train`` + ``restval`` (one training sample per caption), val = ``val``, test =
``test`` (COCO 5k, Flickr30k 1k images), each evaluated image with its first ``captions_per_image``
(5) captions: a few COCO images have 6 or 7, the extra ones are not used (the usual protocol keeps 5).
Image files missing from disk are counted, named (the first few) and left out of their split with
their captions, never a crash (``num_missing``).
"""

import json
import warnings
from pathlib import Path

from shapvision.data.image_text import OPENAI_MEAN, OPENAI_STD, CaptionedImage, ImageTextDataModule
from shapvision.local_files import local_path

SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}
EXPECTED = '{"images": [{"filename", "split", "sentences": [{"raw"}], optional "filepath"}]}'


def read_karpathy(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(
            f"data.annotations {path} not found: the Karpathy split JSON (dataset_coco.json / dataset_flickr30k.json)"
        )
    try:
        images = json.loads(path.read_text())["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f"data.annotations {path} is not a Karpathy split JSON ({EXPECTED}): {err}"
        ) from err
    for i, image in enumerate(images):
        missing = [k for k in ("filename", "split", "sentences") if k not in image]
        if missing or not all("raw" in s for s in image.get("sentences", [])):
            raise ValueError(
                f"data.annotations {path}: image {i} lacks {missing or ['sentences[].raw']}; expected {EXPECTED}"
            )
    return images


class KarpathyDataModule(ImageTextDataModule):
    def __init__(
        self,
        annotations: str,
        image_root: str,
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
        self.annotations = local_path(annotations)
        self.image_root = local_path(image_root)
        if not self.image_root.is_dir():
            raise FileNotFoundError(f"data.image_root {self.image_root} is not a folder of images")
        self.images = read_karpathy(self.annotations)
        self.missing: list[str] = []

    @property
    def num_missing(self) -> int:
        return len(self.missing)

    def split_items(self, split: str) -> list[CaptionedImage]:
        items, missing = [], []
        for image in self.images:
            if image["split"] not in SPLITS[split]:
                continue
            path = self.image_root / image.get("filepath", "") / image["filename"]
            if not path.is_file():
                missing.append(str(path))
                continue
            items.append(CaptionedImage(path, [s["raw"].strip() for s in image["sentences"]]))
        if missing:
            self.missing += missing
            warnings.warn(
                f"{split}: {len(missing)} images of {self.annotations.name} are missing under {self.image_root} "
                f"and left out with their captions, e.g. {missing[:3]}",
                stacklevel=2,
            )
        if not items:
            raise ValueError(
                f"data.annotations {self.annotations}: no {split} image ({'/'.join(SPLITS[split])}) was found under {self.image_root}"
            )
        return items
