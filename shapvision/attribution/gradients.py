"""Gradient baselines from captum: saliency, Integrated Gradients, SmoothGrad.

All are native to pixels: the pixel map is the attribution summed over colour channels (signed for
IG; magnitudes for saliency, the absolute gradient as captum's ``Saliency`` returns it, and for
SmoothGrad) and a patch's value is the sum over its pixels. IG integrates from the all-zero image,
which is the dataset mean after normalisation; SmoothGrad averages absolute gradients under Gaussian
input noise (captum ``NoiseTunnel`` over ``Saliency(abs=True)``, Smilkov et al.'s visualised form),
with the noise drawn from each image's dataset index. It averaged signed gradients before: a
gradient's sign is a direction of sensitivity, not evidence, and summed over a patch it could rank
the only relevant patch of a model last.
"""

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

from shapvision.attribution.base import Attribution, AttributionMethod, pixels_to_patches


class _CaptumMethod(AttributionMethod):
    library = "captum"

    def _finish(self, attributions: torch.Tensor) -> Attribution:
        pixels = attributions.detach().sum(1).float()
        return Attribution(pixels_to_patches(pixels, self.model.patch_size), pixels)


class SaliencyAttribution(_CaptumMethod):
    name = "saliency"
    values = "magnitude"

    def explain(self, images, target, index=None):
        with torch.enable_grad():
            grads = Saliency(self.model.network).attribute(images, target=target, abs=True)
        return self._finish(grads)


class IntegratedGradientsAttribution(_CaptumMethod):
    name = "integrated_gradients"

    def __init__(self, model, n_steps: int = 50, internal_batch_size: int | None = None):
        super().__init__(model)
        self.n_steps, self.internal_batch_size = n_steps, internal_batch_size

    def explain(self, images, target, index=None):
        with torch.enable_grad():
            values = IntegratedGradients(self.model.network).attribute(
                images,
                baselines=torch.zeros_like(images),
                target=target,
                n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size or images.shape[0],
            )
        return self._finish(values)


class SmoothGradAttribution(_CaptumMethod):
    name = "smoothgrad"
    values = "magnitude"

    def __init__(self, model, samples: int = 25, stdev: float = 0.15, seed: int = 0):
        super().__init__(model)
        self.samples, self.stdev, self.seed = samples, stdev, seed

    def explain(self, images, target, index=None):
        tunnel = NoiseTunnel(Saliency(self.model.network))
        # Noise seeded by the dataset index, image by image, so DDP draws what one process draws.
        rows = []
        indices = index.tolist() if index is not None else range(images.shape[0])
        with torch.enable_grad():
            for image, t, i in zip(images, target, indices, strict=True):
                with torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
                    torch.manual_seed(self.seed * 1_000_003 + int(i))
                    rows.append(
                        tunnel.attribute(
                            image.unsqueeze(0),
                            nt_type="smoothgrad",
                            nt_samples=self.samples,
                            nt_samples_batch_size=self.samples,
                            stdevs=self.stdev,
                            target=int(t),
                            abs=True,
                        )
                    )
        return self._finish(torch.cat(rows))
