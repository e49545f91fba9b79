"""Shard decoding throughput of the CC3M loader per worker: how many workers a GPU needs.

Writes ``--shards`` synthetic shards in img2dataset's layout (256 px JPEGs of noise, as img2dataset
resizes CC3M, and short captions) to a temporary folder, then streams them through the training
pipeline of :class:`CC3MDataModule` (tar reading, shuffle buffer, JPEG decode, open_clip's random
resized crop to 224 and normalisation, tokenisation, batching) with 1 worker and ``--workers``
workers. Prints samples per second and per worker.

    python benchmarks/shard_decoding.py                 # 2 shards x 256 samples, 1 and 2 workers
"""

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from device import device_name
from PIL import Image

from shapvision.data import CC3MDataModule


def write_shards(folder: Path, shards: int, samples: int) -> None:
    rng = np.random.default_rng(0)
    key = 0
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for _ in range(samples):
                buffer = io.BytesIO()
                pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
                for extension, data in (
                    ("jpg", buffer.getvalue()),
                    ("txt", f"a photo of a scene, number {key}".encode()),
                    ("json", json.dumps({"key": f"{key:09d}"}).encode()),
                ):
                    info = tarfile.TarInfo(f"{key:09d}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                key += 1
        (folder / f"{shard:05d}_stats.json").write_text(json.dumps({"successes": samples}))


def throughput(folder: Path, workers: int, batch: int) -> float:
    data = CC3MDataModule(
        str(folder), tokenizer="EVA02-B-16", batch_size=batch, num_workers=workers
    )
    loader = data.train_dataloader()
    start, seen = time.perf_counter(), 0
    for batch_ in loader:
        seen += batch_["image"].shape[0]
    return seen / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--samples", type=int, default=256, help="samples per shard")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds (make test)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.shards, args.samples, args.workers, args.batch = 1, 8, 1, 4
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_shards(folder, args.shards, args.samples)
        print(
            f"# CC3M shard decoding, {args.shards} x {args.samples} samples of 256 px, 224 crops, "
            f"batch {args.batch}, {device_name(torch.device('cpu'))}"
        )
        print("| workers | samples / s | samples / s / worker |")
        print("|---|---|---|")
        for workers in sorted({1, args.workers}):
            rate = throughput(folder, workers, args.batch)
            print(f"| {workers} | {rate:.0f} | {rate / workers:.0f} |")


if __name__ == "__main__":
    main()
