"""CLIP insertion / deletion on retrieval (SVO Tables 5-6): our reconstruction of ECLIP's protocol.

ECLIP's published code holds only ImageNet zero-shot scripts: 100 steps of 0.5 % of the pixels, the
model evaluated every 10 steps (11 points, 0 % .. 50 %); deletion replaces the most relevant pixels
with uniform random RGB, insertion starts from an all-black image and reveals them. For retrieval
the protocol is ours: at each point every test image is perturbed by its own heatmap (conditioned
on its first caption), T2I / I2T R@1 and R@5 are recomputed against the unchanged captions, and the
curves' trapezoid AUC (fraction axis 0 .. 0.5, divided by 0.5 so that a flat curve at r gives r)
is reported, with a 95 % bootstrap interval over the queries (captions for t2i, images for i2t).
Recall counts ties at random in expectation (:func:`shapvision.metrics.retrieval.retrieval_recalls`):
at the 0 % insertion point every image is the same black image and R@1 is chance (1 / images for
t2i), where counting ties for the query gave 1.0 and inflated every method's insertion AUC. Higher is better for insertion, lower for deletion.

``black`` and the uniform noise are given in the data's normalised space (``pixel_mean`` /
``pixel_std``: the data module's normalisation). Random draws are seeded per image (dataset index),
so DDP gives the single-process figures.
"""

import torch
from torchmetrics import Metric

from shapvision.chunked import map_chunks
from shapvision.metrics.bootstrap import bootstrap_intervals
from shapvision.metrics.explanation_batch import pixel_ranks
from shapvision.metrics.per_image import first_occurrence, weighted_mean
from shapvision.metrics.retrieval import retrieval_recalls

FRACTIONS = tuple(i / 20 for i in range(11))  # 0, 5 %, ..., 50 %
RECALLS = ("t2i_r1", "t2i_r5", "i2t_r1", "i2t_r5")


def perturbed_images(images, pixel_map, fraction, mode, mean, std, index, seed=0):
    """Images with the top ``fraction`` of pixels (by ``pixel_map``) kept on black (insertion) or replaced
    by uniform RGB noise (deletion), in the normalised space."""
    batch, _, height, width = images.shape
    top = (pixel_ranks(pixel_map) < round(fraction * height * width)).view(batch, 1, height, width)
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    if mode == "insertion":
        black = ((0 - mean) / std).expand_as(images)
        return torch.where(top, images, black)
    noise = torch.stack(
        [
            torch.rand(
                images.shape[1:],
                generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i)),
            )
            for i in index.tolist()
        ]
    ).to(images.device, images.dtype)
    return torch.where(top, (noise - mean) / std, images)


class RetrievalInsertionDeletion(Metric):
    """``update(batch, attribution)`` per batch of an image-text evaluation (the batch's
    :class:`RetrievalContext`: the model's image features, the captions, the pixel normalisation);
    ``compute()`` -> ``insertion_t2i_r1`` ... ``deletion_i2t_r5`` (AUC) and the curves."""

    full_state_update = False
    needs_retrieval = True  # image-text evaluation only; scored on each image's first caption
    columns = tuple(f"{mode}_{r}" for mode in ("insertion", "deletion") for r in RECALLS)
    higher_is_better = {column: column.startswith("insertion") for column in columns}

    def __init__(self, resamples: int = 1000, confidence: float = 0.95, **kwargs):
        super().__init__(**kwargs)
        self.resamples, self.confidence = resamples, confidence
        for name in ("image_index", "texts", "text_index", "text_image_index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        for mode in ("insertion", "deletion"):
            for k in range(len(FRACTIONS)):
                self.add_state(f"{mode}_{k}", default=[], dist_reduce_fx="cat")

    def update(self, batch, attribution):
        context = batch.retrieval
        if context is None:
            raise ValueError(
                "retrieval_insertion_deletion scores image-text retrieval: use it in an image-text "
                "evaluation (shapvision-clip test with ImageTextEvaluation)"
            )
        images, image_index = batch.images, batch.index
        pixel_map = batch.pixel_map(attribution)
        self.image_index.append(image_index.long())
        self.texts.append(context.texts.float())
        self.text_index.append(context.text_index.long())
        self.text_image_index.append(context.text_image_index.long())
        with torch.no_grad():
            for mode in ("insertion", "deletion"):
                for k, fraction in enumerate(FRACTIONS):
                    perturbed = perturbed_images(
                        images,
                        pixel_map,
                        fraction,
                        mode,
                        context.pixel_mean,
                        context.pixel_std,
                        image_index,
                    )
                    features = map_chunks(
                        context.image_features,
                        perturbed,
                        chunk=batch.chunk,
                        what="retrieval insertion / deletion forwards",
                    )
                    getattr(self, f"{mode}_{k}").append(features.float())

    def compute(self) -> dict[str, torch.Tensor]:
        def cat(state):
            return torch.cat(state) if isinstance(state, list) else state

        image_index = cat(self.image_index)
        keep_images = first_occurrence(image_index)
        keep_texts = first_occurrence(cat(self.text_index))
        texts, text_image = cat(self.texts)[keep_texts], cat(self.text_image_index)[keep_texts]
        row_of = {int(i): row for row, i in enumerate(image_index[keep_images].tolist())}
        caption_image = torch.tensor(
            [row_of[int(i)] for i in text_image.tolist()], device=texts.device
        )
        fractions = torch.tensor(FRACTIONS, dtype=torch.float64)
        result = {}
        for mode in ("insertion", "deletion"):
            points = [
                retrieval_recalls(
                    cat(getattr(self, f"{mode}_{k}"))[keep_images] @ texts.T, caption_image, (1, 5)
                )
                for k in range(len(FRACTIONS))
            ]
            for name in RECALLS:
                # per query: its expected recall at each point, and the curve's normalised AUC
                curves = torch.stack([p[name] for p in points], 1).cpu()
                values = {
                    "key": torch.arange(len(curves)),
                    "auc": torch.trapezoid(curves, fractions, dim=1) / FRACTIONS[-1],
                }
                column = f"{mode}_{name}"
                result[column] = values["auc"].mean().float()
                low, high = bootstrap_intervals(
                    query_mean, values, ["auc"], self.resamples, self.confidence, 0
                )["auc"]
                result[f"{column}_ci_low"], result[f"{column}_ci_high"] = low.float(), high.float()
                result[f"{column}_curve"] = curves.mean(0).float()
        return result


def query_mean(weights, values) -> dict:
    return {"auc": weighted_mean(weights, values["auc"])}
