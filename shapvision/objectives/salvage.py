"""The Salvage objective (Naouar et al. 2025): a "Shapley distribution" fitted with Jensen-Shannon loss.

The explainer outputs two logit-scale values per patch and class, phi+ (patch present) and phi-
(patch absent). For a coalition S, ``u(S) = softmax(sum_{i in S} phi+_i + sum_{i not in S} phi-_i)``
should match the surrogate's distribution v(S); the loss is JS(u(S) || v(S)) over sampled masks.
Attributions are ``phi+ - phi-`` (the logit change from including a patch); the explainer's own
classification is u(N) = softmax(sum_i phi+_i) (Salvage Table 2).

Attribution-guided sampling: the Salvage poster splits *all* masks between inclusion probabilities
increasing in phi and decreasing in phi, so ``guided_fraction`` defaults to 1; any remainder is drawn
from the Shapley kernel. The scheme and temperature are not published (see AttributionGuidedSampler).
Softmax is the only link implemented end to end (u(S) is a softmax); binary tasks use two classes.
"""

import torch

from shapvision.objectives.explainer_objective import ExplainerObjective
from shapvision.shapley.samplers import AttributionGuidedSampler


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
    phi_plus: torch.Tensor, phi_minus: torch.Tensor, masks: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Mean JS(u(S) || v(S)) over images and masks; values ``(B, M, K)`` are probabilities."""
    return jensen_shannon(salvage_distribution(phi_plus, phi_minus, masks), values).mean()


class Salvage(ExplainerObjective):
    name = "salvage"
    classifies = True

    def __init__(
        self,
        num_masks: int = 32,
        paired: bool = True,
        guided_fraction: float = 1.0,
        guided_temperature: float = 1.0,
    ):
        super().__init__(num_masks, paired)
        if not 0 <= guided_fraction <= 1:
            raise ValueError(f"Salvage guided_fraction must be in [0, 1], got {guided_fraction}")
        if guided_temperature <= 0:
            raise ValueError(f"Salvage guided_temperature must be > 0, got {guided_temperature}")
        self.guided_fraction, self.guided_temperature = guided_fraction, guided_temperature

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

    def sample_masks(self, raw, v_full, v_empty):
        guided = 2 * int(round(self.guided_fraction * self.num_masks / 2))
        masks = []
        if guided:
            phi = self.attributions(raw.detach(), v_full, v_empty)
            predicted = v_full.argmax(-1).view(-1, 1, 1).expand(-1, phi.shape[1], 1)
            masks.append(self.guided_sampler.sample(phi.gather(2, predicted).squeeze(2), guided))
        if self.num_masks - guided:
            masks.append(
                self.kernel_sampler.sample(
                    self.num_masks - guided, batch_size=raw.shape[0], device=raw.device
                )
            )
        return torch.cat(masks, dim=1)

    def loss(self, raw, masks, values, v_full, v_empty):
        phi_plus, phi_minus = raw.chunk(2, dim=-1)
        return salvage_loss(phi_plus, phi_minus, masks, values)

    def classify(self, raw):
        return raw.chunk(2, dim=-1)[0].sum(1)
