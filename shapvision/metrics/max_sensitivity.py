"""Max-sensitivity (Yeh et al. 2019; Quantus's ``MaxSensitivity``): how much an explanation moves
under a small input perturbation.

Per image, for ``samples`` draws of uniform noise in [-radius, radius] (the data's normalised space;
Quantus's default radius 0.2, its ``lower_bound``), the method explains the perturbed image for the
same class; sensitivity = max over draws of ||e(x + noise) - e(x)|| / ||e(x)|| on the patch values
(Frobenius norms, no per-explanation normalisation: Quantus's ``normalise=False``). Lower is better.
The noise is drawn from (seed, dataset index, draw), so DDP draws what one process draws. Only
images with dataset index below ``images`` are scored (each costs ``samples`` explanations).
"""

import torch

from shapvision.metrics.per_image import PerImageMetric


def uniform_noise(shape, radius: float, seed: int, index: int, draw: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed((seed * 1_000_003 + index) * 1_009 + draw)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * radius


class MaxSensitivity(PerImageMetric):
    columns = ("max_sensitivity",)
    fields = {"max_sensitivity": 0}
    higher_is_better = {"max_sensitivity": False}
    needs_method = True

    def __init__(
        self, images: int = 16, samples: int = 10, radius: float = 0.2, seed: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        if samples < 1 or radius <= 0:
            raise ValueError(
                f"max_sensitivity needs samples >= 1 and radius > 0, got {samples}, {radius}"
            )
        self.images, self.samples, self.radius, self.seed = images, samples, radius, seed

    def update(self, batch, attribution, method) -> None:
        selected = batch.index < self.images
        if not selected.any():
            return
        images, target, index = (
            batch.images[selected],
            batch.target[selected],
            batch.index[selected],
        )
        original = batch.patch_values(attribution)[selected].double()
        worst = torch.zeros(len(images), dtype=torch.float64, device=original.device)
        for draw in range(self.samples):
            noise = torch.stack(
                [
                    uniform_noise(images.shape[1:], self.radius, self.seed, int(i), draw)
                    for i in index.tolist()
                ]
            ).to(images)
            moved = method.explain(images + noise, target, index).patches.double().detach()
            worst = torch.maximum(worst, (moved - original).norm(dim=1) / original.norm(dim=1))
        # an all-zero explanation has no relative change: undefined, counted
        defined = original.norm(dim=1) > 0
        self.record(batch.keys[selected], max_sensitivity=torch.where(defined, worst, float("nan")))
