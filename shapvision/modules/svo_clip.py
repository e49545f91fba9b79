"""SVO-CLIP (Fan et al. 2026): a CLIP whose image-text similarity is a sum of per-patch Shapley values.

Every patch i of an image votes its cosine with the caption, phi_i(x, t) = <e_i(x), t>, with e_i the
unit embedding of patch token i in the joint space (the vision tower's own projection: EVA02's trunk
head) and t the unit text embedding. Sum pooling gives the score s(x, t) = sum_i phi_i. Scaling (ours,
not published): the contrastive logits are ``logit_scale * s / N``, the mean patch cosine, which stays
in CLIP's [-1, 1] range, so the temperature keeps its usual init (1 / 0.07) and clamp (100).

Loss = CLIP contrastive (``ClipLoss``, gathered across ranks) + ``shapley_weight`` x Shapley loss: for
each image and its own caption, the model's value function on masked copies of the image,
v(S) = s(x_S, t) (removed patch tokens dropped with their rotary embeddings, so v(empty) = 0), is
asked to equal 1_S^T phi(x, t) (SVO Eq. 13, in cosine units), under Shapley-kernel masks
(``balance_mask_sizes``, as SVO-ViT: images paired with complementary mask sizes, so the masked
branch costs half the patches whatever the draw).
"""

import torch

from shapvision.models.masked_backbone import repeat_per_mask
from shapvision.modules.image_text import ImageTextModule
from shapvision.objectives.svo import svo_shapley_loss
from shapvision.shapley.samplers import ShapleyKernelSampler


class SVOCLIP(ImageTextModule):
    """``module.explain(images, tokens)`` -> phi ``(B, N)``, one caption per image, summing to s(x, t)."""

    def __init__(
        self,
        clip_model: str = "EVA02-B-16",
        pretrained: bool | str = False,
        img_size: int = 224,
        vision_depth: int | None = None,
        text_depth: int | None = None,
        train_text: bool = True,
        init_from: str | None = None,
        shapley_weight: float = 1.0,
        num_masks: int = 1,
        paired: bool = False,
        balance_mask_sizes: bool = True,
        lr: float = 1e-5,
        weight_decay: float = 0.1,
        warmup_steps: int = 500,
    ):
        if shapley_weight < 0:
            raise ValueError(
                f"model.init_args.shapley_weight (lambda) must be >= 0, got {shapley_weight}"
            )
        if num_masks < 1 or (paired and num_masks % 2):
            raise ValueError(
                f"model.init_args.num_masks must be >= 1, and even with paired=true; got {num_masks} (paired={paired})"
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
        self.sampler = ShapleyKernelSampler(
            self.num_patches, paired=paired, balanced_sizes=balance_mask_sizes
        )

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

    def masked_scores(self, images, text, masks) -> torch.Tensor:
        """v(S) = s(x_S, t) ``(B, M)`` for masks ``(B, M, N)`` and each image's caption ``text`` ``(B, D)``."""
        batch, num_masks, num_patches = masks.shape
        embedded = self.patch_embeddings(
            repeat_per_mask(images, num_masks), masks.reshape(-1, num_patches)
        )
        summed = embedded.sum(1).view(batch, num_masks, -1)
        return (summed @ text.unsqueeze(2)).squeeze(2)

    def shapley_loss(self, images, patch_embeddings, text) -> torch.Tensor:
        masks = self.sampler.sample(
            self.hparams.num_masks, batch_size=images.shape[0], device=images.device
        )
        phi = self.votes(patch_embeddings, text)
        masked = self.masked_scores(images, text, masks)
        return svo_shapley_loss(phi.unsqueeze(2), masked.unsqueeze(2), masks)

    def training_loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings(images)
        text = self.text_features(tokens)
        contrastive = self.contrastive_loss(patches.sum(1) / self.num_patches, text)
        self.log("train/contrastive_loss", contrastive)
        if self.hparams.shapley_weight == 0:
            return contrastive
        shapley = self.shapley_loss(images, patches, text)
        self.log("train/shapley_loss", shapley)
        return contrastive + self.hparams.shapley_weight * shapley

    def _evaluate(self, batch, batch_idx: int, stage: str) -> None:
        """Retrieval, and the Shapley loss of each image with its first caption on a fixed mask stream."""
        super()._evaluate(batch, batch_idx, stage)
        if batch is None:
            return
        images = batch["image"]
        with self.fixed_random_stream(batch_idx, images.device):
            shapley = self.shapley_loss(
                images, self.patch_embeddings(images), self.text_features(batch["text"][:, 0])
            )
        self.log(f"{stage}/shapley_loss", shapley, sync_dist=True, batch_size=images.shape[0])
