"""Stage 3: an amortized explainer trained against the frozen surrogate (ViT-Shapley and relatives).

The explainer is a ViT initialised from the surrogate's backbone plus an :class:`ExplainerHead`; it
sees the whole image and predicts per-patch, per-class values in the link's units. Objectives:
- ``fastshap``: tanh, additive efficient normalization with v(N) and v(empty) from the surrogate,
  Shapley-kernel masks (paired), loss N * MSE(v(empty) + 1_S^T phi, v(S)) (Covert et al. 2023).
- ``simshap``: squared error to the Sim-Semivalue target from the same masks, no normalization.
- ``salvage``: phi+ / phi- per patch, JS(u(S) || v(S)); a ``guided_fraction`` of the masks comes from
  attribution-guided sampling on the current explanation of the surrogate's predicted class.
"""

import copy

import torch

from shapvision.models.explainer_head import ExplainerHead
from shapvision.modules.base import (
    ShapleyModule,
    TaggedCheckpointMixin,
    check_compatible,
    construct_nested,
    load_stage,
)
from shapvision.modules.explanation_evaluation import ExplanationEvaluation
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.surrogate_game import ImageGame, check_link, surrogate_values
from shapvision.objectives.fastshap import fastshap_loss
from shapvision.objectives.salvage import salvage_loss
from shapvision.objectives.simshap import simshap_loss
from shapvision.shapley.normalization import additive_efficient_normalization
from shapvision.shapley.samplers import AttributionGuidedSampler, ShapleyKernelSampler

OBJECTIVES = ("fastshap", "simshap", "salvage")
ACTIVATIONS = {"tanh": torch.tanh, "identity": lambda x: x}
SURROGATE_OPTION = "model.init_args.surrogate_checkpoint"


class Explainer(TaggedCheckpointMixin, ExplanationEvaluation, ShapleyModule):
    """``module.explain(images)`` -> Shapley values ``(B, N, K)`` in the link's units."""

    def __init__(
        self,
        surrogate_checkpoint: str | None = None,
        num_classes: int = 1000,
        img_size: int = 224,
        objective: str = "fastshap",
        num_masks: int = 32,
        paired: bool = True,
        link: str = "softmax",
        activation: str = "tanh",
        head_blocks: int = 1,
        head_hidden_dim: int = 3072,
        guided_fraction: float = 0.5,
        guided_temperature: float = 1.0,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        warmup_steps: int = 0,
        exact_images: int = 32,
        faithfulness_images: int | None = None,
        kernel_shap_budgets: tuple[int, ...] = (64, 256, 1024),
        value_batch_size: int = 4096,
        surrogate_hparams: dict | None = None,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(
                f"model.init_args.objective must be one of {OBJECTIVES}, got {objective!r}"
            )
        check_link(link)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.init_args.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        if paired and num_masks % 2:
            raise ValueError(
                f"model.init_args.num_masks must be even with paired=true, got {num_masks}"
            )
        if not 0 <= guided_fraction <= 1:
            raise ValueError(
                f"model.init_args.guided_fraction must be in [0, 1], got {guided_fraction}"
            )
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        state = None
        if surrogate_hparams is None:
            surrogate_hparams, state = load_stage(Surrogate, surrogate_checkpoint, SURROGATE_OPTION)
        check_compatible(SURROGATE_OPTION, surrogate_hparams, num_classes, img_size)
        self.save_hyperparameters()
        self.hparams["surrogate_hparams"] = dict(surrogate_hparams)
        surrogate = construct_nested(
            Surrogate, **{**surrogate_hparams, "classifier_checkpoint": None}
        )
        if state is not None:
            surrogate.load_state_dict(state)
        self.surrogate = surrogate.requires_grad_(False).eval()
        self.backbone = copy.deepcopy(surrogate.net.backbone).requires_grad_(True)
        outputs = 2 * num_classes if objective == "salvage" else num_classes
        self.head = ExplainerHead(
            self.backbone.embed_dim, outputs, num_blocks=head_blocks, mlp_hidden_dim=head_hidden_dim
        )
        self.grid_size = self.backbone.grid_size
        self.patch_size = self.backbone.patch_size
        self.num_patches = self.backbone.num_patches
        self.kernel_sampler = ShapleyKernelSampler(self.num_patches, paired=paired)
        self.guided_sampler = AttributionGuidedSampler(
            self.num_patches, temperature=guided_temperature
        )
        self.setup_evaluation()

    def train(self, mode: bool = True):
        super().train(mode)
        self.surrogate.eval()
        return self

    def endpoint_values(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v(N) and v(empty) ``(B, K)`` from the surrogate."""
        link = self.hparams.link
        empty = torch.zeros(
            images.shape[0], 1, self.num_patches, dtype=torch.bool, device=images.device
        )
        full = ~empty
        values = surrogate_values(
            self.surrogate, images, torch.cat([full, empty], 1), link, self.hparams.value_batch_size
        )
        return values[:, 0], values[:, 1]

    def raw_outputs(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_patches(images)
        return self.head(features.tokens, features.prefix)

    def attributions(
        self, raw: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor
    ) -> torch.Tensor:
        objective = self.hparams.objective
        if objective == "salvage":
            phi_plus, phi_minus = raw.chunk(2, dim=-1)
            return phi_plus - phi_minus
        phi = ACTIVATIONS[self.hparams.activation](raw)
        if objective == "fastshap":
            phi = additive_efficient_normalization(phi, v_full, v_empty)
        return phi

    def explain(self, images: torch.Tensor) -> torch.Tensor:
        v_full, v_empty = self.endpoint_values(images)
        return self.attributions(self.raw_outputs(images), v_full, v_empty)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.explain(images)

    @property
    def scoring_link(self) -> str:
        return self.hparams.link

    def evaluation_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The explanation and the class it is scored for: the surrogate's prediction."""
        v_full, v_empty = self.endpoint_values(images)
        return self.attributions(self.raw_outputs(images), v_full, v_empty), v_full.argmax(-1)

    def reference_game(self, image: torch.Tensor) -> ImageGame:
        return ImageGame(self.surrogate, image, self.hparams.link)

    def dropped_patch_logits(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.surrogate(images, keep)

    def pixel_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.surrogate.teacher(images)

    def sample_masks(
        self, images: torch.Tensor, raw: torch.Tensor, v_full: torch.Tensor
    ) -> torch.Tensor:
        num_masks, batch = self.hparams.num_masks, images.shape[0]
        guided = 0
        if self.hparams.objective == "salvage":
            guided = 2 * int(round(self.hparams.guided_fraction * num_masks / 2))
        masks = []
        if guided:
            predicted = v_full.argmax(-1)
            phi = self.attributions(raw.detach(), v_full, v_full)
            scores = phi.gather(
                2, predicted.view(-1, 1, 1).expand(-1, self.num_patches, 1)
            ).squeeze(2)
            masks.append(self.guided_sampler.sample(scores, guided))
        if num_masks - guided:
            masks.append(
                self.kernel_sampler.sample(
                    num_masks - guided, batch_size=batch, device=images.device
                )
            )
        return torch.cat(masks, dim=1)

    def objective_loss(self, images: torch.Tensor) -> torch.Tensor:
        v_full, v_empty = self.endpoint_values(images)
        raw = self.raw_outputs(images)
        masks = self.sample_masks(images, raw, v_full)
        values = surrogate_values(
            self.surrogate, images, masks, self.hparams.link, self.hparams.value_batch_size
        )
        objective = self.hparams.objective
        if objective == "salvage":
            phi_plus, phi_minus = raw.chunk(2, dim=-1)
            return salvage_loss(phi_plus, phi_minus, masks, values)
        phi = self.attributions(raw, v_full, v_empty)
        if objective == "fastshap":
            return fastshap_loss(phi, masks, values, v_empty)
        return simshap_loss(phi, masks, values, v_full, v_empty)

    def training_step(self, batch, batch_idx):
        if batch is None:
            return None
        loss = self.check_finite(self.objective_loss(batch["image"]))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch, batch_idx):
        if batch is not None:
            self.evaluate_explanations(batch["image"], batch["index"])

    def validation_step(self, batch, batch_idx):
        if batch is None:
            return
        images = batch["image"]
        with self.fixed_random_stream(batch_idx, images.device):
            loss = self.objective_loss(images)
        self.log("val/loss", loss, sync_dist=True, prog_bar=True, batch_size=images.shape[0])

    def predict_step(self, batch, batch_idx):
        if batch is None:
            return None
        images = batch["image"]
        v_full, v_empty = self.endpoint_values(images)
        values = self.attributions(self.raw_outputs(images), v_full, v_empty)
        return {"values": values, "predicted": v_full.argmax(-1)}
