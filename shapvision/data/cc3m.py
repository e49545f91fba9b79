"""CC3M (or any image-caption set) as webdataset shards in img2dataset's layout.

    SHARDS/00000.tar  (000000000.jpg, 000000000.txt, 000000000.json, ...)   SHARDS/00000_stats.json

Training streams the shards with the ``webdataset`` package:
- the shard list is shuffled with ``seed + epoch`` (the same order on every rank), then split by rank
  (the trainer's global rank and world size, which webdataset cannot see under SLURM) and by worker;
  ``resampled: true`` instead draws shards with replacement per rank and worker;
- every rank yields exactly ``ceil(samples / (batch_size x world_size))`` batches (rounded up to a
  multiple of the workers): each worker's stream is repeated until it has given its share, so uneven
  shards never leave one rank waiting in a collective (a DDP hang); samples near the end of a short
  worker's stream may be seen twice in an epoch, as with open_clip's ``with_epoch``;
- samples are shuffled in a buffer of ``shuffle_buffer``; unreadable images are counted and named.
The sample count comes from the ``NNNNN_stats.json`` files (``successes``), read when the module is built.

Validation / test shards (``val_shards``, CC3M's validation split) are read once into memory as a
map-style set of (image bytes, caption) pairs, one caption per image, and served like any retrieval
split. Sample ids are the img2dataset keys.
"""

import json
import math
import random
import tarfile
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from shapvision.data.batch import collate_samples
from shapvision.data.image_files import count_skipped
from shapvision.data.image_text import (
    CaptionedImage,
    CaptionedImages,
    ImageTextDataModule,
    read_image,
)
from shapvision.local_files import local_path

LAYOUT = "SHARDS/NNNNN.tar with key.jpg / key.txt / key.json and NNNNN_stats.json (img2dataset's webdataset output)"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def shard_files(folder: Path, option: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{option} {folder} is not a folder; expected {LAYOUT}")
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise FileNotFoundError(f"{option} {folder} holds no .tar shards; expected {LAYOUT}")
    return shards


def shard_sample_count(shard: Path) -> int:
    stats = shard.with_name(f"{shard.stem}_stats.json")
    if not stats.is_file():
        raise FileNotFoundError(
            f"{stats} is missing: img2dataset writes one NNNNN_stats.json per shard, whose 'successes' "
            "counts its samples (the loader needs the total to give every rank the same number of batches)"
        )
    return int(json.loads(stats.read_text())["successes"])


class RankShards(IterableDataset):
    """The shard URLs of this rank and worker, in an order that depends on the seed and the epoch."""

    def __init__(self, shards, rank, world_size, seed, epoch, resampled):
        self.shards, self.rank, self.world_size = [str(s) for s in shards], rank, world_size
        self.seed, self.epoch, self.resampled = seed, epoch, resampled

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        epoch = self.epoch.value
        if self.resampled:
            rng = random.Random(f"{self.seed}/{epoch}/{self.rank}/{worker}")
            while True:
                yield {"url": rng.choice(self.shards)}
        order = list(self.shards)
        random.Random(self.seed + epoch).shuffle(order)
        mine = order[self.rank :: self.world_size][worker::workers]
        for url in mine:
            yield {"url": url}


class DecodeSample:
    """A shard sample -> the suite's training dict; None (counted and named) without image or caption.

    A plain callable, not a bound method of the data module, so the pipeline pickles into spawned
    workers without the trainer.
    """

    def __init__(self, transform, tokenizer, skipped):
        self.transform, self.tokenizer, self.skipped = transform, tokenizer, skipped

    def __call__(self, sample: dict) -> dict | None:
        key = sample["__key__"]
        image_field = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        if image_field is None or "txt" not in sample:
            name = f"{sample.get('__url__')}:{key}"
            count_skipped(self.skipped, name, ValueError("no image or caption"))
            return None
        image = read_image(CaptionedImage(sample[image_field], []), self.transform, self.skipped)
        if image is None:
            return None
        caption = sample["txt"].decode("utf-8")
        index = int(key)
        return {
            "image": image,
            "text": self.tokenizer([caption])[0],
            "caption_index": index,
            "image_index": index,
            "index": index,
        }


class CountAndContinue:
    """webdataset's error handler: an unreadable shard member is counted and named, then skipped."""

    def __init__(self, skipped):
        self.skipped = skipped

    def __call__(self, err: Exception) -> bool:
        count_skipped(self.skipped, "a shard member", err)
        return True


class RankBatches(IterableDataset):
    """A rank's batch stream with its length, so the trainer can size the LR schedule and the epoch."""

    def __init__(self, pipeline: wds.DataPipeline, batches: int):
        self.pipeline, self.batches = pipeline, batches

    def __iter__(self):
        return iter(self.pipeline)

    def __len__(self) -> int:
        return self.batches


class CC3MDataModule(ImageTextDataModule):
    def __init__(
        self,
        train_shards: str,
        val_shards: str | None = None,
        tokenizer: str = "EVA02-B-16",
        img_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 4,
        eval_batch_size: int | None = None,
        resampled: bool = False,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073),
        std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711),
    ):
        super().__init__(
            tokenizer, img_size, batch_size, num_workers, eval_batch_size, 1, mean, std
        )
        self.train_shards = shard_files(local_path(train_shards), "data.train_shards")
        self.num_samples = sum(shard_sample_count(s) for s in self.train_shards)
        self.val_shards = (
            None if val_shards is None else shard_files(local_path(val_shards), "data.val_shards")
        )
        self.resampled, self.shuffle_buffer, self.seed = resampled, shuffle_buffer, seed
        self.epoch = torch.multiprocessing.Value("i", 0)

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of every training epoch; the workers read it when they start iterating."""
        self.epoch.value = epoch

    def batches_per_rank(self, world_size: int) -> int:
        workers = max(self.num_workers, 1)
        batches = math.ceil(self.num_samples / (self.batch_size * world_size))
        return workers * math.ceil(batches / workers)

    def train_pipeline(self, rank: int, world_size: int) -> "RankBatches":
        workers = max(self.num_workers, 1)
        if not self.resampled and len(self.train_shards) < world_size * workers:
            raise ValueError(
                f"data.train_shards has {len(self.train_shards)} shards for {world_size} ranks x {workers} workers: "
                "every worker needs at least one; use fewer workers or resampled: true"
            )
        pipeline = wds.DataPipeline(
            RankShards(self.train_shards, rank, world_size, self.seed, self.epoch, self.resampled),
            wds.tarfile_to_samples(handler=CountAndContinue(self.skipped)),
            wds.shuffle(self.shuffle_buffer),
            wds.map(DecodeSample(self.transform(True), self.tokenizer, self.skipped)),
            wds.batched(self.batch_size, collation_fn=collate_samples, partial=False),
        ).with_epoch(self.batches_per_rank(world_size) // workers)
        return RankBatches(pipeline, self.batches_per_rank(world_size))

    def train_dataloader(self):
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        return wds.WebLoader(
            self.train_pipeline(rank, world),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is not None or self.val_shards is None:
            return
        self.val_set = self.test_set = CaptionedImages(
            self.split_items("val"), self.transform(False), self.tokenizer, self.skipped, 1
        )

    def val_dataloader(self):
        if self.val_shards is None:
            raise ValueError("data.val_shards is required for validation / test on CC3M shards")
        return super().val_dataloader()

    def test_dataloader(self):
        return self.val_dataloader()

    def split_items(self, split: str) -> list[CaptionedImage]:
        """The validation shards' (image bytes, caption) pairs, in key order."""
        items = []
        for shard in self.val_shards:
            with tarfile.open(shard) as tar:
                members = {}
                for member in tar:
                    if member.isfile():
                        key, _, extension = member.name.rpartition("/")[-1].partition(".")
                        members.setdefault(key, {})[extension] = tar.extractfile(member).read()
            for key, fields in sorted(members.items()):
                image = next((fields[e] for e in IMAGE_EXTENSIONS if e in fields), None)
                if image is None or "txt" not in fields:
                    count_skipped(self.skipped, f"{shard}:{key}", ValueError("no image or caption"))
                    continue
                items.append(CaptionedImage(image, [fields["txt"].decode("utf-8")]))
        return items
