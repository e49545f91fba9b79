"""Stage 3: an amortized explainer trained against the frozen surrogate (ViT-Shapley and relatives).

The explainer is a ViT initialised from the surrogate's backbone plus an :class:`ExplainerHead`; it
sees the whole image and predicts per-patch, per-class values in the link's units. The ``objective``
(``shapvision.objectives.FastSHAP`` / ``SimSHAP`` / ``Salvage``, chosen by ``class_path``, or its name
for the defaults) owns the head's output count, the attributions, the masks of a step and the loss;
this module wires the surrogate's values v(S) through it. Evaluation is its own module
(``shapvision.modules.Evaluation``); ``test`` here reports the objective's loss (and, for Salvage, the
accuracy of its own classification u(N), Salvage Table 2).
"""

import copy
import importlib
from typing import Literal

import torch
from torchmetrics.classification import MulticlassAccuracy

from shapvision.models.explainer_head import ExplainerHead
from shapvision.modules.base import ShapleyModule
from shapvision.modules.identity import TaggedCheckpointMixin
from shapvision.modules.stages import check_compatible, construct_nested, load_stage
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.surrogate_game import surrogate_values
from shapvision.objectives import ExplainerObjective, FastSHAP, Salvage, SimSHAP
from shapvision.shapley.links import get_link

OBJECTIVES = {cls.name: cls for cls in (FastSHAP, SimSHAP, Salvage)}
SURROGATE_OPTION = "model.init_args.surrogate_checkpoint"


def build_objective(objective) -> ExplainerObjective:
    """An objective from its name, an instance, or a ``class_path`` / ``init_args`` dict (a checkpoint's)."""
    if isinstance(objective, ExplainerObjective):
        return copy.deepcopy(objective)
    if isinstance(objective, dict) and "class_path" in objective:
        module, _, name = objective["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, ExplainerObjective)):
            raise ValueError(
                f"model.init_args.objective class_path {objective['class_path']!r} is not an ExplainerObjective"
            )
        return cls(**objective.get("init_args", {}))
    if objective not in OBJECTIVES:
        raise ValueError(
            f"model.init_args.objective must be one of {tuple(OBJECTIVES)} or an objective class_path, got {objective!r}"
        )
    return OBJECTIVES[objective]()


class Explainer(TaggedCheckpointMixin, ShapleyModule):
    """``module.explain(images)`` -> Shapley values ``(B, N, K)`` in the link's units."""

    def __init__(
        self,
        surrogate_checkpoint: str | None = None,
        num_classes: int = 1000,
        img_size: int = 224,
        objective: ExplainerObjective | Literal["fastshap", "simshap", "salvage"] = "fastshap",
        link: Literal["softmax", "sigmoid", "identity"] = "softmax",
        head_blocks: int = 1,
        head_hidden_dim: int = 3072,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        warmup_steps: int = 0,
        value_batch_size: int = 4096,
        surrogate_hparams: dict | None = None,
    ):
        get_link(link)
        self_objective = build_objective(objective)
        self_objective.check_link(link)
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        state = None
        if surrogate_hparams is None:
            surrogate_hparams, state = load_stage(Surrogate, surrogate_checkpoint, SURROGATE_OPTION)
        check_compatible(SURROGATE_OPTION, surrogate_hparams, num_classes, img_size)
        self.save_hyperparameters()
        if not isinstance(objective, str):
            self.hparams["objective"] = self_objective.config()
        self.hparams["surrogate_hparams"] = dict(surrogate_hparams)
        surrogate = construct_nested(
            Surrogate, **{**surrogate_hparams, "classifier_checkpoint": None}
        )
        if state is not None:
            surrogate.load_state_dict(state)
        self.surrogate = surrogate.requires_grad_(False).eval()
        self.backbone = copy.deepcopy(surrogate.net.backbone).requires_grad_(True)
        self.objective = self_objective
        self.head = ExplainerHead(
            self.backbone.embed_dim,
            self.objective.num_outputs(num_classes),
            num_blocks=head_blocks,
            mlp_hidden_dim=head_hidden_dim,
        )
        self.grid_size = self.backbone.grid_size
        self.patch_size = self.backbone.patch_size
        self.num_patches = self.backbone.num_patches
        self.objective.bind(self.num_patches)
        if self.objective.classifies:
            self.val_own_acc = MulticlassAccuracy(num_classes, average="micro")
            self.test_own_acc = MulticlassAccuracy(num_classes, average="micro")

    def train(self, mode: bool = True):
        super().train(mode)
        self.surrogate.eval()
        return self

    def endpoint_values(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v(N) and v(empty) ``(B, K)`` from the surrogate."""
        empty = torch.zeros(
            images.shape[0], 1, self.num_patches, dtype=torch.bool, device=images.device
        )
        values = surrogate_values(
            self.surrogate,
            images,
            torch.cat([~empty, empty], 1),
            self.hparams.link,
            self.hparams.value_batch_size,
        )
        return values[:, 0], values[:, 1]

    def raw_outputs(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_patches(images)
        return self.head(features.tokens, features.prefix)

    def explain(self, images: torch.Tensor) -> torch.Tensor:
        v_full, v_empty = self.endpoint_values(images)
        return self.objective.attributions(self.raw_outputs(images), v_full, v_empty)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.explain(images)

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        """The explainer used as a classifier ``(B, K)`` (Salvage Table 2): the objective's own
        prediction where it has one (Salvage's u(N) = softmax(sum_i phi+_i)), else softmax of the
        attributions summed over patches, the same map applied to the values the explainer reports
        (ours: the poster does not say how it scored ViT-Shapley; FastSHAP's values add up to
        v(N) - v(empty), so this is the class gaining most over the empty image)."""
        raw = self.raw_outputs(images)
        own = self.objective.classify(raw)
        if own is not None:
            return own.softmax(-1)
        v_full, v_empty = self.endpoint_values(images)
        return self.objective.attributions(raw, v_full, v_empty).sum(1).softmax(-1)

    def explained_game(self) -> tuple[torch.nn.Module, str]:
        """The surrogate and the link of the game it was trained to explain
        (:class:`~shapvision.models.capabilities.ExplainsAGame`)."""
        return self.surrogate, self.hparams.link

    def objective_loss(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective's loss on fresh masks, and the raw outputs (for the objective's own classification)."""
        v_full, v_empty = self.endpoint_values(images)
        # the objectives sum over patches, normalise and solve in float32 (bf16 autocast included)
        raw = self.raw_outputs(images).float()
        masks = self.objective.sample_masks(raw, v_full, v_empty)
        values = surrogate_values(
            self.surrogate, images, masks, self.hparams.link, self.hparams.value_batch_size
        )
        return self.objective.loss(raw, masks, values, v_full, v_empty), raw

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        loss = self.check_finite(self.objective_loss(batch["image"])[0])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch, batch_idx, stage: str, accuracy_name: str):
        if batch is None:
            return
        images = batch["image"]
        with self.fixed_random_stream(batch_idx, images.device):
            loss, raw = self.objective_loss(images)
        self.log(
            f"{stage}/loss",
            loss,
            sync_dist=True,
            prog_bar=stage == "val",
            batch_size=images.shape[0],
        )
        accuracy = getattr(self, accuracy_name, None)
        if accuracy is not None and "label" in batch:
            accuracy(self.objective.classify(raw), batch["label"])
            self.log(f"{stage}/own_classification_acc", accuracy)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "val", "val_own_acc")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "test", "test_own_acc")

    def predict_step(self, batch, batch_idx):
        if batch is None:
            return None
        images = batch["image"]
        v_full, v_empty = self.endpoint_values(images)
        values = self.objective.attributions(self.raw_outputs(images), v_full, v_empty)
        return {"values": values, "predicted": v_full.argmax(-1), "scores": v_full}
