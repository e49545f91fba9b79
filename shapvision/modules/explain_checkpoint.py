"""Any explaining checkpoint, rebuilt from the file alone, for ``predict`` on your own images.

An amortized explainer (its surrogate's class scores and the amortized Shapley values), a
self-explaining classifier (SVO-ViT / SVO-ResNet: their own votes, which sum to the logits) or a
self-explaining image-text model (SVO-CLIP: each patch's vote for one ``caption``, which sum to the
image-caption score). ``predict_step`` returns ``values`` (B, N, K) and ``scores`` (B, K); the class
names come with the data (``ExplainImagesDataModule`` reads them from the checkpoint).
"""

from shapvision.errors import ConfigurationError
from shapvision.models.capabilities import ExplainsAGame, ImageTextModel, SelfExplaining
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import checkpoint_class, load_module

OPTION = "model.init_args.checkpoint"


def explains(cls: type) -> bool:
    return issubclass(cls, ExplainsAGame | SelfExplaining)


class ExplainCheckpoint(ShapleyModule):
    def __init__(
        self,
        checkpoint: str,
        caption: str | None = None,
        num_classes: int | None = None,
        img_size: int | None = None,
    ):
        super().__init__()
        cls = checkpoint_class(checkpoint, OPTION)
        if not explains(cls):
            raise ConfigurationError(
                f"{OPTION} {checkpoint} is a {cls.__name__} checkpoint, which does not explain; use an "
                "Explainer, SVOClassifier or SVOCLIP checkpoint"
            )
        self.needs_caption = issubclass(cls, ImageTextModel)
        if self.needs_caption != (caption is not None):
            raise ConfigurationError(
                f"--caption is what an image-text checkpoint explains an image against: give one for "
                f"SVOCLIP checkpoints and none for {cls.__name__} (got caption {caption!r})"
            )
        self.caption = caption
        self.explained = load_module(checkpoint, OPTION, explains, "an explaining checkpoint")
        hparams = self.explained.hparams
        for option, value in (("num_classes", num_classes), ("img_size", img_size)):
            if value is not None and option in hparams and hparams[option] != value:
                raise ConfigurationError(
                    f"{option}: the checkpoint has {hparams[option]}, the data {value}"
                )
        self.grid_size, self.num_patches = self.explained.grid_size, self.explained.num_patches
        if caption is not None:
            tokens = self.explained.tokenize([caption])
            self.register_buffer("caption_tokens", tokens, persistent=False)

    def predict_step(self, batch, batch_idx):
        if batch is None:
            return None
        images = batch["image"]
        if self.needs_caption:
            text = self.explained.text_features(self.caption_tokens)
            votes = self.explained.own_values(images, text)
            return {"values": votes, "scores": votes.sum(1)}
        return self.explained.predict_step(batch, batch_idx)
