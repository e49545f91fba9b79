"""Any explaining checkpoint, rebuilt from the file alone, for ``predict`` on your own images.

Explainer (its surrogate's class scores and the amortized Shapley values), SVO-ViT / SVO-ResNet (their
own votes, which sum to the logits) and SVO-CLIP (each patch's vote for one ``caption``, which sum to
the image-caption score). ``predict_step`` returns ``values`` (B, N, K) and ``scores`` (B, K); the
class names come with the data (``ExplainImagesDataModule`` reads them from the checkpoint).
"""

from shapvision.data.image_text import CaptionTokenizer
from shapvision.errors import ConfigurationError
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import checkpoint_kind, load_module

EXPLAINING = ("Explainer", "SVOClassifier", "SVOCLIP")
OPTION = "model.init_args.checkpoint"


class ExplainCheckpoint(ShapleyModule):
    def __init__(
        self,
        checkpoint: str,
        caption: str | None = None,
        num_classes: int | None = None,
        img_size: int | None = None,
    ):
        super().__init__()
        kind = checkpoint_kind(checkpoint, OPTION)
        if kind not in EXPLAINING:
            raise ConfigurationError(
                f"{OPTION} {checkpoint} is a {kind} checkpoint, which does not explain; use an "
                f"{', '.join(EXPLAINING[:-1])} or {EXPLAINING[-1]} checkpoint"
            )
        if (kind == "SVOCLIP") != (caption is not None):
            raise ConfigurationError(
                f"--caption is what an SVO-CLIP checkpoint explains an image against: give one for "
                f"SVOCLIP checkpoints and none for {kind} (got caption {caption!r})"
            )
        self.kind, self.caption = kind, caption
        self.explained = load_module(checkpoint, OPTION, EXPLAINING)
        hparams = self.explained.hparams
        for option, value in (("num_classes", num_classes), ("img_size", img_size)):
            if value is not None and option in hparams and hparams[option] != value:
                raise ConfigurationError(
                    f"{option}: the checkpoint has {hparams[option]}, the data {value}"
                )
        self.grid_size, self.num_patches = self.explained.grid_size, self.explained.num_patches
        if caption is not None:
            tokens = CaptionTokenizer(hparams["clip_model"])([caption])
            self.register_buffer("caption_tokens", tokens, persistent=False)

    def predict_step(self, batch, batch_idx):
        if batch is None:
            return None
        images = batch["image"]
        if self.kind == "SVOCLIP":
            tokens = self.caption_tokens.expand(len(images), -1)
            votes = self.explained.explain(images, tokens)
            return {"values": votes.unsqueeze(-1), "scores": votes.sum(1, keepdim=True)}
        return self.explained.predict_step(batch, batch_idx)
