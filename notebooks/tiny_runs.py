"""Trained checkpoints for the notebooks: the demo's runs when present (``make demo``, ``make demo-clip``),
otherwise tiny versions trained here with the same configs and a few epochs (``--run_id notebooks``:
``runs/<experiment>/<stage>/notebooks/``, reused by the next notebook). So every notebook runs on a
fresh clone, in about a minute on a 2-core CPU the first time."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# stage: (config folder, CLI module, option taking the previous checkpoint, previous stage, epochs)
STAGES = {
    "classifier": ("digits", "shapvision.cli", None, None, 6),
    "surrogate": ("digits", "shapvision.cli", "classifier_checkpoint", "classifier", 4),
    "explainer_fastshap": ("digits", "shapvision.cli", "surrogate_checkpoint", "surrogate", 4),
    "svo_vit": ("digits", "shapvision.cli", None, None, 6),
    "clip": ("digits_clip", "shapvision.clip_cli", None, None, 2),
    "svo_clip": ("digits_clip", "shapvision.clip_cli", "init_from", "clip", 1),
}


def checkpoint(stage: str, **overrides) -> Path:
    """The stage's checkpoint: the demo's, or a tiny one trained now (and its previous stages)."""
    folder, cli, previous_option, previous, epochs = STAGES[stage]
    demo = ROOT / "runs" / folder / stage / "best.ckpt"
    if demo.is_file() and not overrides:
        return demo
    run_id = "notebooks" + "".join(f"_{k}{v}" for k, v in sorted(overrides.items()))
    tiny = ROOT / "runs" / folder / stage / run_id / "best.ckpt"
    if tiny.is_file():
        return tiny
    args = [
        sys.executable, "-m", cli, "fit",
        "--config", f"experiments/{folder}/trainer.yaml",
        "--config", f"experiments/{folder}/{stage}.yaml",
        "--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false",
        "--run_id", run_id,
    ]  # fmt: skip
    if previous_option:
        args += [f"--model.init_args.{previous_option}", str(checkpoint(previous))]
    for option, value in overrides.items():
        args += [f"--model.init_args.{option}", str(value)]
    print(f"training a tiny {stage} ({epochs} epochs) ...", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return tiny
