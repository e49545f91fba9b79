"""M2IB (Wang, Rudner, Wilson, "Visual Explanations of Image-Text Representations via Multi-Modal
Information Bottleneck Attribution", NeurIPS 2023), the image side, on the open_clip towers.

From the reference (``YingWANGG/M2IB``, ``scripts/iba.py`` and ``methods.py``), per image-caption pair:
a bottleneck after vision block ``layer`` (0-based, 9 for ViT-B) replaces the tokens h by
z = lambda * h + (1 - lambda) * eps, eps ~ N(0, 1), lambda = sigmoid(alpha) per token and channel,
alpha initialised to 5; alpha minimises beta * mean KL(N(lambda h, (1 - lambda)^2) || N(0, 1)) minus the
cosine of the caption embedding with the image embedding computed from z (``noise_copies`` draws per
step), by Adam (lr 1) for ``steps`` steps. The map is the KL summed over channels, per patch token (CLS
dropped), from the last step's forward, as the reference returns it. Defaults are the reference's and
ECLIP's (layer 9, beta 0.1, 10 steps, 10 copies). The reference bilinearly upsamples and min-max
normalises the map for display; the values here are the per-patch KL (information, "positive").
The noise is drawn per image from (``seed``, dataset index), so DDP gives one process's values.
Cost: ``steps`` forward / backward passes over ``noise_copies`` copies of the blocks after ``layer``
per pair: the one CLIP explainer that optimises per image (BENCHMARKS.md reports its time per pair).
"""

import torch
import torch.nn.functional as F

from shapvision.attribution.base import Attribution, AttributionMethod, per_image_generators
from shapvision.attribution.clip_vision_blocks import VisionTowerBlocks, target_captions


def gaussian_kl_to_standard(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) elementwise, from the log standard deviation (stable as std -> 0)."""
    return 0.5 * (mean**2 + torch.exp(2 * log_std) - 1) - log_std


class M2IB(AttributionMethod):
    name = "m2ib"
    families = ("vit", "other")
    library = "shapvision (from the M2IB reference)"
    values = "positive"

    def __init__(
        self,
        model,
        layer: int = 9,
        beta: float = 0.1,
        steps: int = 10,
        lr: float = 1.0,
        noise_copies: int = 10,
        initial_alpha: float = 5.0,
        seed: int = 0,
    ):
        super().__init__(model)
        self.tower = VisionTowerBlocks(model, self.name)
        if not 0 <= layer < self.tower.depth:
            raise ValueError(
                f"method_options.m2ib.layer must be in 0..{self.tower.depth - 1} (a block of the vision "
                f"tower, 0-based), got {layer}"
            )
        if steps < 1 or noise_copies < 1:
            raise ValueError("method_options.m2ib.steps and noise_copies must be >= 1")
        self.layer, self.beta, self.steps, self.lr = layer, beta, steps, lr
        self.noise_copies, self.initial_alpha, self.seed = noise_copies, initial_alpha, seed

    def explain(self, images, target, index=None):
        tower, copies = self.tower, self.noise_copies
        if index is None:
            index = torch.arange(images.shape[0])
        generators = per_image_generators(index, self.seed, images.device)
        with torch.no_grad():
            x, rope = tower.embed(images)
            h = tower.run(x, rope, tower.blocks[: self.layer + 1]).float()
        rest = tower.blocks[self.layer + 1 :]
        text = target_captions(self.model, target).float()
        alpha = torch.full_like(h, self.initial_alpha, requires_grad=True)
        optimizer = torch.optim.Adam([alpha], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                keep = torch.sigmoid(alpha)
                log_std = F.logsigmoid(-alpha)  # log(1 - lambda)
                mean = h * keep
                information = gaussian_kl_to_standard(mean, log_std)
                noise = torch.stack(
                    [
                        torch.randn((copies, *h.shape[1:]), generator=g, device=h.device)
                        for g in generators
                    ]
                )
                z = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * noise
                out = tower.run(z.flatten(0, 1).to(x.dtype), rope, rest)
                embedding = tower.cls_embedding(out).float().unflatten(0, (-1, copies))
                similarity = (embedding * text.unsqueeze(1)).sum(-1).mean(1)
                # images have their own alpha, so the summed loss gives each its own gradient
                loss = (self.beta * information.mean((1, 2)) - similarity).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return Attribution(information.detach().sum(-1)[:, 1:])
