"""Masked-forward throughput: token dropping vs attention masking, ResNet masked branch vs plain forward.

Throughput is (images x masks) per second: each of ``--images`` images is evaluated under ``--masks``
masks, as in surrogate and explainer training. Both formulations run side by side in one process on
the same inputs and masks, alternating, and the median of ``--repeats`` timings is reported.

    python benchmarks/masked_forward.py                       # CPU, float32, small batch
    python benchmarks/masked_forward.py --device cuda --dtype bfloat16 --images 64 --masks 32
"""

import argparse
import functools

import torch
from device import add_device_options, device_name, timed

from shapvision.models import create_backbone
from shapvision.shapley import ShapleyKernelSampler, UniformSizeSampler


def masks_for(kind, num_patches, count, generator, device):
    if kind == "shapley-kernel":
        return (
            ShapleyKernelSampler(num_patches, paired=True)
            .sample(count, generator=generator)
            .to(device)
        )
    return UniformSizeSampler(num_patches).sample(count, generator=generator).to(device)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"],
    )
    parser.add_argument("--resnet", default="resnet50")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--masks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds (make test)")
    add_device_options(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.models, args.resnet = ["vit_tiny_patch16_224"], "resnet18"
        args.images, args.masks, args.repeats = 1, 2, 1
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    count = args.images * args.masks
    generator = torch.Generator().manual_seed(0)
    name = device_name(device)
    print(
        f"# masked_forward: {name}, {torch.get_num_threads()} threads, {args.dtype}, {args.images} images x {args.masks} masks, torch {torch.__version__}"
    )
    print(
        "| model | masks | attention masking (img*mask/s) | token dropping (img*mask/s) | speed-up |"
    )
    print("|---|---|---|---|---|")
    for model_name in args.models:
        backbone = create_backbone(model_name).to(device=device, dtype=dtype).eval()
        images = torch.randn(count, 3, 224, 224, generator=generator).to(device=device, dtype=dtype)
        for kind in ("shapley-kernel", "uniform-size"):
            keep = masks_for(kind, backbone.num_patches, count, generator, device)
            with torch.inference_mode():
                attention = timed(
                    functools.partial(backbone.forward_patches, images, keep, masking="attention"),
                    args.repeats,
                    device,
                )
                dropping = timed(
                    functools.partial(backbone.forward_patches, images, keep, masking="drop"),
                    args.repeats,
                    device,
                )
            print(
                f"| {model_name} | {kind} | {count / attention:.1f} | {count / dropping:.1f} | {attention / dropping:.2f}x |"
            )
    resnet = create_backbone(args.resnet).to(device=device, dtype=dtype).eval()
    images = torch.randn(count, 3, 224, 224, generator=generator).to(device=device, dtype=dtype)
    keep = masks_for("shapley-kernel", resnet.num_patches, count, generator, device)
    with torch.inference_mode():
        plain = timed(lambda: resnet.forward_patches(images), args.repeats, device)
        masked = timed(lambda: resnet.forward_patches(images, keep), args.repeats, device)
    print()
    print("| model | plain forward (img/s) | masked branch (img*mask/s) | masked / plain time |")
    print("|---|---|---|---|")
    print(
        f"| {args.resnet} (stage 4 stride 1) | {count / plain:.1f} | {count / masked:.1f} | {masked / plain:.2f}x |"
    )


if __name__ == "__main__":
    main()
