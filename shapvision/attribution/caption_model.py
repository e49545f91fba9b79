"""An image-text model seen as a classifier whose classes are captions, so every method and metric of
the evaluation layer explains image-caption pairs unchanged.

The "logits" of an image are its similarities with the captions set by ``set_captions``: for SVO-CLIP
the score s(x, t) = sum of the patch cosines (the game its votes are Shapley values of), for plain
CLIP the cosine of the CLS embedding with the caption. The link is the identity (the game is the
similarity itself), and a masked image's similarity comes from the masked forward (tokens dropped).
A method's ``target`` is the caption's position in the set captions.
"""

import torch
import torch.nn as nn

from shapvision.attribution.base import Attribution, AttributionMethod, target_values
from shapvision.attribution.explained_model import ExplainedModel
from shapvision.models.capabilities import SelfExplaining
from shapvision.models.timm_transformer import TimmTransformerBackbone
from shapvision.shapley.links import IDENTITY


class CaptionScores(nn.Module):
    """``images (, keep) -> (B, T)`` similarities with the current captions: a plain nn.Module for captum."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.text: torch.Tensor | None = None

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if self.text is None:
            raise RuntimeError("set_captions must be called before the caption model is scored")
        return self.module.caption_scores(images, self.text, keep)


class CaptionExplainedModel(ExplainedModel):
    def __init__(self, module: nn.Module, name: str):
        self.module = module.eval()
        self.name = name
        self.link = IDENTITY
        self.network = CaptionScores(module)
        self.backbone = module.towers.backbone
        self.grid_size = tuple(module.grid_size)
        self.num_patches = module.num_patches
        self.patch_size = self.backbone.patch_size
        # A timm trunk (EVA02) takes the ViT methods (Grad-CAM on the last block's norm1, attention
        # rollout, GAME); open_clip's own VisionTransformer has no hooks for them here.
        self.family = "vit" if isinstance(self.backbone, TimmTransformerBackbone) else "other"

    def set_captions(self, text_features: torch.Tensor) -> None:
        """Unit text embeddings ``(T, D)``: the "classes" targets index into."""
        self.network.text = text_features

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def masked_logits(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.network(images, keep)


class SVOCLIPVotes(AttributionMethod):
    """SVO-CLIP's own per-patch votes for the target caption: each patch's cosine with it."""

    name = "svo_clip"

    def __init__(self, model):
        super().__init__(model)
        if not isinstance(model.module, SelfExplaining):
            raise ValueError(
                f"method 'svo_clip' explains a self-explaining image-text model by its own votes, but "
                f"{model.name} is a {type(model.module).__name__}, which has none; evaluate an SVOCLIP checkpoint"
            )

    @torch.no_grad()
    def explain(self, images, target, index=None):
        votes = self.model.module.own_values(images, self.model.network.text)
        return Attribution(target_values(votes, target))
