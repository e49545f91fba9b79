"""benchmarks/clip_explainers.py in its tiny mode: every CLIP explainer's row, beside one forward +
backward of the score, so the benchmark cannot rot."""

from .helpers import REPOSITORY, run_module


def test_the_clip_explainer_benchmark_prints_every_row(tmp_path):
    result = run_module(
        REPOSITORY / "benchmarks" / "clip_explainers.py", "--tiny", cwd=tmp_path, timeout=300
    )
    lines = result.stdout.splitlines()
    assert any(line.startswith("shapvision-digits-clip at 32, 2 pairs") for line in lines)
    for row in (
        "one forward + backward of the score",
        "maskclip",
        "clip_surgery",
        "grad_eclip",
        "m2ib",
        "saliency",
    ):
        assert any(line.startswith(f"| {row} |") and line.endswith("x |") for line in lines), row
