"""Batches as dicts: ``image``, ``label``, ``index`` (position in the split), optional ``mask``.

Every split a data module serves is wrapped in :class:`IndexedSplit`, so a sample's ``index`` is its
position in that split, set before loading: an unreadable image (its dataset returns None) is dropped
by :func:`collate_samples` without shifting any other image's index. A batch from which every image
was dropped collates to None, which every step of the suite accepts (it does nothing).
"""

import torch
from torch.utils.data import Dataset, default_collate

IMAGE, LABEL, INDEX, MASK = "image", "label", "index", "mask"


class IndexedSplit(Dataset):
    """Wraps a dataset yielding ``(image, label)``, ``(image, label, mask)``, a dict with ``image`` (and
    ``label`` / ``mask``), or None for an unreadable image."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict | None:
        item = self.dataset[index]
        if item is None:
            return None
        if isinstance(item, dict):
            sample = dict(item)
        elif len(item) == 3:
            image, label, mask = item
            sample = {IMAGE: image, LABEL: label, MASK: mask}
        else:
            image, label = item
            sample = {IMAGE: image, LABEL: label}
        sample[INDEX] = index
        return sample

    def __getattr__(self, name):
        # Split-level facts (``paths`` of a predict folder, ``samples``) stay reachable through the wrapper;
        # protocol names stay the wrapper's own (a forwarded ``__getitems__`` would bypass ``__getitem__``).
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def collate_samples(samples: list[dict | None]) -> dict | None:
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return None
    batch = default_collate(kept)
    batch[INDEX] = torch.as_tensor(batch[INDEX], dtype=torch.long)
    return batch
