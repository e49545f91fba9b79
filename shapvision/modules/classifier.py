"""Stage 1: fine-tune a masked backbone + linear head with cross-entropy."""

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from shapvision.models.masked_classifier import MaskedClassifier
from shapvision.modules.base import ShapleyModule
from shapvision.modules.identity import TaggedCheckpointMixin


class Classifier(TaggedCheckpointMixin, ShapleyModule):
    """``module(images, keep=None)`` -> logits ``(B, K)``."""

    def __init__(
        self,
        backbone: str = "vit_base_patch16_224",
        num_classes: int = 1000,
        img_size: int = 224,
        pretrained: bool | str = False,
        backbone_kwargs: dict | None = None,
        lr: float = 1e-5,
        weight_decay: float = 1e-5,
        warmup_steps: int = 500,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        self.save_hyperparameters()
        self.net = MaskedClassifier(backbone, num_classes, img_size, pretrained, backbone_kwargs)
        self.grid_size = self.net.backbone.grid_size
        self.num_patches = self.net.backbone.num_patches
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(images, keep)

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        images, labels = batch["image"], batch["label"]
        loss = self.check_finite(F.cross_entropy(self(images), labels))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch, stage: str, accuracy):
        if batch is None:
            return
        images, labels = batch["image"], batch["label"]
        logits = self(images)
        self.log(
            f"{stage}/loss",
            F.cross_entropy(logits, labels),
            sync_dist=True,
            prog_bar=stage == "val",
        )
        accuracy(logits, labels)
        self.log(f"{stage}/acc", accuracy, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx):
        return None if batch is None else self(batch["image"]).softmax(-1)
