"""SVO training step vs plain fine-tuning of the same backbone and batch.

One training step = forward, backward and AdamW update, on the same images and labels. "plain" is the
same :class:`SVOClassifier` with lambda = 0 (CE only: no masked branch runs), so the ratio is exactly
the cost of the Shapley loss. The SVO variants differ in masks per image and gradient side. All
variants run side by side in one process, interleaved per repeat, and every variant's repeat r draws
its masks from the same seed, so the 1-mask variants see the same masks; the mean of ``--repeats``
is reported (a step's work depends on the masks drawn, so the mean estimates the expected cost).

The masked branch's cost scales with the kept fraction of the masks, which varies a lot at small
batches (Shapley-kernel sizes pile up near 1 and N - 1): the table gives the kept fraction drawn,
and 1 + that fraction is the ratio a masked branch with no overhead would reach (full backward).
Target (issue 5): SVO-ViT <= 1.5x the plain step with the default 1 mask per image.

    python benchmarks/svo_step.py                                        # CPU, float32
    python benchmarks/svo_step.py --device cuda --dtype bfloat16 --batch 64
    python benchmarks/svo_step.py --tiny                                 # tiny models, seconds (make test)
"""

import argparse
import os
import statistics
import time
from contextlib import nullcontext

import torch
from device import add_device_options, device_name, synchronize

from shapvision.modules import SVOClassifier

VARIANTS = {
    "plain fine-tuning (lambda = 0)": {"shapley_weight": 0.0},
    "SVO, 1 mask/image": {"num_masks": 1, "paired": False},
    "SVO, 1 mask/image, sizes not balanced": {
        "num_masks": 1,
        "paired": False,
        "balance_mask_sizes": False,
    },
    "SVO, 2 paired masks/image": {"num_masks": 2, "paired": True},
    "SVO, 1 mask/image, stop_gradient=masked": {
        "num_masks": 1,
        "paired": False,
        "stop_gradient": "masked",
    },
}


def record_kept_fraction(sampler, fractions):
    """Append the kept fraction of every mask batch ``sampler`` draws to ``fractions``."""
    sample = sampler.sample

    def recording_sample(*args, **kwargs):
        masks = sample(*args, **kwargs)
        fractions.append(masks.float().mean().item())
        return masks

    sampler.sample = recording_sample


def training_step(module, optimizer, batch, device, dtype):
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    with autocast:
        loss = module.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def benchmark_backbone(backbone, args, device, dtype):
    batch = {
        "image": torch.randn(args.batch, 3, args.img_size, args.img_size, device=device),
        "label": torch.randint(args.num_classes, (args.batch,), device=device),
        "index": torch.arange(args.batch, device=device),
    }
    modules, optimizers, kept = {}, {}, {name: [] for name in VARIANTS}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        module = SVOClassifier(
            backbone=backbone, num_classes=args.num_classes, img_size=args.img_size, **options
        ).to(device)
        module.log = lambda *a, **k: None  # no Trainer to log to
        module.train()
        record_kept_fraction(module.objective.sampler, kept[name])
        modules[name] = module
        optimizers[name] = torch.optim.AdamW(module.parameters(), lr=1e-6)
    timings = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats + 1):  # the first round warms up kernels and allocators
        for name in VARIANTS:
            torch.manual_seed(repeat)
            synchronize(device)
            start = time.perf_counter()
            training_step(modules[name], optimizers[name], batch, device, dtype)
            synchronize(device)
            if repeat:
                timings[name].append(time.perf_counter() - start)
    plain = statistics.mean(timings[next(iter(VARIANTS))])
    for name in VARIANTS:
        seconds = statistics.mean(timings[name])
        fraction = f"{statistics.mean(kept[name][1:]):.3f}" if kept[name] else "-"
        print(
            f"| {backbone} | {name} | {fraction} | {seconds * 1000:.0f} | {args.batch / seconds:.1f} | {seconds / plain:.2f}x |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["vit_base_patch16_224", "resnet50"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tiny", action="store_true", help="ViT-Tiny and ResNet-18 at 32 px: a smoke run"
    )
    add_device_options(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.backbones, args.img_size, args.batch = ["vit_tiny_patch16_224", "resnet18"], 32, 2
        args.num_classes, args.repeats = 4, 1
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    name = device_name(device)
    allocator = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_"))
    print(
        f"# svo_step: {name}, {torch.get_num_threads()} threads, {args.dtype}, batch {args.batch} at "
        f"{args.img_size} px, {args.num_classes} classes, mean of {args.repeats}, torch {torch.__version__}"
        f"{', ' + allocator if allocator else ''}"
    )
    print("| backbone | step | kept fraction | ms / step | images / s | time vs plain |")
    print("|---|---|---|---|---|---|")
    for backbone in args.backbones:
        benchmark_backbone(backbone, args, device, dtype)


if __name__ == "__main__":
    main()
