"""What every explanation metric sees of one test batch, and the perturbations they share.

The evaluation module builds one :class:`ExplanationBatch` per test batch and hands it, with each
method's :class:`Attribution`, to every metric's ``update``. Costly shared quantities (the model's
reference Shapley values) are computed once per batch, on first use; the unperturbed logits come from
the evaluation's own forward.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from shapvision.attribution.base import Attribution
from shapvision.attribution.explained_model import ExplainedModel
from shapvision.chunked import map_chunks


@dataclass
class RetrievalContext:
    """What retrieval metrics see of an image-text batch: the model's image features (of perturbed
    copies too), every caption's unit embedding with its index and its image's, the pixel fill."""

    image_features: Callable[[torch.Tensor], torch.Tensor]
    texts: torch.Tensor
    text_index: torch.Tensor
    text_image_index: torch.Tensor
    pixel_mean: tuple = (0.0, 0.0, 0.0)
    pixel_std: tuple = (1.0, 1.0, 1.0)


@dataclass
class ExplanationBatch:
    images: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor
    model: ExplainedModel
    labels: torch.Tensor | None = None
    gt_mask: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    chunk: int = 1024
    cache: dict = field(default_factory=dict)
    key: torch.Tensor | None = (
        None  # what metrics count each row once by; the dataset index if None
    )
    retrieval: RetrievalContext | None = None

    @property
    def keys(self) -> torch.Tensor:
        return self.index if self.key is None else self.key

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    @property
    def label_or_target(self) -> torch.Tensor:
        return self.labels if self.labels is not None else self.target

    def pixel_map(self, attribution: Attribution) -> torch.Tensor:
        return attribution.pixel_map(self.model.grid_size, self.size).float()

    def patch_values(self, attribution: Attribution) -> torch.Tensor:
        return attribution.patches.float()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """p(class | image) for many perturbed copies, ``chunk`` forwards at a time."""
        return map_chunks(
            self.model.probabilities, images, classes, chunk=self.chunk, what="perturbed forwards"
        )

    @torch.no_grad()
    def masked_probabilities(self, images, keep, classes) -> torch.Tensor:
        return map_chunks(
            self.model.masked_probabilities,
            images,
            keep,
            classes,
            chunk=self.chunk,
            what="masked forwards",
        )

    def original_probability(self, classes: torch.Tensor) -> torch.Tensor:
        """p(class | unperturbed image), from the logits the evaluation already computed when given."""
        if self.logits is None:
            with torch.no_grad():
                self.logits = self.model.logits(self.images)
        return self.model.link(self.logits).gather(1, classes.view(-1, 1)).squeeze(1)


def pixel_ranks(pixel_map: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel ``(B, H * W)``: 0 = most relevant (ties broken by position)."""
    flat = pixel_map.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    return order.argsort(1)


def remove_top_fractions(
    images: torch.Tensor, pixel_map: torch.Tensor, fractions, fill: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """For each fraction f, the image with its top ``int(H * W * f)`` pixels set to ``fill``: ``(B * F, C, H, W)``."""
    batch, _, h, w = images.shape
    ranks = pixel_ranks(pixel_map).view(batch, 1, 1, h, w)
    counts = torch.tensor([int(h * w * f) for f in fractions], device=images.device).view(
        1, -1, 1, 1, 1
    )
    removed = ranks < counts  # (B, F, 1, H, W)
    fill = as_fill(fill, images)
    if fill.dim() == 4:  # a per-image fill (B, C, H or 1, W or 1)
        fill = fill.unsqueeze(1)
    out = torch.where(removed, fill, images.unsqueeze(1))
    return out.reshape(-1, *images.shape[1:])


def as_fill(fill, images: torch.Tensor) -> torch.Tensor:
    """A removal fill as a tensor that broadcasts over ``images``: a scalar, one value per channel
    (a list, e.g. black in normalised space: -mean / std), or a per-image tensor ``(B, C, H, W)``."""
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    if fill.dim() == 1:
        if fill.numel() not in (1, images.shape[1]):
            raise ValueError(
                f"a per-channel fill needs {images.shape[1]} values (one per channel), got {fill.numel()}"
            )
        fill = fill.view(1, -1, 1, 1)
    return fill
