"""Grad-CAM and EigenCAM from pytorch-grad-cam (jacobgil), on ViTs and ResNets.

- ViT: the target layer is the last block's ``norm1`` (the library's recommendation for ViTs); its
  tokens pass through a token-to-grid reshape that drops the prefix tokens.
- ResNet: the last bottleneck of stage 4 (stride 1 here, so the map has the patch grid's resolution).
The library returns each map ReLU'd, resized to the image and min-max scaled to [0, 1]; that is the
pixel map, and a patch's value is the mean over its pixels (rankings are unchanged by the scaling).
"""

import torch
from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from shapvision.attribution.base import Attribution, AttributionMethod, pixels_to_patches


class _LibraryCAM(AttributionMethod):
    families = ("vit", "resnet")
    library = "pytorch-grad-cam"
    cam_class = GradCAM

    def __init__(self, model):
        super().__init__(model)
        backbone = model.backbone
        if model.family == "vit":
            layer, prefix, grid = (
                backbone.model.blocks[-1].norm1,
                backbone.num_prefix_tokens,
                model.grid_size,
            )

            def reshape(tokens):
                patches = tokens[:, prefix:]
                return patches.reshape(tokens.shape[0], *grid, tokens.shape[-1]).permute(0, 3, 1, 2)

        else:
            layer, reshape = backbone.model.layer4[-1], None
        self.layer, self.reshape = layer, reshape

    def explain(self, images, target, index=None):
        with (
            torch.enable_grad(),
            self.cam_class(
                model=self.model.network, target_layers=[self.layer], reshape_transform=self.reshape
            ) as cam,
        ):
            # The evaluated model's weights are frozen: an input that requires grad keeps the graph.
            maps = cam(
                images.detach().requires_grad_(True),
                targets=[ClassifierOutputTarget(int(t)) for t in target],
            )
        pixels = torch.as_tensor(maps, device=images.device, dtype=torch.float32)
        patch_size = self.model.patch_size
        return Attribution(pixels_to_patches(pixels, patch_size) / patch_size**2, pixels)


class GradCAMAttribution(_LibraryCAM):
    name = "gradcam"
    values = "positive"
    cam_class = GradCAM


class EigenCAMAttribution(_LibraryCAM):
    name = "eigencam"
    values = "magnitude"
    cam_class = EigenCAM
