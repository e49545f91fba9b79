"""Model-parameter randomisation test, cascading (Adebayo et al. 2018; Quantus's ``MPRT``).

An explanation that does not change when the model's weights are destroyed does not explain the
model. The layers of the explained model that can re-initialise themselves (every module with
``reset_parameters``, in ``named_modules`` order, as Quantus lists them) are randomised from the top
down, cumulatively: each layer is reset after ``torch.manual_seed(seed + 1)``, Quantus's draw. After
the top ``ceil(L k / stages)`` layers, k = 1..stages, the method explains the image again for the
same class, and the explanation is compared with the original: Spearman correlation of the absolute
patch values (Quantus's default ``abs=True``) and SSIM of the absolute pixel maps min-max normalised
to [0, 1] (torchmetrics' Gaussian 11 x 11, sigma 1.5). The cells are the means over stages; lower =
more sensitive to the model, which is what the test asks of an explanation. ``mprt_spearman_curve``
gives the stages. The model is randomised in place and restored before the next method runs; only
images with dataset index below ``images`` are scored (each costs ``stages`` explanations).

An amortised explainer does not read the model at inference, so it scores 1 here by design: the
test says exactly that, and the docs say why it is not a defect of its training.
"""

import math

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from shapvision.metrics.correlation import spearman_rows
from shapvision.metrics.per_image import PerImageMetric, weighted_mean
from shapvision.metrics.segmentation import min_max


def resettable_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Layers from the top down: every module with ``reset_parameters``, reversed module order."""
    return [m for _, m in module.named_modules() if hasattr(m, "reset_parameters")][::-1]


def randomise(layers, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        for layer in layers:
            torch.manual_seed(seed + 1)
            layer.reset_parameters()


def ssim_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image of two map batches ``(B, H, W)`` on [0, 1]."""
    return structural_similarity_index_measure(
        a.unsqueeze(1).float(), b.unsqueeze(1).float(), data_range=1.0, reduction="none"
    ).double()


class ModelRandomisation(PerImageMetric):
    columns = ("mprt_spearman", "mprt_ssim")
    higher_is_better = {"mprt_spearman": False, "mprt_ssim": False}
    needs_method = True

    def __init__(self, images: int = 8, stages: int = 4, seed: int = 42, **kwargs):
        super().__init__(**kwargs)
        if stages < 1:
            raise ValueError(f"model randomisation needs stages >= 1, got {stages}")
        self.images, self.stages, self.seed = images, stages, seed

    def field_sizes(self) -> dict[str, int]:
        return {"spearman": self.stages, "ssim": self.stages}

    def update(self, batch, attribution, method) -> None:
        selected = batch.index < self.images
        if not selected.any():
            return
        model = batch.model
        images, target, index = (
            batch.images[selected],
            batch.target[selected],
            batch.index[selected],
        )
        original = batch.patch_values(attribution)[selected].double().abs()
        original_map = min_max(batch.pixel_map(attribution)[selected].abs())
        layers = resettable_layers(model.module)
        saved = {k: v.clone() for k, v in model.module.state_dict().items()}
        spearman, ssim, done = [], [], 0
        try:
            for stage in range(1, self.stages + 1):
                upto = math.ceil(len(layers) * stage / self.stages)
                randomise(layers[done:upto], self.seed)
                done = upto
                explained = method.explain(images, target, index)
                values = explained.patches.detach().double().abs()
                spearman.append(spearman_rows(values, original))
                pixels = explained.pixel_map(model.grid_size, batch.size).detach().abs()
                ssim.append(ssim_rows(min_max(pixels), original_map))
        finally:
            model.module.load_state_dict(saved)
        self.record(
            batch.keys[selected], spearman=torch.stack(spearman, 1), ssim=torch.stack(ssim, 1)
        )

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        spearman = weighted_mean(weights, values["spearman"])
        ssim = weighted_mean(weights, values["ssim"])
        return {
            "mprt_spearman": spearman.mean(-1),
            "mprt_ssim": ssim.mean(-1),
            "mprt_spearman_curve": spearman,
            "mprt_ssim_curve": ssim,
        }
