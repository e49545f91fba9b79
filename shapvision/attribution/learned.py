"""Learned Shapley values: a trained ViT-Shapley explainer (any objective) and SVO's own votes.

Both are one forward pass; the explainer explains its surrogate, which must be the evaluated model's
game (the evaluation checks the patch grid and class count), SVO explains itself.
"""

import torch

from shapvision.attribution.base import Attribution, AttributionMethod, target_values
from shapvision.models.capabilities import ImageTextModel, SelfExplaining


class ExplainerValues(AttributionMethod):
    """``explainer.explain(images)[..., target]`` of a trained :class:`Explainer` checkpoint."""

    name = "explainer"

    def __init__(self, model, explainer):
        super().__init__(model)
        if (
            explainer.num_patches != model.num_patches
            or explainer.hparams.num_classes != model.module.hparams.num_classes
        ):
            raise ValueError(
                f"the explainer has {explainer.num_patches} patches and {explainer.hparams.num_classes} classes, "
                f"{model.name} has {model.num_patches} and {model.module.hparams.num_classes}: use checkpoints of the same pipeline"
            )
        self.explainer = explainer.eval()

    @torch.no_grad()
    def explain(self, images, target, index=None):
        return Attribution(target_values(self.explainer.explain(images), target))


class SVOValues(AttributionMethod):
    """The SVO model's own per-patch votes Phi[:, :, target] (logit units)."""

    name = "svo"

    def __init__(self, model):
        super().__init__(model)
        if not isinstance(model.module, SelfExplaining) or isinstance(model.module, ImageTextModel):
            raise ValueError(
                f"method 'svo' explains a self-explaining classifier by its own values, but {model.name} "
                f"is a {type(model.module).__name__}, which has none; evaluate an SVO-ViT / SVO-ResNet checkpoint"
            )

    @torch.no_grad()
    def explain(self, images, target, index=None):
        return Attribution(target_values(self.model.module.own_values(images), target))
