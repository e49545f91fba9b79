"""What the image-text modules share: an open_clip model, CLIP's contrastive loss, retrieval metrics.

Batches are dicts (``shapvision.data.image_text``): training ``image`` ``(B, 3, H, W)`` with one
caption ``text`` ``(B, context)`` each; validation / test ``text`` ``(B, C, context)``, the C captions of
every image, with ``caption_index`` ``(B, C)`` and ``image_index`` ``(B,)`` for retrieval.

The contrastive loss is open_clip's ``ClipLoss`` with the features gathered from every rank (with
gradients), so it sees the global batch; ``logit_scale`` is clamped to [0, ln 100] after every
optimizer step, as open_clip's trainer does. ``train_text: false`` freezes the text tower.
``vision_depth`` / ``text_depth`` keep the first blocks of each tower (reduced models for smoke runs).
``init_from`` starts from the CLIP weights of another image-text checkpoint (SVO-CLIP fine-tuned
from a plain CLIP run); ``pretrained`` from an open_clip weights file.
Subclasses define ``image_features(images, keep=None)`` ``(B, D)``, whose dot product with a unit text
embedding is the image-text similarity the model is trained and ranked with.
"""

import open_clip
import torch
from open_clip.loss import ClipLoss

from shapvision.local_files import local_path, read_checkpoint
from shapvision.metrics.retrieval import ImageTextRetrieval
from shapvision.models.clip_towers import CLIPTowers
from shapvision.modules.base import ShapleyModule
from shapvision.modules.identity import TaggedCheckpointMixin

INIT_OPTION = "model.init_args.init_from"


def towers_state(path: str, clip_model: str) -> dict:
    """The CLIP weights (``towers.*``) of an image-text checkpoint, refused when it is of another model."""
    checkpoint = read_checkpoint(path, INIT_OPTION)
    file = local_path(path)
    source = checkpoint.get("hyper_parameters", {}).get("clip_model")
    if source is None:
        raise ValueError(f"{INIT_OPTION} {file} is not a checkpoint of an image-text module")
    if source != clip_model:
        raise ValueError(
            f"{INIT_OPTION} {file} holds a {source} model, but model.init_args.clip_model is {clip_model}"
        )
    prefix = "towers."
    return {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }


class ImageTextModule(TaggedCheckpointMixin, ShapleyModule):
    def __init__(
        self,
        clip_model: str = "EVA02-B-16",
        pretrained: bool | str = False,
        img_size: int = 224,
        vision_depth: int | None = None,
        text_depth: int | None = None,
        train_text: bool = True,
        init_from: str | None = None,
        lr: float = 1e-5,
        weight_decay: float = 0.1,
        warmup_steps: int = 500,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        self.save_hyperparameters()
        self.towers = CLIPTowers(clip_model, pretrained, img_size, vision_depth, text_depth)
        if init_from:
            self.towers.load_state_dict(towers_state(init_from, clip_model))
        if not train_text:
            for name, parameter in self.towers.clip.named_parameters():
                if not name.startswith("visual.") and name != "logit_scale":
                    parameter.requires_grad_(False)
        backbone = self.towers.backbone
        self.grid_size, self.patch_size = backbone.grid_size, backbone.patch_size
        self.num_patches = backbone.num_patches
        self.val_retrieval = ImageTextRetrieval()
        self.test_retrieval = ImageTextRetrieval()
        self.contrastive = ClipLoss()

    def image_features(
        self, images: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.towers.encode_text(tokens)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """The model's own tokenizer (open_clip's for ``clip_model``)."""
        return open_clip.get_tokenizer(self.hparams.clip_model)(list(captions))

    def caption_scores(
        self, images: torch.Tensor, text: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The score ``(B, T)`` of every image with every caption of unit embeddings ``text``."""
        return self.image_features(images, keep) @ text.T

    def setup(self, stage: str) -> None:
        self.contrastive = ClipLoss(
            local_loss=False,
            gather_with_grad=True,
            cache_labels=True,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
        )

    def contrastive_loss(self, image_features, text_features) -> torch.Tensor:
        return self.contrastive(image_features, text_features, self.towers.logit_scale.exp())

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        loss = self.check_finite(self.training_loss(batch["image"], batch["text"]))
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/logit_scale", self.towers.logit_scale.exp())
        return loss

    def training_loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        contrastive = self.contrastive_loss(self.image_features(images), self.text_features(tokens))
        self.log("train/contrastive_loss", contrastive)
        return contrastive

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.towers.clamp_logit_scale()

    def _evaluate(self, batch, batch_idx: int, stage: str) -> None:
        """Retrieval features of the batch's images and all their captions, for ``{stage}/t2i_r1`` etc."""
        if batch is None:
            return
        metric = self.val_retrieval if stage == "val" else self.test_retrieval
        tokens = batch["text"]
        captions = tokens.shape[1]
        metric.update(
            self.image_features(batch["image"]),
            batch["image_index"],
            self.text_features(tokens.flatten(0, 1)),
            batch["caption_index"].flatten(),
            batch["image_index"].repeat_interleave(captions),
        )

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "test")

    def _log_retrieval(self, stage: str, metric: ImageTextRetrieval) -> None:
        if metric.update_count == 0:
            return
        results = metric.compute()
        for name, value in results.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "t2i_r1" and stage == "val")
        self.log(f"{stage}/mean_recall", torch.stack(list(results.values())).mean())
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval("val", self.val_retrieval)

    def on_test_epoch_end(self) -> None:
        self._log_retrieval("test", self.test_retrieval)
