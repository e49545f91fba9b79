"""Every script in benchmarks/ in its tiny mode, so none can rot: each runs end to end on tiny models
and prints every row of its table (the figures themselves are measured by `make bench`)."""

import importlib
import sys

import pytest

from .helpers import REPOSITORY, run_module

# script -> rows its table must print (each a line starting with "| <row> |")
ROWS = {
    "shapley_core.py": [
        "KernelSHAP (paired)",
        "KernelSHAP unbiased",
        "permutation (antithetic)",
        "Sim-Semivalue (paired)",
    ],
    "masked_forward.py": ["vit_tiny_patch16_224", "resnet18 (stage 4 stride 1)"],
    "svo_step.py": ["vit_tiny_patch16_224", "resnet18"],
    "insertion_deletion.py": [
        "per-step full-image forwards (attention masking, 2 x 5)",
        "packed token dropping, one pass",
    ],
    "quantus_curves.py": [
        "Quantus region perturbation (one forward per region)",
        "ours, pixel fill, chunked forwards (Quantus's curve)",
        "ours, dropped tokens packed (our tables' protocol)",
    ],
    "shard_decoding.py": ["1"],
    "svo_clip_step.py": ["plain CLIP fine-tuning", "SVO-CLIP, 1 mask/image"],
    "shapiq_peer.py": [
        "ours: KernelSHAP (paired)",
        "ours: permutation (antithetic)",
        "shapiq: KernelSHAP (pairing)",
        "shapiq: permutation sampling",
        "shapiq: SVARM",
        "shapiq: k-additive SHAP (regression)",
    ],
    "gpu.py": [
        "classifier",
        "surrogate",
        "explainer_fastshap",
        "explainer_simshap",
        "explainer_salvage",
        "svo_vit",
        "svo_resnet",
        "svo_clip",
        "clip",
        "method: svo",
        "method: leave_one_out",
        "method: kernelshap",
        "method: integrated_gradients",
        "method: rise",
        "metric: insertion_deletion_patches",
    ],
    "clip_explainers.py": [
        "one forward + backward of the score",
        "maskclip",
        "clip_surgery",
        "grad_eclip",
        "m2ib",
        "saliency",
    ],
}


def test_every_benchmark_script_has_a_tiny_mode_here():
    scripts = {p.name for p in (REPOSITORY / "benchmarks").glob("*.py")} - {"device.py"}
    assert scripts == set(ROWS)


# gpu.py on the CPU knows no peak: a nominal one, so the MFU column is computed and checked
EXTRA_ARGS = {"gpu.py": ["--peak-tflops", "0.05"]}


@pytest.mark.parametrize("script", sorted(ROWS))
def test_the_tiny_mode_prints_every_row(script, tmp_path):
    result = run_module(
        REPOSITORY / "benchmarks" / script,
        "--tiny",
        *EXTRA_ARGS.get(script, []),
        cwd=tmp_path,
        timeout=300,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    data = [line for line in rows if not line.startswith("|---")]
    assert len(data) >= 2, result.stdout  # a header and at least one measured row
    for row in ROWS[script]:
        assert any(line.startswith(f"| {row} |") for line in data), (row, result.stdout)
    if script == "gpu.py":
        training = [line.split("|")[1:-1] for line in data if line.count("|") == 11]
        for cells in training[1:]:  # MFU = achieved TFLOP/s / peak
            tflops, mfu = float(cells[7]), float(cells[8].strip().removesuffix("%"))
            assert mfu == pytest.approx(100 * tflops / 0.05, abs=0.1 + 0.01 * mfu), cells


def test_gpu_benchmark_knows_the_peaks_of_the_devices_it_names():
    sys.path.insert(0, str(REPOSITORY / "benchmarks"))
    try:
        gpu = importlib.import_module("gpu")
    finally:
        sys.path.remove(str(REPOSITORY / "benchmarks"))
    assert gpu.peak_tflops_of("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu.peak_tflops_of("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops_of("NVIDIA H200") == 989.0
    assert gpu.peak_tflops_of("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu.peak_tflops_of("NVIDIA GeForce GTX 1080") is None
