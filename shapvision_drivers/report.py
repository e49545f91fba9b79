"""The digits demo report: the training stages' test metrics and the demo's evaluation table.

python -m shapvision_drivers.report --runs runs/digits --table runs/demo --out runs/demo [--elapsed "..."]

``--runs`` holds the classifier / surrogate / svo_vit runs (their ``test_metrics.json``); ``--table``
the output of ``python -m shapvision_drivers.tables demo`` (``table.md`` and the per-run folders).
"""

import argparse
import json
from pathlib import Path

from shapvision.table_files import markdown_table


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run that stage's `shapvision test` first (make demo does)"
        )
    return json.loads(path.read_text())


def stage_table(runs: Path) -> list[str]:
    classifier = read_json(runs / "classifier" / "test_metrics.json")
    surrogate = read_json(runs / "surrogate" / "test_metrics.json")
    svo = read_json(runs / "svo_vit" / "test_metrics.json")
    rows = [
        {"quantity": "classifier test accuracy", "value": classifier["test/acc"]},
        {
            "quantity": "SVO-ViT test accuracy (same backbone and schedule, CE + lambda * Shapley loss)",
            "value": svo["test/acc"],
        },
        {
            "quantity": "surrogate test accuracy, full image",
            "value": surrogate["test/acc_full_image"],
        },
        {"quantity": "surrogate KL to classifier, random masks", "value": surrogate["test/kl"]},
    ]
    for key in sorted(k for k in surrogate if k.startswith("test/kl_kept_")):
        fraction = key.removeprefix("test/kl_kept_")
        rows.append(
            {
                "quantity": f"surrogate KL / accuracy, fraction kept {fraction}",
                "value": f"{surrogate[key]:.4f} / {surrogate['test/acc_kept_' + fraction]:.4f}",
            }
        )
    return markdown_table(rows).rstrip("\n").split("\n")


def build_report(runs: Path, table: Path, out: Path, elapsed: str | None) -> str:
    evaluation = (table / "table.md").read_text() if (table / "table.md").is_file() else None
    if evaluation is None:
        raise FileNotFoundError(
            f"{table / 'table.md'} not found: run `python -m shapvision_drivers.tables demo --out {table}`"
        )
    body = evaluation.split("\n", 2)[2]  # the table without its title line
    lines = ["# shapvision digits report", ""]
    if elapsed:
        lines += [f"Wall time of the run: {elapsed}.", ""]
    lines += [
        "Classifier -> surrogate -> FastSHAP explainer, and the self-explaining SVO-ViT, on scikit-learn's",
        "digits (32 x 32, 4 x 4 = 16 patches), CPU.",
        "",
        "## Training stages",
        "",
        *stage_table(runs),
        "",
        "## Explanations",
        "",
        "Each model is explained and scored on its own game: the explainer and KernelSHAP explain the",
        "surrogate's class probabilities, SVO-ViT's votes and KernelSHAP its own logits, so L2 compares",
        "within a model only; Pearson / Spearman are against the exact Shapley values of that game (all",
        "2^16 coalitions, first 8 test images, the predicted class). Insertion / deletion: the first 128 test",
        "images, patches dropped (ViT-Shapley) and on pixels (RISE's blur / zero), scored by the model.",
        "",
        body,
    ]
    out.mkdir(parents=True, exist_ok=True)
    report = "\n".join(lines)
    (out / "report.md").write_text(report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/digits"))
    parser.add_argument("--table", type=Path, default=Path("runs/demo"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--elapsed", default=None, help="wall time of the run, shown in the report")
    args = parser.parse_args(argv)
    print(build_report(args.runs, args.table, args.out, args.elapsed))
    print(f"\nwritten: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
