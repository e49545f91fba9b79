"""Shapley accuracy of any method: its patch values against the model's Shapley values for the target.

The game is the model's own (its link of the masked forward: p(target | x_S) for softmax, the
explainer's link for an explainer's surrogate), or the target's logit (``link: identity``: the game
whose Shapley values SVO's votes are meant to be). The reference is exact (all 2^N
coalitions) for N <= 24, else converged paired KernelSHAP (Covert & Lee's rule max std / range <
``threshold``; ViT-Shapley used 0.1), whose mean std is reported as ``reference_std``. Only the test
images whose dataset index is below ``images`` are scored (the reference costs 2^N or thousands of
evaluations an image), so DDP scores the same images as one process. Per image: L2 error, Pearson
and Spearman correlation (scipy's definitions: average ranks for ties, undefined on a constant row,
which is left out and counted); the means over images. Methods in other units than
probabilities (CAMs, gradients) are read by their correlations; L2 compares like units only.
"""

from typing import Literal

import torch

from shapvision.attribution.perturbation import TargetGame
from shapvision.metrics.correlation import pearson_rows, spearman_rows
from shapvision.metrics.per_image import PerImageMetric, weighted_mean
from shapvision.shapley.exact import MAX_EXACT_PLAYERS, exact_shapley
from shapvision.shapley.kernel_shap import kernel_shap


def reference_values(
    batch, selected: torch.Tensor, threshold: float, seed: int, link: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference values ``(S, N)`` and their std for the selected images' targets.

    Exact values come for every output of an image at once (one pass over the 2^N coalitions serves
    all its classes, or all its captions) and are kept in ``batch.cache`` by dataset index, so an
    evaluation that explains several targets of one image shares them; KernelSHAP estimates are kept
    per image and target.
    """
    model, n = batch.model, batch.model.num_patches
    device = batch.images.device
    values, stds = [], []
    for i in selected.nonzero().flatten().tolist():
        index, target = int(batch.index[i]), batch.target[i]
        if n <= MAX_EXACT_PLAYERS:
            key = ("shapley_reference", link, index)
            if key not in batch.cache:
                game = TargetGame(model, batch.images[i], None, link)
                batch.cache[key] = exact_shapley(
                    game, n, batch_size=batch.chunk, device=device
                ).float()
            values.append(batch.cache[key][:, int(target)])
            stds.append(torch.zeros(n))
            continue
        key = ("shapley_reference", link, index, int(target), threshold, seed)
        if key not in batch.cache:
            generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
            game = TargetGame(model, batch.images[i], target, link)
            estimate = kernel_shap(
                game, n, threshold=threshold, batch_size=256, generator=generator, device=device
            )
            batch.cache[key] = (estimate.values.float(), estimate.std.float().cpu())
        values.append(batch.cache[key][0])
        stds.append(batch.cache[key][1])
    empty = torch.zeros(0, n, device=device)
    return (
        torch.stack(values) if values else empty,
        torch.stack(stds) if stds else empty.cpu(),
    )


class ExplanationShapleyAccuracy(PerImageMetric):
    columns = ("shapley_l2", "shapley_pearson", "shapley_spearman")
    fields = {"shapley_l2": 0, "shapley_pearson": 0, "shapley_spearman": 0, "reference_std": 0}
    higher_is_better = {"shapley_l2": False, "shapley_pearson": True, "shapley_spearman": True}
    per_caption = True  # image-text evaluation scores every caption of an image, not the first only

    def __init__(
        self,
        images: int = 32,
        threshold: float = 0.1,
        seed: int = 0,
        link: Literal["softmax", "sigmoid", "identity"] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images, self.threshold, self.seed, self.link = images, threshold, seed, link

    def update(self, batch, attribution) -> None:
        selected = batch.index < self.images
        if not selected.any():
            return
        reference, std = reference_values(batch, selected, self.threshold, self.seed, self.link)
        estimate = batch.patch_values(attribution)[selected].double()
        reference = reference.double()
        self.record(
            batch.keys[selected],
            shapley_l2=(estimate - reference).norm(dim=1),
            shapley_pearson=pearson_rows(estimate, reference),
            shapley_spearman=spearman_rows(estimate, reference),
            reference_std=std.double().mean(1).to(estimate.device),
        )

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        return {
            name: weighted_mean(weights, values[name]) for name in (*cls.columns, "reference_std")
        }
