"""Lay out the datasets of the seeds' tables from their official archives, in the layouts the data modules read.

    python data/layout_datasets.py imagenette imagenette2.tgz              OUT   # train/ val/ (use test_from_val)
    python data/layout_datasets.py pets images.tar.gz                      OUT   # train/ val/ test/, 80/10/10 per breed, seed 44
    python data/layout_datasets.py pets images.tar.gz OUT --trimaps annotations.tar.gz # + OUT/masks/<split>/<breed>/<n>.png
    python data/layout_datasets.py mura MURA-v1.1.zip                      OUT   # OUT/train, OUT/valid (MURADataModule)
    python data/layout_datasets.py imagenet ILSVRC2012_img_train.tar OUT --val ILSVRC2012_img_val.tar --val-labels LOC_val_solution.csv
    python data/layout_datasets.py cifar10 cifar-10-python.tar.gz          OUT   # the python batches (CIFAR10DataModule)
    python data/layout_datasets.py imagenet-s ImageNetS919.zip OUT --val ILSVRC2012_img_val.tar  # ImageNetSDataModule
    python data/layout_datasets.py wbc WBC.zip                             OUT   # <class>/<image> -> train/ val/ test/ 80/10/10

Nothing is downloaded: point it at archives fetched on a machine with network access. Existing
files in OUT are kept (rerunning resumes); an archive that is not what it should be stops the script
with a message naming the file and what was expected.

Pets object masks (``--trimaps``, for RMA / RRA): the pet is trimap classes 1 (pet) and 3 (its
border), written as 255; 2 (background) as 0. Read them with ``ImageFolderDataModule(mask_root=OUT/masks)``.
"""

import argparse
import csv
import io
import random
import re
import sys
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE = re.compile(r"\.(jpe?g|png)$", re.IGNORECASE)


def fail(message: str) -> None:
    sys.exit(f"layout_datasets: {message}")


def write(target: Path, data: bytes) -> None:
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def tar_members(archive: Path):
    """(name, bytes) of every regular file in a tar archive (any compression)."""
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def imagenette(archive: Path, out: Path) -> int:
    count = 0
    for name, data in tar_members(archive):
        parts = Path(name).parts
        if len(parts) >= 4 and parts[-3] in ("train", "val") and IMAGE.search(name):
            write(out / parts[-3] / parts[-2] / parts[-1], data)
            count += 1
    if not count:
        fail(
            f"{archive} has no <top>/train|val/<wnid>/<image>: is it the fast.ai imagenette2 archive?"
        )
    return count


PET_TRIMAP_CLASSES = (1, 3)


def split_per_class(by_class: dict[str, list], out: Path, seed: int) -> dict[str, tuple[str, str]]:
    """80/10/10 train / val / test per class, shuffled by ``seed`` after sorting: {stem: (split, class)}."""
    rng, split_of = random.Random(seed), {}
    for label, items in sorted(by_class.items()):
        items.sort()
        rng.shuffle(items)
        n_train, n_val = int(0.8 * len(items)), int(0.1 * len(items))
        for i, (file, data) in enumerate(items):
            split = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            write(out / split / label / file, data)
            split_of[Path(file).stem] = (split, label)
    return split_of


def archive_members(archive: Path):
    """(name, bytes) of every file in a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            for name in handle.namelist():
                if not name.endswith("/"):
                    yield name, handle.read(name)
    else:
        yield from tar_members(archive)


def class_folders(archive: Path, out: Path, seed: int = 44) -> int:
    """An archive of ``.../<class>/<image>`` (WBC) split 80/10/10 per class with ``seed``, as Pets."""
    by_class = defaultdict(list)
    for name, data in archive_members(archive):
        parts = Path(name).parts
        if len(parts) >= 2 and IMAGE.search(name) and not parts[-1].startswith("."):
            by_class[parts[-2]].append((parts[-1], data))
    if len(by_class) < 2:
        fail(
            f"{archive} has no <class>/<image> folders of at least two classes: expected one folder per class"
        )
    split_per_class(by_class, out, seed)
    return sum(len(v) for v in by_class.values())


def pets(archive: Path, out: Path, seed: int = 44, trimaps: Path | None = None) -> int:
    by_breed = defaultdict(list)
    for name, data in tar_members(archive):
        match = re.fullmatch(r"(?:.*/)?images/(.+)_(\d+)\.jpg", name)
        if match:
            by_breed[match.group(1)].append((f"{match.group(1)}_{match.group(2)}.jpg", data))
    if not by_breed:
        fail(
            f"{archive} has no images/<Breed_Name>_<n>.jpg: is it the Oxford-IIIT Pets images.tar.gz?"
        )
    split_of = split_per_class(by_breed, out, seed)
    if trimaps is not None:
        pets_masks(trimaps, out / "masks", split_of)
    return sum(len(v) for v in by_breed.values())


def pets_masks(archive: Path, out: Path, split_of: dict[str, tuple[str, str]]) -> None:
    """annotations/trimaps/<Breed>_<n>.png -> out/<split>/<breed>/<Breed>_<n>.png, pet = 255."""
    written = 0
    for name, data in tar_members(archive):
        match = re.fullmatch(r"(?:.*/)?trimaps/([^/.][^/]*)\.png", name)
        if not match or match.group(1) not in split_of:
            continue
        split, breed = split_of[match.group(1)]
        trimap = np.array(Image.open(io.BytesIO(data)))
        mask = np.isin(trimap, PET_TRIMAP_CLASSES).astype(np.uint8) * 255
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, format="PNG")
        write(out / split / breed / f"{match.group(1)}.png", buffer.getvalue())
        written += 1
    missing = len(split_of) - written
    if not written:
        fail(
            f"{archive} has no annotations/trimaps/<Breed_Name>_<n>.png: is it the Oxford-IIIT Pets annotations.tar.gz?"
        )
    if missing:
        print(f"pets: {missing} images have no trimap in {archive}; mask_root will name them")


def mura(archive: Path, out: Path) -> int:
    count = 0
    with zipfile.ZipFile(archive) as handle:
        for name in handle.namelist():
            match = re.search(
                r"(train|valid)/(XR_[A-Z]+/patient\d+/study\d+_(?:positive|negative)/[^/]+\.png)$",
                name,
            )
            if match:
                write(out / match.group(1) / match.group(2), handle.read(name))
                count += 1
    if not count:
        fail(
            f"{archive} has no train|valid/XR_*/patient*/study*_positive|negative/*.png: is it MURA-v1.1.zip?"
        )
    return count


def read_val_labels(path: Path) -> dict[str, str]:
    """Validation image stem -> synset, from Kaggle's LOC_val_solution.csv or a 'file wnid' text file."""
    labels = {}
    text = path.read_text()
    if text.startswith("ImageId"):
        for row in csv.DictReader(io.StringIO(text)):
            labels[row["ImageId"]] = row["PredictionString"].split()[0]
    else:
        for line in text.split("\n"):
            if line.strip():
                file, wnid = line.split()[:2]
                labels[Path(file).stem] = wnid
    if not labels:
        fail(
            f"{path} holds no validation labels (ImageId,PredictionString CSV or 'file wnid' lines)"
        )
    return labels


def imagenet(
    train_archive: Path, out: Path, val_archive: Path | None, val_labels: Path | None
) -> int:
    count = 0
    with tarfile.open(train_archive) as outer:
        for member in outer:
            if not (member.isfile() and member.name.endswith(".tar")):
                continue
            wnid = Path(member.name).stem
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                for image in inner:
                    if image.isfile():
                        write(
                            out / "train" / wnid / Path(image.name).name,
                            inner.extractfile(image).read(),
                        )
                        count += 1
    if not count:
        fail(f"{train_archive} holds no per-synset .tar files: is it ILSVRC2012_img_train.tar?")
    if val_archive is not None:
        if val_labels is None:
            fail(
                "--val needs --val-labels (LOC_val_solution.csv or a 'file wnid' list) to sort images by synset"
            )
        labels = read_val_labels(val_labels)
        for name, data in tar_members(val_archive):
            stem = Path(name).stem
            if stem not in labels:
                fail(f"{val_labels} has no label for {name}")
            write(out / "val" / labels[stem] / Path(name).name, data)
            count += 1
    return count


CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


def cifar10(archive: Path, out: Path) -> int:
    """The python batches of cifar-10-python.tar.gz (cifar-10-batches-py/) directly under OUT."""
    found = set()
    for name, data in tar_members(archive):
        if Path(name).name in CIFAR10_FILES and Path(name).parent.name == "cifar-10-batches-py":
            write(out / Path(name).name, data)
            found.add(Path(name).name)
    missing = [n for n in CIFAR10_FILES if n not in found]
    if missing:
        fail(
            f"{archive} has no cifar-10-batches-py/{', '.join(missing)}: not cifar-10-python.tar.gz"
        )
    return 60_000


def imagenet_s(masks_zip: Path, out: Path, val_archive: Path | None) -> int:
    """ImageNet-S validation: the release's masks (``.../validation-segmentation/<wnid>/<name>.png`` in
    its zip) under OUT/validation-segmentation, and each mask's image copied from ImageNet val
    (``<name>.JPEG``, flat or per synset in the tar) to OUT/validation/<wnid>/, as the release's
    ``datapreparation_val.py`` does."""
    if val_archive is None:
        fail(
            "imagenet-s needs --val ILSVRC2012_img_val.tar: the release ships masks, its images are ImageNet val"
        )
    wanted: dict[str, str] = {}
    with zipfile.ZipFile(masks_zip) as archive:
        for name in archive.namelist():
            parts = Path(name).parts
            if len(parts) >= 3 and parts[-3] == "validation-segmentation" and name.endswith(".png"):
                write(out / "validation-segmentation" / parts[-2] / parts[-1], archive.read(name))
                wanted[Path(parts[-1]).stem] = parts[-2]
    if not wanted:
        fail(
            f"{masks_zip} holds no validation-segmentation/<wnid>/<name>.png: is it an ImageNet-S release zip?"
        )
    found = 0
    for name, data in tar_members(val_archive):
        stem = Path(name).stem
        if stem in wanted:
            write(out / "validation" / wanted[stem] / Path(name).name, data)
            found += 1
    if found < len(wanted):
        fail(
            f"{val_archive} lacks {len(wanted) - found} of the {len(wanted)} images the masks name: is it ILSVRC2012_img_val.tar?"
        )
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "dataset",
        choices=["imagenette", "pets", "mura", "imagenet", "cifar10", "imagenet-s", "wbc"],
    )
    parser.add_argument("archive", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--val", type=Path, help="imagenet, imagenet-s: ILSVRC2012_img_val.tar")
    parser.add_argument(
        "--val-labels", type=Path, help="imagenet: LOC_val_solution.csv or 'file wnid' lines"
    )
    parser.add_argument(
        "--seed", type=int, default=44, help="pets, wbc: split seed (ViT-Shapley: 44)"
    )
    parser.add_argument(
        "--trimaps",
        type=Path,
        help="pets: annotations.tar.gz, written as object masks under OUT/masks",
    )
    args = parser.parse_args(argv)
    for path in (args.archive, args.val, args.val_labels, args.trimaps):
        if path is not None and not path.is_file():
            fail(f"{path} not found")
    if args.dataset == "imagenette":
        count = imagenette(args.archive, args.out)
    elif args.dataset == "pets":
        count = pets(args.archive, args.out, args.seed, args.trimaps)
    elif args.dataset == "mura":
        count = mura(args.archive, args.out)
    elif args.dataset == "cifar10":
        count = cifar10(args.archive, args.out)
    elif args.dataset == "wbc":
        count = class_folders(args.archive, args.out, args.seed)
    elif args.dataset == "imagenet-s":
        count = imagenet_s(args.archive, args.out, args.val)
    else:
        count = imagenet(args.archive, args.out, args.val, args.val_labels)
    print(f"{args.dataset}: {count} images laid out under {args.out}")


if __name__ == "__main__":
    main()
