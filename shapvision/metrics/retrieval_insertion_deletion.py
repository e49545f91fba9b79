"""CLIP insertion / deletion on retrieval (SVO Tables 5-6): our reconstruction of ECLIP's protocol.

ECLIP's published code holds only ImageNet zero-shot scripts: 100 steps of 0.5 % of the pixels, the
model evaluated every 10 steps (11 points, 0 % .. 50 %); deletion replaces the most relevant pixels
with uniform random RGB, insertion starts from an all-black image and reveals them. For retrieval
the protocol is ours: at each point every test image is perturbed by its own heatmap (conditioned
on its first caption), T2I / I2T R@1 and R@5 are recomputed against the unchanged captions, and the
curves' trapezoid AUC (fraction axis 0 .. 0.5, divided by 0.5 so that a flat curve at r gives r)
is reported. Higher is better for insertion, lower for deletion.

``black`` and the uniform noise are given in the data's normalised space (``pixel_mean`` /
``pixel_std``: the data module's normalisation). Random draws are seeded per image (dataset index),
so DDP gives the single-process figures.
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.explanation_batch import pixel_ranks
from shapvision.metrics.retrieval import first_occurrence, retrieval_ranks

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
    """``update(images, pixel_map, image_index, features_fn)`` per batch, ``set_texts`` once per batch
    for its captions; ``compute()`` -> ``insertion_t2i_r1`` ... ``deletion_i2t_r5`` (AUC) and the curves."""

    full_state_update = False
    columns = tuple(f"{mode}_{r}" for mode in ("insertion", "deletion") for r in RECALLS)

    def __init__(self, pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.pixel_mean, self.pixel_std = tuple(pixel_mean), tuple(pixel_std)
        for name in ("image_index", "texts", "text_index", "text_image_index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        for mode in ("insertion", "deletion"):
            for k in range(len(FRACTIONS)):
                self.add_state(f"{mode}_{k}", default=[], dist_reduce_fx="cat")

    def update(
        self, images, pixel_map, image_index, features_fn, texts, text_index, text_image_index
    ):
        """``features_fn(images) -> (B, D)``: the model's retrieval image features."""
        self.image_index.append(image_index.long())
        self.texts.append(texts.float())
        self.text_index.append(text_index.long())
        self.text_image_index.append(text_image_index.long())
        with torch.no_grad():
            for mode in ("insertion", "deletion"):
                for k, fraction in enumerate(FRACTIONS):
                    perturbed = perturbed_images(
                        images,
                        pixel_map,
                        fraction,
                        mode,
                        self.pixel_mean,
                        self.pixel_std,
                        image_index,
                    )
                    getattr(self, f"{mode}_{k}").append(features_fn(perturbed).float())

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
        result = {}
        for mode in ("insertion", "deletion"):
            curves = {r: [] for r in RECALLS}
            for k in range(len(FRACTIONS)):
                images = cat(getattr(self, f"{mode}_{k}"))[keep_images]
                t2i, i2t = retrieval_ranks(images @ texts.T, caption_image)
                for name, ranks, cutoff in (
                    ("t2i_r1", t2i, 1),
                    ("t2i_r5", t2i, 5),
                    ("i2t_r1", i2t, 1),
                    ("i2t_r5", i2t, 5),
                ):
                    curves[name].append((ranks < cutoff).float().mean())
            fractions = torch.tensor(FRACTIONS)
            for name, points in curves.items():
                curve = torch.stack(points).cpu()
                result[f"{mode}_{name}"] = torch.trapezoid(curve, fractions) / FRACTIONS[-1]
                result[f"{mode}_{name}_curve"] = curve
        return result
