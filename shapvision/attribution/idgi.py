"""IDGI (Yang, Wang, Bilgic, "IDGI: A Framework to Eliminate Explanation Noise from Integrated
Gradients", CVPR 2023) on Integrated Gradients' straight-line path.

IG multiplies each path step's gradient by the step itself, and the components of the step that are
orthogonal to the gradient add noise without changing the output. IDGI keeps only the important
direction: along the path x_0 (the baseline) ... x_n (the image), the output change of each step,
f(x_{j+1}) - f(x_j), is shared among the input features in proportion to g_{j,i}^2 / ||g_j||^2, with
g_j the gradient at x_j. The attributions then sum exactly to f(x) - f(x_0) (completeness), as IG's
do in the limit. Baseline: the all-zero image (the dataset mean after normalisation), as our IG.
The output differentiated is the target's logit (ours, as our IG; ``output: probability`` takes the
softmax probability). No library implements it; written from the paper's Algorithm 1.
"""

from typing import Literal

import torch

from shapvision.attribution.base import Attribution, AttributionMethod, pixels_to_patches

OUTPUTS = ("logit", "probability")


class IDGIAttribution(AttributionMethod):
    name = "idgi"

    def __init__(self, model, n_steps: int = 50, output: Literal["logit", "probability"] = "logit"):
        super().__init__(model)
        if n_steps < 1:
            raise ValueError(f"idgi: n_steps must be >= 1, got {n_steps}")
        if output not in OUTPUTS:
            raise ValueError(f"idgi: output must be one of {OUTPUTS}, got {output!r}")
        self.n_steps, self.output = n_steps, output

    def _output_and_gradient(self, points: torch.Tensor, target: torch.Tensor):
        points = points.detach().requires_grad_(True)
        scores = self.model.network(points)
        if self.output == "probability":
            scores = scores.softmax(-1)
        value = scores.gather(1, target.view(-1, 1))[:, 0]
        (gradient,) = torch.autograd.grad(value.sum(), points)
        return value.detach(), gradient

    def explain(self, images, target, index=None):
        baseline = torch.zeros_like(images)
        attribution = torch.zeros_like(images)
        with torch.enable_grad():
            value, gradient = self._output_and_gradient(baseline, target)
            for step in range(1, self.n_steps + 1):
                point = baseline + (step / self.n_steps) * (images - baseline)
                next_value, next_gradient = self._output_and_gradient(point, target)
                squared = gradient.pow(2)
                share = squared / squared.flatten(1).sum(1).clamp_min(1e-30).view(-1, 1, 1, 1)
                attribution += share * (next_value - value).view(-1, 1, 1, 1)
                value, gradient = next_value, next_gradient
        pixels = attribution.sum(1).float()
        return Attribution(pixels_to_patches(pixels, self.model.patch_size), pixels)
