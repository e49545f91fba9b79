"""The GPU benchmark: every module's training step at its real size, and the tables' evaluation cost.

Per model (the ViT-B/16 classifier, its surrogate, the explainer with each objective, SVO-ViT-B/16,
SVO-ResNet-50, SVO-CLIP and the plain CLIP fine-tune on EVA02-B-16, all at 224 px, random weights)
and per ``torch.compile`` setting (off, then on): one training step = forward, backward and AdamW
update on a real batch under autocast (bf16 by default), timed over ``--repeats`` steps after the
warm-up steps (``--warmup``, which also compile). Columns:

- images / s and ms / step (the mean of the timed steps);
- model FLOPs per step: ``torch.utils.flop_counter.FlopCounterMode`` over the same steps (same seeds,
  so the same masks) with attention on PyTorch's math kernel so its matrix products are counted;
  forward and backward, 2 FLOPs per multiply-add; the optimizer's elementwise update is not counted;
- MFU = model FLOPs per second / the device's peak dense bf16 FLOPs, from the table ``PEAK_TFLOPS``
  (matched on the device's name) or ``--peak-tflops``; "-" where neither knows the device (a CPU);
- peak memory: ``torch.cuda.max_memory_allocated`` over the timed steps ("-" on the CPU).

Then evaluation throughput: images per second of each table method on SVO-ViT (its own values,
leave-one-out, KernelSHAP at 256 evaluations, integrated gradients, RISE, with the registry's
defaults otherwise) and of patch insertion / deletion on one method's values, under the same autocast.

    python benchmarks/gpu.py                        # CUDA, bf16, every model (make bench-gpu)
    python benchmarks/gpu.py --models svo_vit classifier --batch 128 --peak-tflops 989
    python benchmarks/gpu.py --tiny                 # tiny models at 32 px on the CPU (make test)

``--tiny`` compiles the classifier only, with the ``eager`` backend (TorchDynamo's capture without
Inductor's code generation, which takes minutes on a 2-core CPU), so the compile path cannot rot either.
"""

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from device import device_name, synchronize

from shapvision.attribution import ExplainedModel
from shapvision.attribution.registry import create_method
from shapvision.metrics.explanation_batch import ExplanationBatch
from shapvision.metrics.registry import create_metric
from shapvision.models.cost import count_flops
from shapvision.modules import (
    SVOCLIP,
    Classifier,
    CLIPFineTune,
    Explainer,
    Surrogate,
    SVOClassifier,
)
from shapvision.modules.checkpoints import save_untrained_checkpoint

# Peak dense (no sparsity) bf16 tensor-core FLOP/s, in TFLOP/s, from the vendors' data sheets; the
# first name contained in the device's name wins, so the longer names come first.
PEAK_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}
MODELS = [
    "classifier",
    "surrogate",
    "explainer_fastshap",
    "explainer_simshap",
    "explainer_salvage",
    "svo_vit",
    "svo_resnet",
    "svo_clip",
    "clip",
]
METHODS = {
    "svo": {},
    "leave_one_out": {},
    "kernelshap": {"budget": 256},
    "integrated_gradients": {},
    "rise": {},
}
SIZES = {
    "real": {
        "vit": ("vit_base_patch16_224", {}),
        "resnet": ("resnet50", {}),
        "clip": "EVA02-B-16",
        "img_size": 224,
        "num_classes": 1000,
    },
    "tiny": {
        "vit": (
            "vit_tiny_patch16_224",
            {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
        ),
        "resnet": ("resnet18", {}),
        "clip": "shapvision-digits-clip",
        "img_size": 32,
        "num_classes": 4,
    },
}


def peak_tflops_of(name: str) -> float | None:
    """The data-sheet peak of a device by its name (``torch.cuda.get_device_name``), None if unknown."""
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    tflops = peak_tflops_of(torch.cuda.get_device_name(device))
    return tflops * 1e12 if tflops else None


class Builder:
    """Builds each model at the chosen size; the surrogate and explainers read the checkpoints of the
    stage before, saved (random weights) in a temporary folder."""

    def __init__(self, size: dict, folder: Path):
        self.size, self.folder = size, folder
        self.common = {"num_classes": size["num_classes"], "img_size": size["img_size"]}
        self.checkpoints: dict[str, str] = {}

    def vit(self) -> dict:
        name, kwargs = self.size["vit"]
        return {"backbone": name, "backbone_kwargs": kwargs, **self.common}

    def checkpoint(self, stage: str) -> str:
        if stage not in self.checkpoints:
            module = (
                Classifier(**self.vit())
                if stage == "classifier"
                else Surrogate(classifier_checkpoint=self.checkpoint("classifier"), **self.common)
            )
            self.checkpoints[stage] = save_untrained_checkpoint(
                module, self.folder / f"{stage}.ckpt"
            )
        return self.checkpoints[stage]

    def __call__(self, name: str):
        clip = {"clip_model": self.size["clip"], "img_size": self.size["img_size"]}
        if name == "classifier":
            return Classifier(**self.vit())
        if name == "surrogate":
            return Surrogate(classifier_checkpoint=self.checkpoint("classifier"), **self.common)
        if name.startswith("explainer_"):
            return Explainer(
                surrogate_checkpoint=self.checkpoint("surrogate"),
                objective=name.removeprefix("explainer_"),
                **self.common,
            )
        if name == "svo_vit":
            return SVOClassifier(**self.vit())
        if name == "svo_resnet":
            return SVOClassifier(backbone=self.size["resnet"][0], **self.common)
        if name == "svo_clip":
            return SVOCLIP(**clip)
        if name == "clip":
            return CLIPFineTune(**clip)
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def make_batch(module, batch: int, size: dict, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size["img_size"], size["img_size"], generator=generator)
    if isinstance(module, (SVOCLIP, CLIPFineTune)):
        captions = [f"a photo of object number {i} on the left" for i in range(batch)]
        return {"image": images.to(device), "text": module.tokenize(captions).to(device)}
    labels = torch.randint(size["num_classes"], (batch,), generator=generator)
    return {
        "image": images.to(device),
        "label": labels.to(device),
        "index": torch.arange(batch, device=device),
    }


def training_step(module, step_fn, optimizer, batch, autocast, seed: int) -> None:
    torch.manual_seed(seed)  # the masks of step `seed`, the same with compile on and off
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        loss = step_fn(batch, 0)
    loss.backward()
    optimizer.step()


def step_flops(module, batch, autocast, seeds) -> float:
    """Mean model FLOPs of a training step's forward and backward over the steps ``seeds``."""

    def step():
        with autocast():
            loss = module.training_step(batch, 0)
        loss.backward()

    counts = []
    for seed in seeds:
        torch.manual_seed(seed)
        counts.append(count_flops(step))
        module.zero_grad(set_to_none=True)
    return statistics.mean(counts)


def benchmark_training(name, module, args, device, autocast, peak):
    module.to(device).train()
    module.log = lambda *a, **k: None  # no Trainer to log to
    batch = make_batch(module, args.batch, args.size, device)
    seeds = range(1, args.repeats + 1)
    flops = step_flops(module, batch, autocast, seeds)
    for compiled in (False, True) if name in args.compile_models else (False,):
        step_fn = (
            torch.compile(module.training_step, backend=args.compile_backend)
            if compiled
            else module.training_step
        )
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-6)
        first = None
        for seed in range(-args.warmup, 0):
            synchronize(device)
            start = time.perf_counter()
            training_step(module, step_fn, optimizer, batch, autocast, seed)
            synchronize(device)
            first = first if first is not None else time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        timings = []
        for seed in seeds:
            synchronize(device)
            start = time.perf_counter()
            training_step(module, step_fn, optimizer, batch, autocast, seed)
            synchronize(device)
            timings.append(time.perf_counter() - start)
        seconds = statistics.mean(timings)
        achieved = flops / seconds
        mfu = f"{100 * achieved / peak:.1f} %" if peak else "-"
        memory = (
            f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}"
            if device.type == "cuda"
            else "-"
        )
        print(
            f"| {name} | {'on' if compiled else 'off'} | {args.batch} | {first:.2f} | "
            f"{1000 * seconds:.1f} | {args.batch / seconds:.1f} | {flops / 1e9:.4g} | "
            f"{achieved / 1e12:.4g} | {mfu} | {memory} |"
        )
    module.to("cpu")


def benchmark_evaluation(module, args, device, autocast):
    module.to(device).eval()
    model = ExplainedModel(module, "svo_vit")
    batch = make_batch(module, args.eval_batch, args.size, device)
    images, target = batch["image"], batch["label"]
    attribution = None
    for method_name, options in METHODS.items():
        method = create_method(method_name, model, **options)
        synchronize(device)
        start = time.perf_counter()
        with autocast():
            attribution = method.explain(images, target, batch["index"])
        synchronize(device)
        seconds = time.perf_counter() - start
        print(f"| method: {method_name} | {args.eval_batch} | {args.eval_batch / seconds:.2f} |")
    metric = create_metric("insertion_deletion_patches", model.num_patches).to(device)
    explanation = ExplanationBatch(images, target, batch["index"], model, labels=target)
    synchronize(device)
    start = time.perf_counter()
    with autocast():
        metric.update(explanation, attribution)
    synchronize(device)
    seconds = time.perf_counter() - start
    print(
        f"| metric: insertion_deletion_patches | {args.eval_batch} | {args.eval_batch / seconds:.2f} |"
    )
    module.to("cpu")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (they compile)")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument(
        "--compile-models", nargs="*", default=MODELS, help="the models also timed compiled"
    )
    parser.add_argument(
        "--peak-tflops", type=float, help="the device's peak, when not in the table"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models at 32 px on the CPU")
    args = parser.parse_args(argv)
    args.size = SIZES["tiny" if args.tiny else "real"]
    if args.tiny:
        args.device, args.batch, args.eval_batch, args.repeats, args.warmup = "cpu", 4, 2, 1, 1
        args.compile_backend, args.compile_models = "eager", ["classifier"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(
            "--device cuda: no CUDA device here; make bench-gpu needs a GPU "
            "(python benchmarks/gpu.py --tiny runs tiny models on the CPU)"
        )
    dtype = getattr(torch, args.dtype)

    def autocast():
        if dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    peak = peak_flops(device, args.peak_tflops)
    print(
        f"# gpu: {device_name(device)} ({device.type}), {args.dtype} autocast, torch {torch.__version__}, "
        f"peak {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown (MFU -)'}, "
        f"{'tiny models at 32 px' if args.tiny else 'real sizes at 224 px'}, mean of {args.repeats} "
        f"steps after {args.warmup} warm-up, compile backend {args.compile_backend}"
    )
    print(
        "| model | compile | batch | first step s | ms / step | images / s | GFLOP / step | "
        "TFLOP/s | MFU | peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        build = Builder(args.size, Path(folder))
        for name in args.models:
            torch.manual_seed(0)
            benchmark_training(name, build(name), args, device, autocast, peak)
        print()
        print(f"# evaluation on SVO-ViT ({args.size['vit'][0]}), {args.dtype} autocast")
        print("| evaluation | batch | images / s |")
        print("|---|---|---|")
        torch.manual_seed(0)
        benchmark_evaluation(build("svo_vit"), args, device, autocast)


if __name__ == "__main__":
    main()
