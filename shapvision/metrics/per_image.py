"""The base of every explanation metric: values kept per image, keyed by dataset index.

A metric records, for each image of a batch, its ``fields`` (scalars, or curves of fixed length; NaN
where the image has no defined value) under the image's key (its dataset index, or index and caption
slot in image-text evaluation). ``compute`` gathers every rank's rows (``dist_reduce_fx="cat"``),
keeps one row per key (the copies a DistributedSampler pads the last shard with are dropped), and
aggregates. So a DDP table equals the one-process table by construction, whatever the image count.

``aggregate(weights, values)`` maps per-image values to the table's columns under image weights
``(R, M)``: the point estimate uses weights of one, the 95 % bootstrap interval resamples the images
(multinomial counts, ``resamples`` draws, seeded) and takes the percentiles. A column that is a ratio
of sums over the dataset (pixel accuracy, mIoU) is resampled the same way, so every cell gets its
interval. The per-image values are also returned, so two methods on the same images can be compared
with a paired bootstrap (:func:`shapvision.metrics.bootstrap.paired_bootstrap`).
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.bootstrap import bootstrap_intervals


def weighted_mean(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` ``(M,)`` or ``(M, L)`` under image weights ``(R, M)``, NaN rows left out."""
    defined = ~values.isnan()
    if values.dim() == 2:
        defined = defined.all(1, keepdim=True)
    total = weights @ torch.where(defined, values, 0.0)
    count = weights @ defined.to(weights.dtype)
    return total / count


def mean_curves(weights: torch.Tensor, values: dict, columns: dict[str, str], area) -> dict:
    """Insertion / deletion style columns: for each curve field, its mean curve (under the field's
    name) and ``area(mean curve)`` under its column name."""
    out = {}
    for field, column in columns.items():
        out[field] = weighted_mean(weights, values[field])
        out[column] = area(out[field])
    return out


class PerImageMetric(Metric):
    """Subclasses set ``fields`` ({name: curve length, 0 for a scalar}) and ``columns``, record rows with
    :meth:`record`, and override :meth:`aggregate` where a column is not the mean of a field of its name."""

    full_state_update = False
    fields: dict[str, int] = {}
    columns: tuple[str, ...] = ()
    higher_is_better: dict[str, bool] = {}

    def __init__(
        self,
        resamples: int = 1000,
        confidence: float = 0.95,
        bootstrap_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if resamples < 0 or not 0 < confidence < 1:
            raise ValueError(
                f"bootstrap resamples must be >= 0 and confidence in (0, 1), got {resamples}, {confidence}"
            )
        self.resamples, self.confidence, self.bootstrap_seed = resamples, confidence, bootstrap_seed
        # Flat float64 states, so ranks with different row counts gather by padding one dimension.
        self.add_state("keys", default=[], dist_reduce_fx="cat")
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def _sync_dist(self, *args, **kwargs) -> None:
        # A rank with no rows (a metric that scores only the first images) would gather an empty
        # tensor of the metric's float32 dtype against the others' float64 rows: a collective mismatch.
        for name in ("keys", "rows"):
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=torch.float64, device=self.device)])
        super()._sync_dist(*args, **kwargs)

    def field_sizes(self) -> dict[str, int]:
        return dict(self.fields)

    def record(self, keys: torch.Tensor, **values: torch.Tensor) -> None:
        sizes = self.field_sizes()
        if set(values) != set(sizes):
            raise ValueError(f"{type(self).__name__} records {sorted(sizes)}, got {sorted(values)}")
        parts = [
            values[name].double().reshape(len(keys), max(size, 1)) for name, size in sizes.items()
        ]
        self.keys.append(keys.double().flatten())
        self.rows.append(torch.cat(parts, 1).flatten())

    def per_image(self) -> dict[str, torch.Tensor]:
        """``{"key": (M,), field: (M,) or (M, L)}``, one row per key in key order (synced under DDP)."""
        keys = torch.cat(self.keys) if isinstance(self.keys, list) else self.keys
        rows = torch.cat(self.rows) if isinstance(self.rows, list) else self.rows
        sizes = self.field_sizes()
        width = sum(max(size, 1) for size in sizes.values())
        rows = rows.double().reshape(-1, width)
        first = first_occurrence(keys)
        keys, rows = keys[first], rows[first]
        out, start = {"key": keys.long()}, 0
        for name, size in sizes.items():
            part = rows[:, start : start + max(size, 1)]
            out[name] = part if size else part[:, 0]
            start += max(size, 1)
        return out

    @classmethod
    def aggregate(cls, weights: torch.Tensor, values: dict[str, torch.Tensor]) -> dict:
        return {column: weighted_mean(weights, values[column]) for column in cls.columns}

    def compute(self) -> dict:
        values = self.per_image()
        images = len(values["key"])
        point = {
            name: value[0]
            for name, value in self.aggregate(torch.ones(1, images).double(), values).items()
        }
        intervals = bootstrap_intervals(
            self.aggregate,
            values,
            self.columns,
            self.resamples,
            self.confidence,
            self.bootstrap_seed,
        )
        result = {}
        for column in self.columns:
            low, high = intervals[column]
            result[column] = point[column].float()
            result[f"{column}_ci_low"], result[f"{column}_ci_high"] = low.float(), high.float()
        for name, value in point.items():
            if name not in self.columns:
                result[name] = value.float()
        for name, size in self.field_sizes().items():
            undefined = values[name].isnan()
            if size:
                undefined = undefined.any(1)
            if name in self.columns and bool(undefined.any()):
                result[f"{name}_undefined"] = undefined.sum().float()
        result["per_image"] = values
        return result


def first_occurrence(index: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of every distinct value of ``index``, in increasing value order."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]
