"""SVO-CLIP (Fan et al. 2026): a CLIP whose image-text similarity is a sum of per-patch Shapley values.

Every patch i of an image votes its cosine with the caption, phi_i(x, t) = <e_i(x), t>, with e_i the
unit embedding of patch token i in the joint space (the vision tower's own projection: EVA02's trunk
head) and t the unit text embedding. Sum pooling gives the score s(x, t) = sum_i phi_i (paper: "use
the global sum-pooling to aggregate patch-wise similarities"). Scaling (ours, not published): the
contrastive logits are ``logit_scale * s / N``, the mean patch cosine, which stays in CLIP's [-1, 1]
range, so the temperature keeps its usual init (1 / 0.07) and clamp (100).

The vision tower runs on patch tokens only, in both branches (paper: "remove masked patches along with
[cls] for ViT"); ``keep_cls: true`` keeps the CLS token in the sequence (our ablation).

Loss = CLIP contrastive (``ClipLoss``, gathered across ranks) + ``shapley_weight`` x Shapley loss (SVO
Eq. 13) + ``vote_sparsity`` x the mean positive vote (ours, see below). The Shapley loss is in the
units of the contrastive logits, as the paper's is in logit units: the game of caption t is
v_t(S) = logit_scale * s(x_S, t) / N on the masked image (removed patch tokens dropped with their
rotary embeddings, so v_t(empty) = 0), asked to equal 1_S^T phi_t(x) in the same units, under
Shapley-kernel masks. ``shapley_captions`` picks the captions, the analogue of Eq. 11's uniform
classes: ``batch`` every caption of the (local) batch, ``sampled`` one uniform draw from the batch per
mask, ``matched`` each image's own caption only. The temperature enters the Shapley loss as a
constant (ours: otherwise the loss could shrink itself by lowering ``logit_scale``).

A vote offset shared by every caption (v(S) = c_t |S|) is additive, so neither loss sees it: every
image has N patches, so the contrastive logits move by the same N c_t for every image. The fraction
of the votes' squared size that is shared by the batch's captions is logged as
``train/vote_shared_fraction``. ``vote_sparsity`` (ours) adds the mean positive part of the votes
in logit units, over every caption of the batch (``vote_sparsity_part: absolute``: the mean |vote|):
the one term that sees the offset, it asks that a patch support a caption only where the contrastive
loss pays for it, so the background and the digit a caption does not name stop voting for it.
``centre_captions`` subtracts the running mean of the training captions' embeddings from every caption
(the caption-contrast game). Defaults (lambda 10, ``vote_sparsity`` 1 on the positive part, no
centring) are ours, chosen by the ablation on digit scenes in docs/svo_clip.md.
"""

from typing import Literal, get_args

import open_clip
import torch

from shapvision.models.masked_backbone import repeat_per_mask
from shapvision.modules.image_text import ImageTextModule
from shapvision.objectives.svo import SVOObjective, svo_clip_shapley_loss

ShapleyCaptions = Literal["batch", "sampled", "matched"]
SparsityPart = Literal["positive", "absolute"]
# the captions of the Shapley loss, as the SVO objective's targets
CAPTION_TARGETS = {"batch": "all", "sampled": "sampled", "matched": "matched"}


def shared_vote_fraction(votes: torch.Tensor) -> torch.Tensor:
    """The part of the votes ``(B, N, T)`` that is the same for every caption, as a fraction of their
    squared size: ||mean_t phi||^2 T / ||phi||^2 (1: every caption gets the same votes; 0: none shared)."""
    shared = votes.mean(-1, keepdim=True).expand_as(votes)
    return shared.pow(2).sum() / votes.pow(2).sum().clamp_min(1e-12)


class SVOCLIP(ImageTextModule):
    """``module.explain(images, tokens)`` -> phi ``(B, N)``, one caption per image, summing to s(x, t);
    self-explaining (:class:`~shapvision.models.capabilities.SelfExplaining`)."""

    def __init__(
        self,
        clip_model: str = "EVA02-B-16",
        pretrained: bool | str = False,
        img_size: int = 224,
        vision_depth: int | None = None,
        text_depth: int | None = None,
        train_text: bool = True,
        init_from: str | None = None,
        shapley_weight: float = 10.0,
        num_masks: int = 1,
        paired: bool = False,
        balance_mask_sizes: bool = True,
        shapley_captions: ShapleyCaptions = "batch",
        keep_cls: bool = False,
        vote_sparsity: float = 1.0,
        vote_sparsity_part: SparsityPart = "positive",
        centre_captions: bool = False,
        caption_mean_momentum: float = 0.99,
        lr: float = 1e-5,
        weight_decay: float = 0.1,
        warmup_steps: int = 500,
    ):
        if vote_sparsity < 0:
            raise ValueError(f"model.init_args.vote_sparsity must be >= 0, got {vote_sparsity}")
        if vote_sparsity_part not in get_args(SparsityPart):
            raise ValueError(
                "model.init_args.vote_sparsity_part must be 'positive' or 'absolute', "
                f"got {vote_sparsity_part!r}"
            )
        if not 0 <= caption_mean_momentum < 1:
            raise ValueError(
                f"model.init_args.caption_mean_momentum must be in [0, 1), got {caption_mean_momentum}"
            )
        objective = SVOObjective(
            shapley_weight,
            num_masks,
            paired,
            balance_mask_sizes,
            shapley_captions,
            "shapley_captions",
            CAPTION_TARGETS,
        )
        super().__init__(
            clip_model,
            pretrained,
            img_size,
            vision_depth,
            text_depth,
            train_text,
            init_from,
            lr,
            weight_decay,
            warmup_steps,
        )
        self.save_hyperparameters()
        if not keep_cls:
            self.towers.drop_prefix_tokens()
        embed_dim = open_clip.get_model_config(clip_model)["embed_dim"]
        # the running mean of the training captions' unit embeddings (centre_captions), and how many
        # batches it has seen (a plain average until the EMA's horizon, then the EMA)
        self.register_buffer("caption_mean", torch.zeros(embed_dim))
        self.register_buffer("caption_mean_batches", torch.zeros((), dtype=torch.long))
        self.objective = objective.for_patches(self.num_patches)

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unit caption embeddings ``(T, D)``, minus the training captions' mean with ``centre_captions``."""
        text = self.towers.encode_text(tokens)
        if self.hparams.centre_captions:
            if self.training:
                self.update_caption_mean(text.detach())
            text = text - self.caption_mean
        return text

    @torch.no_grad()
    def update_caption_mean(self, text: torch.Tensor) -> None:
        seen = int(self.caption_mean_batches)
        rate = max(1.0 / (seen + 1), 1.0 - self.hparams.caption_mean_momentum)
        self.caption_mean.lerp_(text.mean(0).to(self.caption_mean.dtype), rate)
        self.caption_mean_batches += 1

    def patch_embeddings(self, images, keep=None) -> torch.Tensor:
        return self.towers.patch_embeddings(self.towers.vision_features(images, keep))

    def image_features(
        self, images: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The mean of the unit patch embeddings ``(B, D)`` (removed patches count as 0): its dot product
        with a unit text embedding is s / N."""
        return self.patch_embeddings(images, keep).sum(1) / self.num_patches

    def votes(self, patch_embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """phi ``(B, N)``: each patch's cosine with its image's caption ``text`` ``(B, D)``."""
        return (patch_embeddings @ text.unsqueeze(2)).squeeze(2)

    def explain(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.votes(self.patch_embeddings(images), self.text_features(tokens))

    def own_values(self, images: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """Every patch's vote ``(B, N, T)`` for each caption of unit embeddings ``text`` ``(T, D)``."""
        if text is None:
            raise ValueError("SVO-CLIP's votes are for captions: pass their unit embeddings (text)")
        return self.patch_embeddings(images) @ text.T

    def caption_scores(
        self, images: torch.Tensor, text: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """s(x, t) ``(B, T)``: the sum of the patch votes (the image features are their mean)."""
        return self.num_patches * super().caption_scores(images, text, keep)

    def masked_embedding_sums(self, images, masks) -> torch.Tensor:
        """sum over kept patches of the unit patch embeddings of the masked image ``(B, M, D)``."""
        batch, num_masks, num_patches = masks.shape
        embedded = self.patch_embeddings(
            repeat_per_mask(images, num_masks), masks.reshape(-1, num_patches)
        )
        return embedded.sum(1).view(batch, num_masks, -1)

    def logit_units(self) -> torch.Tensor:
        """One cosine in contrastive-logit units, logit_scale / N, as a constant of the Shapley loss."""
        return self.towers.logit_scale.exp().detach() / self.num_patches

    def shapley_loss(self, images, votes, text) -> torch.Tensor:
        """Eq. 13 in logit units for the batch's captions ``text`` ``(T, D)`` (row b: image b's own),
        given the unmasked images' votes for them ``(B, N, T)`` (``patch_embeddings @ text.T``)."""
        masks, captions = self.objective.draw(images.shape[0], text.shape[0], images.device)
        masked_sums = self.masked_embedding_sums(images, masks)
        return svo_clip_shapley_loss(votes, masked_sums, text, masks, self.logit_units(), captions)

    def training_loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings(images)
        text = self.text_features(tokens)
        contrastive = self.contrastive_loss(patches.sum(1) / self.num_patches, text)
        self.log("train/contrastive_loss", contrastive)
        loss = contrastive
        votes = patches @ text.T
        self.log("train/vote_shared_fraction", shared_vote_fraction(votes.detach()))
        if self.hparams.vote_sparsity:
            scaled = self.logit_units() * votes
            part = scaled.relu() if self.hparams.vote_sparsity_part == "positive" else scaled.abs()
            sparsity = part.mean()
            self.log("train/vote_sparsity", sparsity)
            loss = loss + self.hparams.vote_sparsity * sparsity
        if self.hparams.shapley_weight:
            shapley = self.shapley_loss(images, votes, text)
            self.log("train/shapley_loss", shapley)
            loss = loss + self.hparams.shapley_weight * shapley
        return loss

    def _evaluate(self, batch, batch_idx: int, stage: str) -> None:
        """Retrieval, and the Shapley loss of the images with their first captions on a fixed mask stream."""
        super()._evaluate(batch, batch_idx, stage)
        if batch is None:
            return
        images = batch["image"]
        text = self.text_features(batch["text"][:, 0])
        with self.fixed_random_stream(batch_idx, images.device):
            shapley = self.shapley_loss(images, self.own_values(images, text), text)
        self.log(f"{stage}/shapley_loss", shapley, sync_dist=True, batch_size=images.shape[0])
