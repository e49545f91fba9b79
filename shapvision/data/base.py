"""The LightningDataModule every dataset of the suite builds on.

Subclasses set ``train_set`` / ``val_set`` / ``test_set`` (map-style datasets yielding
``(image, label)``, a dict, or None for an unreadable image) in ``setup`` and report ``num_classes``
and ``img_size``, which the CLI links into the model. Loaders serve dict batches (``shapvision.data.batch``):
``image``, ``label``, ``index`` = position in the split, optional ``mask``; None when every image of a
batch was unreadable. Map-style datasets get Lightning's DistributedSampler under DDP, so every rank
sees a disjoint shard of the same size.
"""

import os
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from shapvision.data.batch import IndexedSplit, collate_samples


def local_path(value: str) -> Path:
    """A path option with ``$VARIABLES`` and ``~`` expanded, as every path option of the suite."""
    return Path(os.path.expandvars(str(value))).expanduser()


class ShapleyDataModule(L.LightningDataModule):
    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        img_size: int = 224,
        eval_batch_size: int | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.img_size = img_size
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.predict_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def has_masks(self) -> bool:
        """Whether batches carry a ground-truth ``mask`` (for the localisation metrics)."""
        return False

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    def _loader(
        self, dataset, shuffle: bool, batch_size: int, drop_last: bool = False
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__} has no dataset for this stage; was setup() called?"
            )
        return DataLoader(
            IndexedSplit(dataset),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_samples,
        )

    def train_dataloader(self):
        return self._loader(
            self.train_set, shuffle=True, batch_size=self.batch_size, drop_last=True
        )

    def val_dataloader(self):
        return self._loader(self.val_set, shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self):
        return self._loader(self.test_set, shuffle=False, batch_size=self.eval_batch_size)

    def predict_dataloader(self):
        return self._loader(
            self.predict_set if self.predict_set is not None else self.test_set,
            shuffle=False,
            batch_size=self.eval_batch_size,
        )
