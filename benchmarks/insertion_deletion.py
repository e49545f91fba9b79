"""Insertion / deletion curves with patches removed: packed token dropping vs per-step full-image forwards.

One curve pair per image needs 2 (N + 1) masked forwards. The per-step reference runs them as the
ViT-Shapley code does: for each k, one forward of all 1 + N tokens with the removed patches blocked
in attention (masking="attention"). The packed path (shapvision.metrics.patch_insertion_deletion)
sends every masked sample of the batch through the masked model at once, removed tokens dropped and
samples packed into shared rows: about N^2 / 2 kept tokens per curve instead of N full forwards.
Both run side by side on the same images and attributions; the curves are compared.

    python benchmarks/insertion_deletion.py                                  # ViT-B/16 at 224, 1 image
    python benchmarks/insertion_deletion.py --chunk 64 --repeats 1 --no-warmup  # 2-core CPU: small chunks stay in cache
    python benchmarks/insertion_deletion.py --device cuda --dtype bfloat16 --images 16
"""

import argparse

import torch
from device import add_device_options, device_name, timed

from shapvision.attribution import ExplainedModel
from shapvision.metrics import ExplanationBatch
from shapvision.metrics.patch_insertion_deletion import curve_masks, packed_curves
from shapvision.modules import Classifier


def per_step_curves(model: ExplainedModel, images, target, attribution):
    insertion, deletion = curve_masks(attribution)
    backbone, head = model.backbone, model.module.net.head
    curves = []
    for masks in (insertion, deletion):
        steps = []
        for k in range(masks.shape[1]):
            pooled = backbone.forward_patches(images, masks[:, k], masking="attention").pooled
            steps.append(head(pooled).softmax(-1).gather(1, target.view(-1, 1))[:, 0])
        curves.append(torch.stack(steps, 1))
    return curves


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument(
        "--chunk", type=int, default=512, help="masked samples per forward in the packed path"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the warm-up call (slow CPU runs)"
    )
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds (make test)")
    add_device_options(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.backbone, args.img_size, args.chunk, args.repeats = "vit_tiny_patch16_224", 32, 8, 1
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    module = (
        Classifier(backbone=args.backbone, num_classes=1000, img_size=args.img_size)
        .eval()
        .to(device, dtype)
    )
    model = ExplainedModel(module, args.backbone)
    images = torch.randn(args.images, 3, args.img_size, args.img_size, device=device, dtype=dtype)
    with torch.no_grad():
        target = model.logits(images).argmax(-1)
        attribution = torch.randn(args.images, model.num_patches, device=device)
        batch = ExplanationBatch(images, target, torch.arange(args.images), model, chunk=args.chunk)
        packed = packed_curves(batch, attribution)
        reference = per_step_curves(model, images, target, attribution)
        difference = max(
            float((a.float() - b.float()).abs().max())
            for a, b in zip(packed, reference, strict=True)
        )
        warmup = not args.no_warmup
        t_packed = timed(lambda: packed_curves(batch, attribution), args.repeats, device, warmup)
        t_steps = timed(
            lambda: per_step_curves(model, images, target, attribution),
            args.repeats,
            device,
            warmup,
        )
    n = model.num_patches
    print(
        f"# insertion/deletion curves, {args.backbone} at {args.img_size} ({n} patches), {args.images} image(s), "
        f"{args.dtype}, {device_name(device)}"
    )
    print("| path | seconds / image | ratio |")
    print("|---|---|---|")
    print(
        f"| per-step full-image forwards (attention masking, 2 x {n + 1}) | {t_steps / args.images:.3f} | 1.00x |"
    )
    print(
        f"| packed token dropping, one pass | {t_packed / args.images:.3f} | {t_steps / t_packed:.2f}x |"
    )
    print(f"max |curve difference| = {difference:.2e}; packed chunk {args.chunk} masked samples")


if __name__ == "__main__":
    main()
