"""data/layout_datasets.py on tiny archives in the official structures; the data modules read the result."""

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shapvision.data import (
    CIFAR10DataModule,
    ImageFolderDataModule,
    ImageNetSDataModule,
    MURADataModule,
)

from .helpers import REPOSITORY, run_module, write_cifar10

SCRIPT = REPOSITORY / "data" / "layout_datasets.py"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def trimap() -> bytes:
    """An Oxford Pets trimap: pet (1) on the left, its border (3), background (2) on the right."""
    values = np.full((20, 20), 2, dtype=np.uint8)
    values[:, :10], values[:, 10:15] = 1, 3
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def run(*args):
    return run_module(SCRIPT, *args, cwd=Path.cwd(), check=False, timeout=120)


def test_imagenette_and_pets_archives_become_image_folders(tmp_path):
    with tarfile.open(tmp_path / "imagenette2.tgz", "w:gz") as tar:
        for split in ("train", "val"):
            for wnid in ("n01440764", "n02102040"):
                for k in range(2):
                    add(tar, f"imagenette2/{split}/{wnid}/{wnid}_{k}.JPEG", png())
    assert run("imagenette", tmp_path / "imagenette2.tgz", tmp_path / "nette").returncode == 0
    data = ImageFolderDataModule(
        str(tmp_path / "nette"), img_size=16, num_workers=0, test_from_val=True
    )
    assert data.class_names == ["n01440764", "n02102040"]

    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
        for breed in ("Abyssinian", "american_bulldog"):
            for k in range(1, 21):
                add(tar, f"images/{breed}_{k}.jpg", png())
        add(tar, "images/README.txt", b"not an image")
    result = run("pets", tmp_path / "images.tar.gz", tmp_path / "pets")
    assert result.returncode == 0, result.stderr
    counts = {
        split: len(list((tmp_path / "pets" / split / "Abyssinian").iterdir()))
        for split in ("train", "val", "test")
    }
    assert counts == {"train": 16, "val": 2, "test": 2}
    data = ImageFolderDataModule(str(tmp_path / "pets"), img_size=16, num_workers=0)
    assert data.class_names == ["Abyssinian", "american_bulldog"] and data.has_test_dir

    with tarfile.open(tmp_path / "annotations.tar.gz", "w:gz") as tar:
        for breed in ("Abyssinian", "american_bulldog"):
            for k in range(1, 21):
                add(tar, f"annotations/trimaps/{breed}_{k}.png", trimap())
                add(tar, f"annotations/trimaps/._{breed}_{k}.png", b"macOS resource fork")
    result = run(
        "pets",
        tmp_path / "images.tar.gz",
        tmp_path / "pets",
        "--trimaps",
        tmp_path / "annotations.tar.gz",
    )
    assert result.returncode == 0, result.stderr
    first_test = sorted((tmp_path / "pets" / "test" / "Abyssinian").iterdir())[0]
    mask_file = tmp_path / "pets" / "masks" / "test" / "Abyssinian" / f"{first_test.stem}.png"
    mask = np.array(Image.open(mask_file))
    assert (mask[:, :15] == 255).all() and (mask[:, 15:] == 0).all()  # pet and border; background
    data = ImageFolderDataModule(
        str(tmp_path / "pets"),
        img_size=16,
        num_workers=0,
        mask_root=str(tmp_path / "pets" / "masks"),
    )
    data.setup("test")
    assert data.has_masks and next(iter(data.test_dataloader()))["mask"].shape[1:] == (1, 16, 16)


def test_mura_and_imagenet_archives(tmp_path):
    with zipfile.ZipFile(tmp_path / "MURA-v1.1.zip", "w") as handle:
        for split in ("train", "valid"):
            for p in range(3):
                handle.writestr(
                    f"MURA-v1.1/{split}/XR_HAND/patient{p:05d}/study1_{'positive' if p else 'negative'}/image1.png",
                    png(),
                )
        handle.writestr("MURA-v1.1/train_image_paths.csv", "x")
    assert run("mura", tmp_path / "MURA-v1.1.zip", tmp_path / "mura").returncode == 0
    assert MURADataModule(str(tmp_path / "mura"), num_workers=0, val_fraction=0.34).num_classes == 2

    synsets = ("n01440764", "n01443537")
    with tarfile.open(tmp_path / "ILSVRC2012_img_train.tar", "w") as outer:
        for wnid in synsets:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                add(inner, f"{wnid}_1.JPEG", png())
            add(outer, f"{wnid}.tar", buffer.getvalue())
    with tarfile.open(tmp_path / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in (1, 2):
            add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", png())
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01443537 1 2 3 4\nILSVRC2012_val_00000002,n01440764 1 2 3 4\n"
    )
    result = run(
        "imagenet",
        tmp_path / "ILSVRC2012_img_train.tar",
        tmp_path / "imagenet",
        "--val",
        tmp_path / "ILSVRC2012_img_val.tar",
        "--val-labels",
        tmp_path / "LOC_val_solution.csv",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "imagenet" / "val" / "n01443537" / "ILSVRC2012_val_00000001.JPEG").is_file()
    assert ImageFolderDataModule(str(tmp_path / "imagenet"), num_workers=0).class_names == list(
        synsets
    )


def test_the_cifar10_archive_becomes_the_python_batches_the_data_module_reads(tmp_path):
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    result = run("cifar10", tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar10")
    assert result.returncode == 0, result.stderr
    data = CIFAR10DataModule(str(tmp_path / "cifar10"), val_size=10)
    data.setup("fit")
    assert len(data.test_set) == 10 and data.class_names[0] == "airplane"


def test_the_imagenet_s_masks_and_imagenet_val_become_the_release_layout(tmp_path):
    """The release zip's validation-segmentation masks, and each one's image from the flat val tar."""
    mask = np.zeros((20, 20, 3), dtype=np.uint8)
    mask[:10, :, 0] = 7  # class id 7 on the top half
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    with zipfile.ZipFile(tmp_path / "ImageNetS50.zip", "w") as handle:
        for i, wnid in ((1, "n01443537"), (3, "n01491361")):
            handle.writestr(
                f"ImageNetS50/validation-segmentation/{wnid}/ILSVRC2012_val_{i:08d}.png",
                buffer.getvalue(),
            )
    with tarfile.open(tmp_path / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in (1, 2, 3):
            add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", png())
    out = tmp_path / "ImageNetS50"
    result = run(
        "imagenet-s",
        tmp_path / "ImageNetS50.zip",
        out,
        "--val",
        tmp_path / "ILSVRC2012_img_val.tar",
    )
    assert result.returncode == 0, result.stderr
    assert (out / "validation" / "n01491361" / "ILSVRC2012_val_00000003.JPEG").is_file()
    assert not list(out.glob("validation/*/ILSVRC2012_val_00000002.JPEG"))  # no mask, not copied
    data = ImageNetSDataModule(str(out), img_size=8, num_workers=0)
    data.setup("test")
    assert len(data.test_set) == 2 and data.test_set[0]["mask"][:4].all()
    (tmp_path / "short.tar").write_bytes(b"")
    with tarfile.open(tmp_path / "short.tar", "w") as tar:
        add(tar, "ILSVRC2012_val_00000001.JPEG", png())
    result = run(
        "imagenet-s",
        tmp_path / "ImageNetS50.zip",
        tmp_path / "other",
        "--val",
        tmp_path / "short.tar",
    )
    assert result.returncode != 0 and "lacks 1 of the 2 images the masks name" in result.stderr


def test_a_class_folder_archive_is_split_per_class_as_pets(tmp_path):
    """WBC: any zip of <class>/<image> folders, 80/10/10 per class with seed 44."""
    with zipfile.ZipFile(tmp_path / "WBC.zip", "w") as handle:
        for cell in ("eosinophil", "neutrophil"):
            for i in range(10):
                handle.writestr(f"WBC/{cell}/{cell}_{i}.jpg", png())
    result = run("wbc", tmp_path / "WBC.zip", tmp_path / "wbc")
    assert result.returncode == 0, result.stderr
    counts = {
        split: len(list((tmp_path / "wbc" / split / "eosinophil").iterdir()))
        for split in ("train", "val", "test")
    }
    assert counts == {"train": 8, "val": 1, "test": 1}
    data = ImageFolderDataModule(str(tmp_path / "wbc"), num_workers=0)
    assert data.class_names == ["eosinophil", "neutrophil"]
    again = run("wbc", tmp_path / "WBC.zip", tmp_path / "again")
    assert again.returncode == 0
    assert sorted(p.name for p in (tmp_path / "again" / "test" / "neutrophil").iterdir()) == sorted(
        p.name for p in (tmp_path / "wbc" / "test" / "neutrophil").iterdir()
    )


@pytest.mark.parametrize("dataset", ["imagenette", "pets", "cifar10"])
def test_a_wrong_archive_is_named(tmp_path, dataset):
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        add(tar, "something/else.txt", b"x")
    result = run(dataset, tmp_path / "other.tar", tmp_path / "out")
    assert result.returncode != 0 and "other.tar has no" in result.stderr
    assert "not found" in run(dataset, tmp_path / "missing.tgz", tmp_path / "out").stderr
