"""SVO-CLIP training step vs a plain CLIP fine-tuning step, EVA02-B-16 at 224 (open_clip, random init).

One step = forward, backward and AdamW update on the same image-caption batch: "plain" is
:class:`CLIPFineTune` (CLS embedding, contrastive loss), "SVO-CLIP" is :class:`SVOCLIP` with 1
Shapley-kernel mask per image (balanced sizes: the masked branch runs half the patch tokens) plus its
contrastive loss on the summed patch cosines. Both run interleaved per repeat in one process; the
mean of ``--repeats`` is reported. Target (issue 11): SVO-CLIP <= 1.5x the plain step.

    python benchmarks/svo_clip_step.py                                   # CPU, float32, batch 8
    python benchmarks/svo_clip_step.py --device cuda --dtype bfloat16 --batch 64
"""

import argparse
import statistics
import time
from contextlib import nullcontext

import open_clip
import torch
from device import add_device_options, device_name, synchronize

from shapvision.modules import SVOCLIP, CLIPFineTune


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="EVA02-B-16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the digits CLIP at 32 px: a smoke run in seconds (make test)",
    )
    add_device_options(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.model, args.img_size, args.batch, args.repeats = "shapvision-digits-clip", 32, 2, 1
    device = torch.device(args.device)
    torch.manual_seed(0)
    variants = {
        "plain CLIP fine-tuning": CLIPFineTune(clip_model=args.model, img_size=args.img_size),
        "SVO-CLIP, 1 mask/image": SVOCLIP(
            clip_model=args.model, img_size=args.img_size, num_masks=1
        ),
    }
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    tokens = open_clip.get_tokenizer(args.model)(
        [f"a photo of object number {i}" for i in range(args.batch)]
    ).to(device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.dtype == "bfloat16"
        else nullcontext()
    )
    steps = {}
    for name, module in variants.items():
        module.to(device).train()
        module.log = lambda *a, **k: None  # no trainer attached
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-6)

        def step(module=module, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = module.training_loss(images, tokens)
            loss.backward()
            optimizer.step()

        steps[name] = step
    timings = {name: [] for name in steps}
    for repeat in range(args.repeats + 1):
        for name, step in steps.items():
            torch.manual_seed(repeat)
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            if repeat:  # the first round warms up
                timings[name].append(time.perf_counter() - start)
    base = statistics.mean(timings["plain CLIP fine-tuning"])
    print(
        f"# training step, {args.model} at 224, batch {args.batch}, {args.dtype}, {device_name(device)}, "
        f"mean of {args.repeats}"
    )
    print("| variant | seconds / step | ratio |")
    print("|---|---|---|")
    for name, values in timings.items():
        mean = statistics.mean(values)
        print(f"| {name} | {mean:.3f} | {mean / base:.2f}x |")


if __name__ == "__main__":
    main()
