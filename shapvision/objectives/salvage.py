"""The Salvage objective (Naouar et al. 2025): a "Shapley distribution" fitted with Jensen-Shannon loss.

The explainer outputs two logit-scale values per patch and class, phi+ (patch present) and phi-
(patch absent). For a coalition S, ``u(S) = softmax(sum_{i in S} phi+_i + sum_{i not in S} phi-_i)``
should match the surrogate's distribution v(S); the loss is JS(u(S) || v(S)) over sampled masks.
Attributions are ``phi+ - phi-`` (the logit change from including a patch); the explainer's own
classification is u(N) = softmax(sum_i phi+_i) (Salvage Table 2).

Attribution-guided sampling: the Salvage poster splits *all* masks between inclusion probabilities
increasing in phi and decreasing in phi, so ``guided_fraction`` defaults to 1; any remainder is drawn
from the Shapley kernel. The scheme and temperature are not published (see AttributionGuidedSampler).
``paired`` draws each mask with its complement, guided masks included.

Importance weights (the poster: "importance sampling during training"; the estimator is ours): the
masks of a step come from the proposal q = g q_guided + (1 - g) p_kernel (g the guided fraction;
the deterministic split between the two is the balance heuristic's mixture), and every loss term is
weighted by p_kernel(S) / q(S), so the expected loss is the Shapley kernel's expectation, the one
FastSHAP's and Salvage's objectives are defined under. ``importance_weights``: ``normalised``
(default) divides the weights by their mean over each image's masks (self-normalised: biased but
bounded, the stabler choice where g = 1 and p / q is unbounded); ``exact`` keeps them (unbiased; bounded
by 1 / (1 - g) for g < 1); ``none`` is the unweighted guided expectation (the previous behaviour).
Softmax is the only link implemented end to end (u(S) is a softmax); binary tasks use two classes.
"""

import math
from typing import Literal, get_args

import torch

from shapvision.objectives.explainer_objective import ExplainerObjective
from shapvision.shapley.samplers import AttributionGuidedSampler, shapley_kernel_log_prob

ImportanceWeights = Literal["normalised", "exact", "none"]
IMPORTANCE_WEIGHTS = get_args(ImportanceWeights)


def salvage_distribution(
    phi_plus: torch.Tensor, phi_minus: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """u(S) ``(B, M, K)`` for phi+ / phi- ``(B, N, K)`` and masks ``(B, M, N)``."""
    z = masks.to(phi_plus.dtype)
    logits = z @ phi_plus + (1 - z) @ phi_minus
    return torch.softmax(logits, dim=-1)


def jensen_shannon(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """JS divergence over the last dim, in nats, per row; 0 iff p == q, at most log 2."""
    m = 0.5 * (p + q)
    kl_pm = (p * ((p + eps).log() - (m + eps).log())).sum(-1)
    kl_qm = (q * ((q + eps).log() - (m + eps).log())).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def salvage_loss(
    phi_plus: torch.Tensor,
    phi_minus: torch.Tensor,
    masks: torch.Tensor,
    values: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean JS(u(S) || v(S)) over images and masks, each term times its importance weight ``(B, M)``
    where given; values ``(B, M, K)`` are probabilities."""
    divergence = jensen_shannon(salvage_distribution(phi_plus, phi_minus, masks), values)
    if weights is not None:
        divergence = divergence * weights.to(divergence.dtype)
    return divergence.mean()


class Salvage(ExplainerObjective):
    name = "salvage"
    classifies = True

    def __init__(
        self,
        num_masks: int = 32,
        paired: bool = True,
        guided_fraction: float = 1.0,
        guided_temperature: float = 1.0,
        importance_weights: ImportanceWeights = "normalised",
    ):
        super().__init__(num_masks, paired)
        if importance_weights not in IMPORTANCE_WEIGHTS:
            raise ValueError(
                f"Salvage importance_weights must be one of {IMPORTANCE_WEIGHTS}, got {importance_weights!r}"
            )
        if not 0 <= guided_fraction <= 1:
            raise ValueError(f"Salvage guided_fraction must be in [0, 1], got {guided_fraction}")
        if guided_temperature <= 0:
            raise ValueError(f"Salvage guided_temperature must be > 0, got {guided_temperature}")
        self.guided_fraction, self.guided_temperature = guided_fraction, guided_temperature
        self.importance_weights = importance_weights

    def bind(self, num_patches: int) -> None:
        super().bind(num_patches)
        self.guided_sampler = AttributionGuidedSampler(
            num_patches, temperature=self.guided_temperature
        )

    def num_outputs(self, num_classes: int) -> int:
        return 2 * num_classes

    def check_link(self, link: str) -> None:
        if link != "softmax":
            raise ValueError(
                f"the Salvage objective models v(S) as a softmax distribution: model.init_args.link must be softmax, got {link!r}"
            )

    def attributions(self, raw, v_full, v_empty):
        phi_plus, phi_minus = raw.chunk(2, dim=-1)
        return phi_plus - phi_minus

    def guided_masks(self) -> int:
        return 2 * int(round(self.guided_fraction * self.num_masks / 2))

    def guidance_scores(self, raw, v_full, v_empty) -> torch.Tensor:
        """The current attributions ``(B, N)`` of each image's predicted class, which guide the draw."""
        phi = self.attributions(raw.detach(), v_full, v_empty)
        predicted = v_full.argmax(-1).view(-1, 1, 1).expand(-1, phi.shape[1], 1)
        return phi.gather(2, predicted).squeeze(2)

    def sample_masks(self, raw, v_full, v_empty):
        guided = self.guided_masks()
        masks = []
        if guided:
            scores = self.guidance_scores(raw, v_full, v_empty)
            masks.append(self.guided_sampler.sample(scores, guided, paired=self.paired))
        if self.num_masks - guided:
            masks.append(
                self.kernel_sampler.sample(
                    self.num_masks - guided, batch_size=raw.shape[0], device=raw.device
                )
            )
        return torch.cat(masks, dim=1)

    def mask_weights(self, raw, masks, v_full, v_empty) -> torch.Tensor | None:
        """p_kernel(S) / q(S) ``(B, M)`` for the masks ``sample_masks`` drew (normalised: mean 1 per image)."""
        guided = self.guided_masks()
        if self.importance_weights == "none" or not guided:
            return None
        share = guided / self.num_masks
        log_guided = self.guided_sampler.log_prob(self.guidance_scores(raw, v_full, v_empty), masks)
        log_kernel = shapley_kernel_log_prob(masks)
        log_proposal = log_guided + math.log(share)
        if share < 1:
            log_proposal = torch.logaddexp(log_proposal, log_kernel + math.log(1 - share))
        weights = (log_kernel - log_proposal).exp()
        if self.importance_weights == "normalised":
            weights = weights / weights.mean(1, keepdim=True)
        return weights.float()

    def loss(self, raw, masks, values, v_full, v_empty):
        phi_plus, phi_minus = raw.chunk(2, dim=-1)
        weights = self.mask_weights(raw, masks, v_full, v_empty)
        return salvage_loss(phi_plus, phi_minus, masks, values, weights)

    def classify(self, raw):
        return raw.chunk(2, dim=-1)[0].sum(1)
