"""The SVO Shapley loss (Fan et al. 2026, Eq. 13).

The model's own votes Phi(x) (B, N, K) define the value function v(S) = sum over kept patches of the
votes computed on the masked input. The loss asks the unmasked votes to predict it additively:
``(v_y(S) - 1_S^T Phi(x)[:, y])^2`` for sampled masks S and classes y; v(empty) = 0 by construction.
"""

import torch

from shapvision.shapley.samplers import ShapleyKernelSampler

TARGET_MODES = ("sampled", "all", "matched")


def svo_shapley_loss(
    phi_full: torch.Tensor,
    masked_values: torch.Tensor,
    masks: torch.Tensor,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared gap between v(S) and 1_S^T Phi.

    phi_full ``(B, N, K)``; masked_values ``(B, M, K)`` = v(S) from the masked forward; masks ``(B, M, N)``;
    classes ``(B, M)`` picks one class per mask (Eq. 13), or None for all classes.
    """
    additive = masks.to(phi_full.dtype) @ phi_full
    gap = masked_values - additive
    if classes is not None:
        gap = gap.gather(-1, classes.unsqueeze(-1)).squeeze(-1)
    return gap.pow(2).mean()


def svo_clip_shapley_loss(
    votes: torch.Tensor,
    masked_sums: torch.Tensor,
    text: torch.Tensor,
    masks: torch.Tensor,
    units: torch.Tensor | float,
    captions: torch.Tensor | None = None,
) -> torch.Tensor:
    """SVO-CLIP's Eq. 13 in contrastive-logit units, over captions of the batch.

    votes ``(B, N, T)``: each patch's cosine <e_i, t> with every caption, of the unmasked images;
    masked_sums ``(B, M, D)``: the summed unit patch embeddings of each masked image; text ``(T, D)``
    unit caption embeddings; masks ``(B, M, N)``; ``units`` the logits per cosine (logit_scale / N);
    captions ``(B, M)`` one caption per mask, or None for every caption. Phi is ``units * votes`` and
    the game ``units * <masked_sum, t>``.
    """
    phi = units * votes
    masked_values = units * (masked_sums @ text.T)
    return svo_shapley_loss(phi, masked_values, masks, captions)


class SVOObjective:
    """SVO's Shapley loss as one object for every self-explaining model (SVO-ViT, SVO-ResNet,
    SVO-CLIP): its options checked, the masks drawn from the Shapley kernel, the target of each mask's
    term chosen, and the squared gap.

    ``targets``, in the model's own words (``target_modes`` maps them onto the modes here): ``sampled``
    one target per mask, uniform (Eq. 13's class y; SVO-CLIP: a caption of the batch), ``all`` every
    target, ``matched`` each image's own target (SVO-CLIP: its caption). ``paired`` / ``balanced_sizes``
    as in :class:`ShapleyKernelSampler`. Errors name ``model.init_args.<option>``; the options are
    checked at construction, before the model is built, and ``for_patches`` then sizes the sampler.
    """

    def __init__(
        self,
        shapley_weight: float,
        num_masks: int = 1,
        paired: bool = False,
        balanced_sizes: bool = True,
        targets: str = "sampled",
        targets_option: str = "shapley_classes",
        target_modes: dict[str, str] | None = None,
    ):
        target_modes = target_modes or {"sampled": "sampled", "all": "all"}
        if shapley_weight < 0:
            raise ValueError(
                f"model.init_args.shapley_weight (lambda) must be >= 0, got {shapley_weight}"
            )
        if num_masks < 1 or (paired and num_masks % 2):
            raise ValueError(
                f"model.init_args.num_masks must be >= 1, and even with paired=true; got {num_masks} (paired={paired})"
            )
        if targets not in target_modes:
            raise ValueError(
                f"model.init_args.{targets_option} must be one of {tuple(target_modes)}, got {targets!r}"
            )
        if target_modes[targets] not in TARGET_MODES:
            raise ValueError(f"target mode {target_modes[targets]!r} is not one of {TARGET_MODES}")
        self.weight, self.num_masks, self.mode = shapley_weight, num_masks, target_modes[targets]
        self.paired, self.balanced_sizes = paired, balanced_sizes
        self.sampler: ShapleyKernelSampler | None = None

    def for_patches(self, num_patches: int) -> "SVOObjective":
        self.sampler = ShapleyKernelSampler(
            num_patches, paired=self.paired, balanced_sizes=self.balanced_sizes
        )
        return self

    def draw(
        self, batch: int, num_targets: int, device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Masks ``(B, M, N)`` and the target of each mask's term ``(B, M)`` (None: every target)."""
        masks = self.sampler.sample(self.num_masks, batch_size=batch, device=device)
        if self.mode == "all":
            return masks, None
        if self.mode == "sampled":
            return masks, torch.randint(num_targets, (batch, self.num_masks), device=device)
        return masks, torch.arange(batch, device=device).unsqueeze(1).expand(batch, self.num_masks)
