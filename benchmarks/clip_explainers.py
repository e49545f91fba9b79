"""Seconds per image-caption pair of the CLIP explainers (SVO Tables 5-6) beside the other methods of
the CLIP table, and each as a multiple of one forward + backward of the image-caption score, measured
side by side in one run: plain CLIP on EVA02-B-16 at 224 (open_clip, random init).

Target (issue 21): the training-free explainers (MaskCLIP, CLIP Surgery, Grad-ECLIP) cost at most one
forward and one backward per pair (ratio <= 1); M2IB optimises per pair and is reported as it is.

    python benchmarks/clip_explainers.py                              # CPU, float32, 4 pairs
    python benchmarks/clip_explainers.py --device cuda --pairs 32
    python benchmarks/clip_explainers.py --tiny                       # the digits CLIP, seconds (make test)
"""

import argparse

import torch
from device import add_device_options, device_name, timed

from shapvision.attribution import create_method
from shapvision.attribution.caption_model import CaptionExplainedModel
from shapvision.attribution.clip_vision_blocks import VisionTowerBlocks
from shapvision.modules import CLIPFineTune

METHODS = ("maskclip", "clip_surgery", "grad_eclip", "m2ib", "gradcam", "game", "saliency")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="EVA02-B-16")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--tiny", action="store_true", help="the digits CLIP at 32 px (seconds; a smoke run)"
    )
    add_device_options(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.model, args.img_size, args.pairs = "shapvision-digits-clip", 32, 2
    device = torch.device(args.device)
    torch.manual_seed(0)
    module = CLIPFineTune(clip_model=args.model, img_size=args.img_size).to(device).eval()
    module.requires_grad_(False)
    model = CaptionExplainedModel(module, args.model)
    captions = [f"a photo of object number {i}" for i in range(args.pairs)]
    with torch.no_grad():
        model.set_captions(module.text_features(module.tokenize(captions).to(device)))
    images = torch.randn(args.pairs, 3, args.img_size, args.img_size, device=device)
    target = torch.arange(args.pairs, device=device)
    index = torch.arange(args.pairs)
    depth = VisionTowerBlocks(model, "benchmark").depth
    options = {"m2ib": {"layer": min(9, depth - 1)}, "gradcam": {}, "game": {}}
    families = {"gradcam", "game"}  # ViT methods: on EVA02's timm trunk only

    def forward_backward():
        pixels = images.detach().requires_grad_(True)
        score = model.logits(pixels).gather(1, target.view(-1, 1)).sum()
        torch.autograd.grad(score, pixels)

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    with autocast:
        base = timed(forward_backward, args.repeats, device)
        rows = [("one forward + backward of the score", base)]
        for name in METHODS:
            if name in families and model.family != "vit":
                continue
            method = create_method(name, model, **options.get(name, {}))
            explain = lambda m=method: m.explain(images, target, index)  # noqa: E731
            rows.append((name, timed(explain, args.repeats, device)))
    print(
        f"\n{args.model} at {args.img_size}, {args.pairs} pairs, {device_name(device)}, {args.dtype}\n"
    )
    print("| method | seconds / pair | x forward + backward |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds / args.pairs:.4f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
