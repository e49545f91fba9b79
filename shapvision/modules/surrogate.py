"""Stage 2: a surrogate distilled from the classifier under patch masks (ViT-Shapley).

Initialised from the classifier checkpoint; trained with KL(classifier(x) || surrogate(x, S)) for one
mask per image whose kept count is uniform in 0..N. The classifier stays inside, frozen, as the
teacher; its weights are part of the checkpoint, so the checkpoint alone rebuilds it.
"""

import copy

import torch
from torchmetrics.classification import MulticlassAccuracy

from shapvision.metrics.masked_agreement import MaskedAgreementByFraction
from shapvision.models.masked_classifier import MaskedClassifier
from shapvision.modules.base import ShapleyModule
from shapvision.modules.classifier import Classifier
from shapvision.modules.identity import TaggedCheckpointMixin
from shapvision.modules.stages import check_compatible, load_stage
from shapvision.objectives.surrogate_kl import per_sample_kl, surrogate_kl_loss
from shapvision.shapley.samplers import UniformSizeSampler

CLASSIFIER_OPTION = "model.init_args.classifier_checkpoint"


def build_net(hparams: dict) -> MaskedClassifier:
    return MaskedClassifier(
        hparams["backbone"],
        hparams["num_classes"],
        hparams["img_size"],
        False,
        hparams.get("backbone_kwargs"),
    )


class Surrogate(TaggedCheckpointMixin, ShapleyModule):
    """``module(images, keep=None)`` -> logits ``(B, K)`` of the masked image."""

    def __init__(
        self,
        classifier_checkpoint: str | None = None,
        num_classes: int = 1000,
        img_size: int = 224,
        lr: float = 1e-5,
        weight_decay: float = 1e-5,
        warmup_steps: int = 500,
        val_mask_seed: int = 0,
        num_fraction_bins: int = 5,
        classifier_hparams: dict | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        state = None
        if classifier_hparams is None:
            classifier_hparams, state = load_stage(
                Classifier, classifier_checkpoint, CLASSIFIER_OPTION
            )
        check_compatible(CLASSIFIER_OPTION, classifier_hparams, num_classes, img_size)
        self.save_hyperparameters()
        self.hparams["classifier_hparams"] = dict(classifier_hparams)
        self.net = build_net(classifier_hparams)
        if state is not None:
            self.net.load_state_dict(
                {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
            )
        self.teacher = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.grid_size = self.net.backbone.grid_size
        self.num_patches = self.net.backbone.num_patches
        self.sampler = UniformSizeSampler(self.num_patches)
        self.test_agreement = MaskedAgreementByFraction(num_fraction_bins)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(images, keep)

    def _masked_step(self, images):
        keep = self.sampler.sample(1, batch_size=images.shape[0], device=images.device)[:, 0]
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        return keep, teacher_logits, self(images, keep)

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        keep, teacher_logits, logits = self._masked_step(batch["image"])
        loss = self.check_finite(surrogate_kl_loss(logits, teacher_logits))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        if batch is None:
            return
        images = batch["image"]
        with self.fixed_random_stream(batch_idx, images.device, self.hparams.val_mask_seed):
            _, teacher_logits, logits = self._masked_step(images)
        self.log(
            "val/loss",
            surrogate_kl_loss(logits, teacher_logits),
            sync_dist=True,
            prog_bar=True,
            batch_size=images.shape[0],
        )

    def test_step(self, batch, batch_idx):
        if batch is None:
            return
        images, labels = batch["image"], batch["label"]
        with self.fixed_random_stream(batch_idx, images.device, self.hparams.val_mask_seed):
            keep, teacher_logits, logits = self._masked_step(images)
        kl = per_sample_kl(logits, teacher_logits)
        self.log("test/kl", kl.mean(), sync_dist=True, batch_size=images.shape[0])
        self.test_agreement.update(kl, (logits.argmax(-1) == labels).float(), keep.float().mean(1))
        full_logits = self(images)
        self.test_acc(full_logits, labels)
        self.log("test/acc_full_image", self.test_acc)
        self.log(
            "test/full_image_kl", surrogate_kl_loss(full_logits, teacher_logits), sync_dist=True
        )

    def on_test_epoch_end(self):
        result = self.test_agreement.compute()
        bins = self.test_agreement.num_bins
        for i in range(bins):
            label = f"{i / bins:.1f}-{(i + 1) / bins:.1f}"
            self.log(f"test/kl_kept_{label}", result["kl"][i])
            self.log(f"test/acc_kept_{label}", result["accuracy"][i])
        self.test_agreement.reset()
