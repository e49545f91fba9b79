"""MURA v1.1 (Stanford musculoskeletal radiographs): binary abnormality, split by patient.

The official archive unpacks to ``ROOT/{train,valid}/XR_<BODY PART>/patient<id>/study<n>_{positive,negative}/image<k>.png``;
a study's label is its folder suffix (positive = abnormal = class 1). ViT-Shapley's protocol: the
official ``valid/`` is the test set, and ``train/`` is split into train / val by *patient*
(``val_fraction`` of the patients, ``split_seed`` 44), so no patient is in two splits. Radiographs
are grey: they are read as RGB. Unreadable images are skipped, counted and named, as for image folders.
"""

from pathlib import Path

import torch
from torch.utils.data import Dataset

from shapvision.data.image_files import load_or_count
from shapvision.data.image_folder import ImageFolderDataModule

LAYOUT = "ROOT/train/XR_<PART>/patient<id>/study<n>_positive|negative/*.png and the same under ROOT/valid/"
CLASSES = ("negative", "positive")


def mura_samples(split_dir: Path) -> list[tuple[Path, int, str]]:
    """(image path, label, patient id) for every image of a MURA split folder, in sorted order."""
    samples = []
    for path in sorted(split_dir.glob("XR_*/patient*/study*/*.png")):
        study = path.parent.name
        if not study.endswith(("_positive", "_negative")):
            raise ValueError(
                f"{path.parent} is not named study<n>_positive or _negative; expected {LAYOUT}"
            )
        samples.append((path, int(study.endswith("_positive")), path.parent.parent.name))
    return samples


class MURAImages(Dataset):
    def __init__(self, samples, transform, skipped_counter):
        self.samples, self.transform, self.skipped_counter = samples, transform, skipped_counter

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label, _ = self.samples[index]
        image = load_or_count(path, self.transform, self.skipped_counter)
        return None if image is None else (image, label)


class MURADataModule(ImageFolderDataModule):
    def __init__(
        self,
        root: str,
        img_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 4,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 44,
        augment: bool = True,
    ):
        if not 0 < val_fraction < 1:
            raise ValueError(f"data.init_args.val_fraction must be in (0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        super().__init__(
            root,
            img_size=img_size,
            batch_size=batch_size,
            num_workers=num_workers,
            eval_batch_size=eval_batch_size,
            split_seed=split_seed,
            augment=augment,
        )

    def _check_layout(self) -> list[str]:
        root = self.root
        if not root.is_dir():
            raise FileNotFoundError(
                f"data.init_args.root {root} does not exist; expected the MURA layout {LAYOUT}"
            )
        for split in ("train", "valid"):
            if not (root / split).is_dir():
                raise FileNotFoundError(
                    f"data.init_args.root {root} has no {split}/ folder; expected the MURA layout {LAYOUT}"
                )
        self.train_samples, self.test_samples = (
            mura_samples(root / "train"),
            mura_samples(root / "valid"),
        )
        for split, samples in (("train", self.train_samples), ("valid", self.test_samples)):
            if not samples:
                raise FileNotFoundError(
                    f"{root / split} holds no study images; expected the MURA layout {LAYOUT}"
                )
        return list(CLASSES)

    def patient_split(self) -> tuple[list[int], list[int]]:
        """Indices of ``train_samples`` for train and val: whole patients, a fixed random fraction to val."""
        patients = sorted({patient for _, _, patient in self.train_samples})
        order = torch.randperm(
            len(patients), generator=torch.Generator().manual_seed(self.split_seed)
        ).tolist()
        val_patients = {
            patients[i] for i in order[: max(1, round(self.val_fraction * len(patients)))]
        }
        train = [i for i, (_, _, p) in enumerate(self.train_samples) if p not in val_patients]
        val = [i for i, (_, _, p) in enumerate(self.train_samples) if p in val_patients]
        return train, val

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self.patient_split()
        self.train_set = MURAImages(
            [self.train_samples[i] for i in train], self._transform(True), self.skipped
        )
        self.val_set = MURAImages(
            [self.train_samples[i] for i in val], self._transform(False), self.skipped
        )
        self.test_set = MURAImages(self.test_samples, self._transform(False), self.skipped)
