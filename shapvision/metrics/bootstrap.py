"""Bootstrap over images: percentile intervals of a table cell and paired p-values between two methods.

Resampling is by multinomial image counts ``(R, M)`` applied to the metric's own ``aggregate``, so a
cell that is a ratio of dataset sums (pixel accuracy, mIoU) is resampled as what it is, not as a mean
of per-image ratios. Draws are seeded: the same per-image values give the same interval.

The paired test (``--compare A B`` of ``python -m shapvision_drivers.tables``) resamples the images the two
methods share with the same counts for both, and reports the two-sided percentile-bootstrap p-value
of "no difference": 2 x the smaller share of resampled differences on either side of 0, with the
usual +1 correction (Davison & Hinkley 1997, ch. 4), capped at 1.
"""

import torch

CHUNK_ELEMENTS = 20_000_000  # resample counts held at once: R_chunk x M


def resample_counts(images: int, resamples: int, generator: torch.Generator) -> torch.Tensor:
    draws = torch.randint(images, (resamples, images), generator=generator)
    counts = torch.zeros(resamples, images, dtype=torch.float64)
    return counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))


def resampled(aggregate, values: dict, columns, resamples: int, seed: int) -> dict:
    """``{column: (R,)}``: the column under ``resamples`` bootstrap draws of the images."""
    images = len(values["key"])
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, CHUNK_ELEMENTS // max(images, 1))
    parts = {column: [] for column in columns}
    for start in range(0, resamples, chunk):
        counts = resample_counts(images, min(chunk, resamples - start), generator)
        out = aggregate(counts, values)
        for column in columns:
            parts[column].append(out[column])
    return {column: torch.cat(p) for column, p in parts.items()}


def bootstrap_intervals(
    aggregate, values: dict, columns, resamples: int, confidence: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The percentile interval of each of ``columns`` of ``aggregate(weights, values)``, all from the
    same resamples; NaN bounds when there are no images, no resamples or no defined draw."""
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    if resamples == 0 or len(values["key"]) == 0:
        return {column: (nan, nan) for column in columns}
    tail = (1 - confidence) / 2
    out = {}
    for column, draws in resampled(aggregate, values, columns, resamples, seed).items():
        draws = draws[~draws.isnan()]
        out[column] = (
            (torch.quantile(draws, tail), torch.quantile(draws, 1 - tail))
            if len(draws)
            else (nan, nan)
        )
    return out


def shared_images(a: dict, b: dict) -> tuple[dict, dict]:
    """The rows of ``a`` and ``b`` whose keys both have, in key order."""
    common = sorted(set(a["key"].tolist()) & set(b["key"].tolist()))
    if not common:
        raise ValueError(
            "the two methods share no images: a paired comparison needs the same images"
        )

    def rows(values):
        position = {int(k): i for i, k in enumerate(values["key"].tolist())}
        select = torch.tensor([position[k] for k in common])
        return {name: value[select] for name, value in values.items()}

    return rows(a), rows(b)


def paired_bootstrap(
    metric_cls, a: dict, b: dict, resamples: int = 2000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Per column of ``metric_cls``: A's and B's value on the shared images, the difference, its p-value."""
    a, b = shared_images(a, b)
    columns = metric_cls.columns
    ones = torch.ones(1, len(a["key"]), dtype=torch.float64)
    point_a, point_b = metric_cls.aggregate(ones, a), metric_cls.aggregate(ones, b)
    draws_a = resampled(metric_cls.aggregate, a, columns, resamples, seed)
    draws_b = resampled(metric_cls.aggregate, b, columns, resamples, seed)
    out = {}
    for column in columns:
        diff = draws_a[column] - draws_b[column]
        diff = diff[~diff.isnan()]
        below, above = int((diff <= 0).sum()), int((diff >= 0).sum())
        p = min(1.0, 2 * (min(below, above) + 1) / (len(diff) + 1))
        out[column] = {
            "a": float(point_a[column][0]),
            "b": float(point_b[column][0]),
            "difference": float(point_a[column][0] - point_b[column][0]),
            "p_value": p,
            "images": len(a["key"]),
        }
    return out
