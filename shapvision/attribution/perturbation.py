"""Perturbation baselines on the model's game v(S) = p(target | x_S), patches removed as the masked
forward removes them (dropped tokens for ViTs, zeroed pixels for ResNets). Written here.

- ``leave_one_out``: phi_i = v(N) - v(N minus i), N + 1 evaluations per image.
- ``kernelshap``: paired KernelSHAP (:func:`shapvision.shapley.kernel_shap`, shapreg's estimator) at a
  fixed ``budget`` of evaluations, masks drawn from each image's own dataset index; ``link`` picks
  another game than the model's own (default: its link's, e.g. probabilities), e.g. the logit game.
"""

from typing import Literal

import torch

from shapvision.attribution.base import Attribution, AttributionMethod, per_image_generators
from shapvision.chunked import map_chunks
from shapvision.shapley.kernel_shap import kernel_shap
from shapvision.shapley.links import Link, get_link


class TargetGame:
    """The single-image game ``bool (M, N) -> (M,)``: the target's value under each mask, through the
    model's own link (``link=None``: the game it was trained on) or another one (``"identity"``: the
    logit game, whose Shapley values SVO's votes are). ``target=None``: every output ``(M, K)``."""

    def __init__(
        self,
        model,
        image: torch.Tensor,
        target: torch.Tensor | None,
        link: str | Link | None = None,
    ):
        self.model, self.image, self.target = model, image, target
        self.link = model.link if link is None else get_link(link)

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        images = self.image.unsqueeze(0).expand(masks.shape[0], *self.image.shape)
        values = self.link(self.model.masked_logits(images, masks.to(self.image.device))).double()
        if self.target is None:
            return values
        return values.gather(1, self.target.expand(masks.shape[0]).view(-1, 1))[:, 0]


class LeaveOneOut(AttributionMethod):
    name = "leave_one_out"

    def __init__(self, model, batch_size: int = 256):
        super().__init__(model)
        self.batch_size = batch_size

    @torch.no_grad()
    def explain(self, images, target, index=None):
        n = self.model.num_patches
        masks = torch.cat([torch.ones(1, n, dtype=torch.bool), ~torch.eye(n, dtype=torch.bool)]).to(
            images.device
        )
        values = torch.stack(
            [
                map_chunks(
                    TargetGame(self.model, image, t),
                    masks,
                    chunk=self.batch_size,
                    what="leave-one-out forwards",
                )
                for image, t in zip(images, target, strict=True)
            ]
        )
        return Attribution((values[:, :1] - values[:, 1:]).float())


class KernelSHAPBudget(AttributionMethod):
    name = "kernelshap"

    def __init__(
        self,
        model,
        budget: int = 1024,
        batch_size: int = 256,
        seed: int = 0,
        link: Literal["softmax", "sigmoid", "identity"] | None = None,
    ):
        super().__init__(model)
        self.budget, self.batch_size, self.seed, self.link = budget, batch_size, seed, link

    @torch.no_grad()
    def explain(self, images, target, index=None):
        if index is None:
            index = torch.arange(images.shape[0])
        rows = []
        for image, t, generator in zip(
            images, target, per_image_generators(index, self.seed, images.device), strict=True
        ):
            estimate = kernel_shap(
                TargetGame(self.model, image, t, self.link),
                self.model.num_patches,
                threshold=None,
                max_evals=self.budget,
                batch_size=self.batch_size,
                generator=generator,
                device=images.device,
            )
            rows.append(estimate.values.float())
        return Attribution(torch.stack(rows))
