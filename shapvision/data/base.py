"""The LightningDataModule every dataset of the suite builds on.

Subclasses set ``train_set`` / ``val_set`` / ``test_set`` (map-style datasets yielding
``(image, label)``, a dict, or None for an unreadable image) in ``setup`` and report ``num_classes``
and ``img_size``, which the CLI links into the model. Loaders serve dict batches (``shapvision.data.batch``):
``image``, ``label``, ``index`` = position in the split, optional ``mask``; None when every image of a
batch was unreadable. Under DDP every rank sees a disjoint shard of the same size: training through
``ResumableSampler`` (a DistributedSampler that a mid-epoch checkpoint resumes exactly), evaluation
through Lightning's DistributedSampler.
"""

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from shapvision.data.batch import IndexedSplit, collate_samples
from shapvision.data.preprocessing import Preprocessing
from shapvision.data.resumable import ResumableSampler


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
        self._resume_position: tuple[int, int] | None = None

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

    def preprocessing(self) -> Preprocessing | None:
        """How an image file becomes this data's model input (saved in checkpoints), when it can."""
        return None

    def _loader(
        self,
        dataset,
        shuffle: bool,
        batch_size: int,
        drop_last: bool = False,
        sampler=None,
        generator=None,
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__} has no dataset for this stage; was setup() called?"
            )
        return DataLoader(
            IndexedSplit(dataset),
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=generator,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_samples,
        )

    def train_dataloader(self):
        if self.train_set is None:
            return self._loader(None, shuffle=True, batch_size=self.batch_size)
        trainer, seed = self.trainer, int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = ResumableSampler(
            IndexedSplit(self.train_set),
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            seed=seed,
            drop_last=True,
        )
        if self._resume_position is not None:
            epoch, batches = self._resume_position
            sampler.resume_at(epoch, batches * self.batch_size)
        # The loader's own generator seeds its workers: the global stream (the masks') is not drawn
        # from when an epoch's iteration starts, so a resumed run draws the same masks.
        return self._loader(
            self.train_set,
            shuffle=False,
            batch_size=self.batch_size,
            drop_last=True,
            sampler=sampler,
            generator=torch.Generator().manual_seed(seed),
        )

    def state_dict(self) -> dict:
        """Where training stands in the epoch, saved in every checkpoint (see ``ResumableSampler``)."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit":
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": trainer.current_epoch, "batches_trained": progress.processed}

    def load_state_dict(self, state_dict: dict) -> None:
        if "epoch" in state_dict:
            self._resume_position = (state_dict["epoch"], state_dict["batches_trained"])

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
