"""Deletion curves over patches: Quantus's region perturbation against ours, side by side in one run.

Same model, images and patch attributions; the curve is the most-relevant-first deletion of every
patch (Quantus's ``RegionPerturbation``, ``order="morf"``, one region = one 16 x 16 patch, removed
pixels set to 0; our ``PatchInsertionDeletion`` deletion curve). Three paths:

- Quantus: perturbs in numpy and runs one full forward of the batch per region (N forwards);
- ours, pixel fill: the same perturbed images built in torch and sent in chunked batched forwards,
  the same curve to float precision (checked: printed max |difference| against Quantus);
- ours, token dropping: the protocol our tables use (ViT-Shapley's): removed patches are dropped
  tokens, and all N + 1 masked samples of an image are packed into shared rows (about N^2 / 2 kept
  tokens instead of N full forwards). Its values differ from pixel filling by design (a dropped token
  is not a black patch), so the ratio is the cost of the curve each evaluation computes.

Quantus reports p(x) - p(x_k) for k = 1..N; ours p(x_k) for k = 0..N: compared as p_0 - p_k.
Each path runs once (a full-size CPU run of Quantus's path takes minutes), no warm-up.

    python benchmarks/quantus_curves.py                         # ViT-B/16 at 224, 2 images, CPU
    python benchmarks/quantus_curves.py --device cuda --images 16
    python benchmarks/quantus_curves.py --tiny                  # make test: a tiny ViT, checks only
"""

import argparse
import time
import warnings

import numpy as np
import quantus
import torch
from device import add_device_options, device_name, synchronize

from shapvision.attribution import ExplainedModel
from shapvision.metrics import ExplanationBatch
from shapvision.metrics.patch_insertion_deletion import curve_masks
from shapvision.models.masked_backbone import pixel_mask, repeat_per_mask
from shapvision.modules import Classifier

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def quantus_curves(model, images, target, attribution, patch_size):
    grid = attribution.view(len(images), 1, *model.grid_size)
    pixels = grid.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = quantus.RegionPerturbation(
            patch_size=patch_size,
            order="morf",
            regions_evaluation=model.num_patches,
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )(
            model=model.network.eval(),
            x_batch=images.cpu().numpy(),
            y_batch=target.cpu().numpy(),
            a_batch=pixels.cpu().numpy(),
            device=str(images.device),
            softmax=True,
            batch_size=len(images),
        )
    return np.asarray(scores)


def pixel_fill_curves(batch, attribution):
    """p(x_k), k = 0..N, with the top k patches set to 0 in pixel space, chunked batched forwards."""
    model = batch.model
    _, deletion = curve_masks(attribution)
    size, steps, n = deletion.shape
    kept = pixel_mask(deletion.reshape(-1, n), model.grid_size, model.patch_size)
    images = repeat_per_mask(batch.images, steps) * kept.to(batch.images.dtype)
    return batch.probabilities(images, batch.target.repeat_interleave(steps)).view(size, steps)


def token_drop_curves(batch, attribution):
    _, deletion = curve_masks(attribution)
    size, steps, n = deletion.shape
    images = repeat_per_mask(batch.images, steps)
    classes = batch.target.repeat_interleave(steps)
    return batch.masked_probabilities(images, deletion.reshape(-1, n), classes).view(size, steps)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument(
        "--chunk",
        type=int,
        default=8,
        help="images (masked samples) per forward in our paths; small chunks stay in a CPU cache",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-block ViT at 32 px: the check make test runs"
    )
    add_device_options(parser)
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    backbone_kwargs = TINY if args.tiny else {}
    img_size = 32 if args.tiny else args.img_size
    backbone = "vit_tiny_patch16_224" if args.tiny else args.backbone
    module = (
        Classifier(
            backbone=backbone,
            backbone_kwargs=backbone_kwargs,
            num_classes=10 if args.tiny else 1000,
            img_size=img_size,
        )
        .eval()
        .to(device, dtype)
    )
    model = ExplainedModel(module, backbone)
    images = torch.randn(args.images, 3, img_size, img_size, device=device, dtype=dtype)
    with torch.no_grad():
        target = model.logits(images).argmax(-1)
        attribution = torch.randn(args.images, model.num_patches, device=device)
        batch = ExplanationBatch(images, target, torch.arange(args.images), model, chunk=args.chunk)
        results, timings = {}, {}
        paths = {
            "quantus": lambda: quantus_curves(model, images, target, attribution, model.patch_size),
            "fill": lambda: pixel_fill_curves(batch, attribution),
            "drop": lambda: token_drop_curves(batch, attribution),
        }
        for name, path in paths.items():
            synchronize(device)
            start = time.perf_counter()
            results[name] = path()
            synchronize(device)
            timings[name] = time.perf_counter() - start
        as_drops = (results["fill"][:, :1] - results["fill"][:, 1:]).float().cpu().numpy()
        difference = float(np.abs(as_drops - results["quantus"]).max())
        if difference > 1e-4:
            raise SystemExit(f"curves differ from Quantus's by {difference:.2e}")
    n = model.num_patches
    per_image = {k: v / args.images for k, v in timings.items()}
    print(
        f"# {n}-patch deletion curves: Quantus RegionPerturbation vs shapvision, {backbone} at {img_size}, "
        f"{args.images} image(s), {args.dtype}, {device_name(device)}"
    )
    print("| path | seconds / image | speed-up over Quantus |")
    print("|---|---|---|")
    print(
        f"| Quantus region perturbation (one forward per region) | {per_image['quantus']:.3f} | 1.00x |"
    )
    print(
        f"| ours, pixel fill, chunked forwards (Quantus's curve) | {per_image['fill']:.3f} | "
        f"{timings['quantus'] / timings['fill']:.2f}x |"
    )
    print(
        f"| ours, dropped tokens packed (our tables' protocol) | {per_image['drop']:.3f} | "
        f"{timings['quantus'] / timings['drop']:.2f}x |"
    )
    print(f"max |curve difference| vs Quantus (pixel fill) = {difference:.2e}")


if __name__ == "__main__":
    main()
