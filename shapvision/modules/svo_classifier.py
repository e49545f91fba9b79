"""SVO-ViT / SVO-ResNet (Fan et al. 2026): a classifier whose own outputs are per-patch Shapley values.

The :class:`SVONet` votes Phi ``(B, N, K)``; logits = Phi.sum(1), so ``explain(x).sum(1)`` is the
logit vector exactly. Training loss = CE(logits, y) + ``shapley_weight`` * Shapley loss (Eq. 14), where
the Shapley loss (Eq. 13) compares the model's own value function on masked copies of the input,
v(S) = sum of Phi(x_S) over kept patches, with the additive prediction 1_S^T Phi(x):
- masks from the Shapley kernel, ``num_masks`` per image (``paired``: each followed by its complement;
  ``balance_mask_sizes``: images paired with complementary mask sizes, so the masked branch's cost
  is fixed at half the patches instead of varying with the draw, see ShapleyKernelSampler);
- ``shapley_classes``: ``sampled`` = one class y uniform per mask (Eq. 13), ``all`` = every class;
- ``stop_gradient``: which side is a constant target. ``none`` (default) trains through both, as the
  paper optimizes theta through both; ``masked`` detaches v(S); ``full`` detaches Phi(x).
None of these three, nor lambda, is published; the defaults are our choice (see docs/svo.md).
``drop_cls_token`` removes the CLS token after position embedding in both branches, the paper's
design ("we remove the class token [cls] and retain all the N patch tokens"; masked: "remove masked
patches along with [cls]"): ``null`` (default) = the paper's, dropped wherever the backbone has one
(a ResNet has none); ``false`` keeps the pretrained ViT's sequence (our ablation).
With ``shapley_weight`` = 0 no masked forward runs and the module is a plain CE classifier.

Values are in logit units. Validation always reports the Shapley loss on a fixed mask stream, so a
lambda = 0 run still shows how far its votes are from being Shapley values.
"""

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from shapvision.models.svo_net import SVONet
from shapvision.modules.base import ShapleyModule
from shapvision.modules.identity import TaggedCheckpointMixin
from shapvision.objectives.svo import SVOObjective, svo_shapley_loss

StopGradient = Literal["none", "masked", "full"]
ShapleyClasses = Literal["sampled", "all"]
STOP_GRADIENTS = get_args(StopGradient)


class SVOClassifier(TaggedCheckpointMixin, ShapleyModule):
    """``module(images, keep=None)`` -> logits ``(B, K)``; ``module.explain(images)`` -> Phi ``(B, N, K)``.

    Its explanations are evaluated by ``shapvision.modules.Evaluation`` (method ``svo``).
    """

    def __init__(
        self,
        backbone: str = "vit_base_patch16_224",
        num_classes: int = 1000,
        img_size: int = 224,
        pretrained: bool | str = False,
        backbone_kwargs: dict | None = None,
        drop_cls_token: bool | None = None,
        shapley_weight: float = 1.0,
        num_masks: int = 1,
        paired: bool = False,
        balance_mask_sizes: bool = True,
        shapley_classes: ShapleyClasses = "sampled",
        stop_gradient: StopGradient = "none",
        lr: float = 1e-5,
        weight_decay: float = 1e-5,
        warmup_steps: int = 500,
    ):
        if stop_gradient not in STOP_GRADIENTS:
            raise ValueError(
                f"model.init_args.stop_gradient must be one of {STOP_GRADIENTS}, got {stop_gradient!r}"
            )
        objective = SVOObjective(
            shapley_weight, num_masks, paired, balance_mask_sizes, shapley_classes
        )
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        self.save_hyperparameters()
        self.net = SVONet(
            backbone, num_classes, img_size, pretrained, backbone_kwargs, drop_cls_token
        )
        self.grid_size = self.net.backbone.grid_size
        self.patch_size = self.net.backbone.patch_size
        self.num_patches = self.net.backbone.num_patches
        self.objective = objective.for_patches(self.num_patches)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.logits(images, keep)

    def explain(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def own_values(self, images: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """Phi ``(B, N, K)``: the capability :class:`~shapvision.models.capabilities.SelfExplaining`."""
        if text is not None:
            raise ValueError("an SVO classifier votes for its classes; it takes no captions (text)")
        return self.explain(images)

    def shapley_loss(self, images: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """Eq. 13 on fresh Shapley-kernel masks, for the votes ``phi`` of the unmasked ``images``."""
        masks, classes = self.objective.draw(images.shape[0], phi.shape[-1], images.device)
        stop = self.hparams.stop_gradient
        with torch.set_grad_enabled(torch.is_grad_enabled() and stop != "masked"):
            masked_values = self.net.masked_logits(images, masks)
        return svo_shapley_loss(
            phi.detach() if stop == "full" else phi, masked_values, masks, classes
        )

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        images, labels = batch["image"], batch["label"]
        phi = self.net(images)
        ce = F.cross_entropy(phi.sum(1), labels)
        loss = ce
        if self.hparams.shapley_weight > 0:
            shapley = self.shapley_loss(images, phi)
            loss = ce + self.hparams.shapley_weight * shapley
            self.log("train/shapley_loss", shapley)
        self.check_finite(loss)
        self.log("train/ce", ce)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch, batch_idx, stage: str, accuracy) -> None:
        if batch is None:
            return
        images, labels = batch["image"], batch["label"]
        phi = self.net(images)
        logits = phi.sum(1)
        with self.fixed_random_stream(batch_idx, images.device):
            shapley = self.shapley_loss(images, phi)
        ce = F.cross_entropy(logits, labels)
        size = images.shape[0]
        self.log(f"{stage}/ce", ce, sync_dist=True, batch_size=size)
        self.log(f"{stage}/shapley_loss", shapley, sync_dist=True, batch_size=size)
        self.log(
            f"{stage}/loss",
            ce + self.hparams.shapley_weight * shapley,
            sync_dist=True,
            batch_size=size,
        )
        accuracy(logits, labels)
        self.log(f"{stage}/acc", accuracy, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "test", self.test_acc)

    def predict_step(self, batch, batch_idx):
        if batch is None:
            return None
        phi = self.explain(batch["image"])
        logits = phi.sum(1)  # efficiency: the votes add up to the logits
        return {"values": phi, "predicted": logits.argmax(-1), "scores": logits.softmax(-1)}
