"""The digits report: one Markdown page from the test outputs of the classifier -> surrogate -> explainer
runs and of the self-explaining SVO runs.

python -m shapvision.report --runs runs/digits --out runs/demo [--explainers explainer_fastshap ...] [--svo svo_vit]
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
    """One row per method of a ``shapley_metrics.csv``: the module's own values first, then KernelSHAP."""
    lines = [
        "| method | L2 target | Pearson target | Spearman target | L2 other | Pearson other | Spearman other | time / image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        method = row["method"]
        if method.startswith("kernelshap_"):
            name = f"KernelSHAP, paired, {method.removeprefix('kernelshap_')} evals"
        else:
            name = f"{label} (one forward pass)"
        cells = [f"{float(row[k]):.4f}" for k in FIELDS]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {float(row['seconds_per_image']) * 1000:.2f} ms |"
        )
    return lines


def copy_figures(run: Path, out: Path, name: str, label: str) -> list[str]:
    lines = []
    for figure in ("heatmaps", "curves"):
        source = run / f"{figure}.png"
        if source.is_file():
            target = out / f"{name}_{figure}.png"
            shutil.copyfile(source, target)
            lines.append(f"![{label} {figure}]({target.name})")
    return [*lines, ""]


def svo_section(run: Path, out: Path, name: str, classifier_accuracy: float) -> list[str]:
    """A self-explaining SVO run: its accuracy beside the plain classifier, and its own Shapley accuracy."""
    metrics = read_json(run / "test_metrics.json")
    rows = read_csv(run / "shapley_metrics.csv")
    label = name.replace("svo_", "SVO-").replace("vit", "ViT").replace("resnet", "ResNet")
    return [
        "",
        f"## Self-explaining: {label}",
        "",
        "The classifier's backbone and schedule with a patch-voting head, trained with CE + lambda * Shapley loss.",
        "Its reference is the exact Shapley values of its *own* value function v(S) (logit units, so L2 is",
        "not comparable with the explainer's probability units; the correlations are).",
        "",
        "| quantity | plain classifier | " + label + " |",
        "|---|---|---|",
        f"| test accuracy | {classifier_accuracy:.4f} | {metrics['test/acc']:.4f} |",
        "",
        *shapley_table(rows, f"{label} explain()"),
        "",
        "| insertion / deletion AUC | scored by the model, patches dropped | scored by the model, blur / zero pixels |",
        "|---|---|---|",
        f"| insertion (higher is better) | {metrics['test/insertion_auc_masked']:.4f} | {metrics['test/insertion_auc_pixels']:.4f} |",
        f"| deletion (lower is better) | {metrics['test/deletion_auc_masked']:.4f} | {metrics['test/deletion_auc_pixels']:.4f} |",
        "",
        *copy_figures(run, out, name, label),
    ]


def side_by_side(
    runs: Path, explainers: list[str], svo_runs: tuple[str, ...], classifier_accuracy: float
) -> list[str]:
    """ViT-Shapley explainers and SVO models in one table: each against the exact values of the game it explains."""
    lines = [
        "",
        "## Side by side",
        "",
        "Each method is scored against the exact Shapley values of the game it explains: the surrogate for",
        "the ViT-Shapley explainers, the model's own value function for SVO. Insertion / deletion with patches dropped.",
        "",
        "| method | test accuracy | Pearson target | Spearman target | insertion | deletion |",
        "|---|---|---|---|---|---|",
    ]
    for name in [*explainers, *svo_runs]:
        metrics = read_json(runs / name / "test_metrics.json")
        svo = name in svo_runs
        key, scorer = ("svo", "masked") if svo else ("explainer", "surrogate")
        accuracy = metrics["test/acc"] if svo else classifier_accuracy
        lines.append(
            f"| {name} | {accuracy:.4f} | {metrics[f'test/{key}/pearson_target']:.4f} | "
            f"{metrics[f'test/{key}/spearman_target']:.4f} | {metrics[f'test/insertion_auc_{scorer}']:.4f} | "
            f"{metrics[f'test/deletion_auc_{scorer}']:.4f} |"
        )
    return lines


def build_report(
    runs: Path,
    out: Path,
    explainers: list[str],
    elapsed: str | None,
    svo_runs: tuple[str, ...] = (),
) -> str:
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
    if svo_runs:
        lines += side_by_side(runs, explainers, svo_runs, classifier["test/acc"])
    for name in explainers:
        run = runs / name
        rows = read_csv(run / "shapley_metrics.csv")
        metrics = read_json(run / "test_metrics.json")
        label = name.removeprefix("explainer_")
        lines += ["", f"## Explainer: {label}", "", *shapley_table(rows, f"{label} explainer"), ""]
        lines += [
            "| insertion / deletion AUC | scored with the surrogate (patches dropped) | scored with the classifier (blur / zero baseline) |",
            "|---|---|---|",
            f"| insertion (higher is better) | {metrics['test/insertion_auc_surrogate']:.4f} | {metrics['test/insertion_auc_classifier']:.4f} |",
            f"| deletion (lower is better) | {metrics['test/deletion_auc_surrogate']:.4f} | {metrics['test/deletion_auc_classifier']:.4f} |",
            "",
        ]
        lines += copy_figures(run, out, name, label)
    for name in svo_runs:
        lines += svo_section(runs / name, out, name, classifier["test/acc"])
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
    parser.add_argument("--svo", nargs="*", default=[], help="SVO run folders under --runs")
    parser.add_argument("--elapsed", default=None, help="wall time of the run, shown in the report")
    args = parser.parse_args(argv)
    print(build_report(args.runs, args.out, args.explainers, args.elapsed, args.svo))
    print(f"\nwritten: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
