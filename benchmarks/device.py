"""What the benchmark scripts share: the device options, its name for the table header, and a sync."""

import argparse
import platform
import statistics
import time

import torch


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: torch.device, warmup: bool = True) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call (kernels, allocators) unless ``warmup`` is off."""
    timings = []
    for _ in range(repeats + int(warmup)):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings[int(warmup) :])
