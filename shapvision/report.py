"""The digits report: one Markdown page from the test outputs of the classifier -> surrogate -> explainer runs.

python -m shapvision.report --runs runs/digits --out runs/demo [--explainers explainer_fastshap ...]
"""

import argparse
import csv
import json
import shutil
from pathlib import Path

from shapvision.metrics.shapley_accuracy import FIELDS


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `shapvision test` for that stage first (make vitshapley-digits does)"
        )
    return json.loads(path.read_text())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def shapley_table(rows: list[dict], label: str) -> list[str]:
    lines = [
        "| method | L2 target | Pearson target | Spearman target | L2 other | Pearson other | Spearman other | time / image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        method = row["method"]
        if method == "explainer":
            name = f"{label} explainer (one forward pass)"
        else:
            name = f"KernelSHAP, paired, {method.removeprefix('kernelshap_')} evals"
        cells = [f"{float(row[k]):.4f}" for k in FIELDS]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {float(row['seconds_per_image']) * 1000:.2f} ms |"
        )
    return lines


def build_report(runs: Path, out: Path, explainers: list[str], elapsed: str | None) -> str:
    classifier = read_json(runs / "classifier" / "test_metrics.json")
    surrogate = read_json(runs / "surrogate" / "test_metrics.json")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# shapvision digits report", ""]
    if elapsed:
        lines += [f"Wall time of the run: {elapsed}.", ""]
    lines += [
        "Classifier -> surrogate -> explainer on scikit-learn's digits (32 x 32, 4 x 4 = 16 patches), CPU.",
        "Shapley accuracy is measured against the surrogate's exact Shapley values (all 2^16 coalitions)",
        "for the first test images, target class = the surrogate's prediction; probabilities (softmax link).",
        "",
        "## Classifier and surrogate",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| classifier test accuracy | {classifier['test/acc']:.4f} |",
        f"| surrogate test accuracy, full image | {surrogate['test/acc_full_image']:.4f} |",
        f"| surrogate KL to classifier, random masks | {surrogate['test/kl']:.4f} |",
    ]
    for key in sorted(k for k in surrogate if k.startswith("test/kl_kept_")):
        fraction = key.removeprefix("test/kl_kept_")
        lines.append(
            f"| surrogate KL / accuracy, fraction kept {fraction} | {surrogate[key]:.4f} / {surrogate['test/acc_kept_' + fraction]:.4f} |"
        )
    for name in explainers:
        run = runs / name
        rows = read_csv(run / "shapley_metrics.csv")
        metrics = read_json(run / "test_metrics.json")
        label = name.removeprefix("explainer_")
        lines += ["", f"## Explainer: {label}", "", *shapley_table(rows, label), ""]
        lines += [
            "| insertion / deletion AUC | scored with the surrogate (patches dropped) | scored with the classifier (blur / zero baseline) |",
            "|---|---|---|",
            f"| insertion (higher is better) | {metrics['test/insertion_auc_surrogate']:.4f} | {metrics['test/insertion_auc_classifier']:.4f} |",
            f"| deletion (lower is better) | {metrics['test/deletion_auc_surrogate']:.4f} | {metrics['test/deletion_auc_classifier']:.4f} |",
            "",
        ]
        for figure in ("heatmaps", "curves"):
            source = run / f"{figure}.png"
            if source.is_file():
                target = out / f"{name}_{figure}.png"
                shutil.copyfile(source, target)
                lines.append(f"![{label} {figure}]({target.name})")
        lines.append("")
    report = "\n".join(lines)
    (out / "report.md").write_text(report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/digits"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--explainers", nargs="+", default=["explainer_fastshap"])
    parser.add_argument("--elapsed", default=None, help="wall time of the run, shown in the report")
    args = parser.parse_args(argv)
    print(build_report(args.runs, args.out, args.explainers, args.elapsed))
    print(f"\nwritten: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
