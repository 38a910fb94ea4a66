"""The demo's report: `report.html` (self-contained, images embedded), `report.md`, and the pictures."""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from act3d.data.fewshot import fewshot_key
from act3d.demo.arms import ARMS, FEWSHOT_SETTINGS, student_folder, teacher_folder


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def plot_loss_curves(out: Path, path: Path) -> Path | None:
    """One panel per stage folder with a metrics.csv: its training loss against the step."""
    runs = sorted(p for p in out.glob("stage*/metrics.csv"))
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), squeeze=False)
    for ax, csv_path in zip(axes[0], runs):
        with csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("loss")]
        ax.plot([float(r["step"]) for r in rows], [float(r["loss"]) for r in rows], color="tab:blue")
        ax.set_title(csv_path.parent.name, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("training loss", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_tsne(embedding: dict, path: Path, seed: int = 0) -> Path:
    from sklearn.manifold import TSNE

    x = np.asarray(embedding["features"], dtype=np.float32)
    y = np.asarray(embedding["labels"])
    xy = TSNE(2, init="pca", random_state=seed, perplexity=min(30, max(5, len(x) // 10))).fit_transform(x)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cmap = plt.get_cmap("tab20")
    for c, name in enumerate(embedding["class_names"]):
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(c % 20), label=name)
    ax.legend(fontsize=6, markerscale=1.5, ncol=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of ACT student features (clean test split)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: list[list[int]], class_names: list[str], path: Path, title: str) -> Path:
    cm = np.asarray(matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=6)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def results_rows(results: dict) -> list[dict[str, str]]:
    """The results table, one row per arm, as the strings shown (shared by HTML, Markdown and tests)."""
    rows = []
    for arm in results["arms"]:
        row = {
            "arm": arm["label"],
            "finetune_val": f"{_pct(arm['finetune_scan_val_acc_mean'])}"
            if "finetune_scan_val_acc_mean" in arm
            else "-",
            "finetune": f"{_pct(arm['finetune_scan_acc_mean'])} ± {_pct(arm['finetune_scan_acc_std'])}",
            "svm_scan": _pct(arm["svm_scan_acc"]),
            "svm_clean": _pct(arm["svm_clean_acc"]),
        }
        for key, fs in arm["fewshot"].items():
            row[f"fewshot_{key}"] = f"{_pct(fs['mean'])} ± {_pct(fs['std'])}"
        rows.append(row)
    return rows


COLUMNS = [
    ("arm", "arm"),
    ("finetune_val", "fine-tune, validation OA % (selects)"),
    ("finetune", "fine-tune, scan test OA %"),
    ("svm_scan", "SVM, scan split, OA %"),
    ("svm_clean", "SVM, clean split, OA %"),
    *[
        (
            f"fewshot_{fewshot_key(w, s)}",
            f"few-shot {fewshot_key(w, s)}, scan %" if i == 0 else f"{fewshot_key(w, s)} %",
        )
        for i, (w, s) in enumerate(FEWSHOT_SETTINGS)
    ],
]


def transfer_table(results: dict) -> list[dict[str, str]]:
    """The rows of the transfer table (empty without `--transfer-data`): column title -> shown value."""
    transfer = results.get("transfer")
    if not transfer:
        return []
    rows = []
    for arm in transfer["arms"]:
        row = {
            "arm": arm["label"],
            "fine-tune, validation OA % (selects)": _pct(arm["finetune_val_acc_mean"]),
            "fine-tune, test OA %": f"{_pct(arm['finetune_acc_mean'])} ± {_pct(arm['finetune_acc_std'])}",
            "SVM, test OA %": _pct(arm["svm_acc"]),
        }
        for key, fs in arm["fewshot"].items():
            row[f"few-shot {key} %"] = f"{_pct(fs['mean'])} ± {_pct(fs['std'])}"
        rows.append(row)
    return rows


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def write_report(out: Path, results: dict) -> Path:
    """Write the pictures, `report.md` and the self-contained `report.html` into `out`."""
    pictures: dict[str, Path] = {}
    curves = plot_loss_curves(out, out / "loss_curves.png")
    if curves:
        pictures["Loss curves of every training stage"] = curves
    arms = {arm.name: arm for arm in ARMS}
    for folder, name in (
        (teacher_folder("pretrained"), "reconstructions.png"),
        (teacher_folder("random"), "reconstructions.png"),
        (student_folder(arms["act"]), "masked_inputs.png"),
        (student_folder(arms["point-mae"]), "masked_inputs.png"),
    ):
        if (out / folder / name).is_file():
            pictures[f"{folder}: {name.removesuffix('.png').replace('_', ' ')}"] = out / folder / name
    pictures["t-SNE of the ACT student's features"] = plot_tsne(results["embedding_act"], out / "tsne.png")
    pictures["Confusion matrix, ACT fine-tuned on the scan split (seed 0)"] = plot_confusion(
        results["confusion_act"], results["class_names"], out / "confusion.png", "ACT, scan test split"
    )
    rows = results_rows(results)
    timings = results["timings"]
    changes = results.get("overrides") or []
    reused = results.get("reused_stages") or []
    reuse_note = (
        f" This invocation reused {len(reused)} stage(s) finished earlier; their own times are in the "
        "timings."
        if reused
        else ""
    )
    preset = results.get("preset", "cpu")
    config_line = (
        f"Configuration: presets teacher.{preset}, pretrain.{preset} and finetune.{preset} (each stage's resolved "
        "config.yaml is in its folder)" + (f"; changed: {', '.join(changes)}" if changes else "") + "."
    )

    md = [
        "# act3d demo report",
        "",
        f"Wall time: {results['wall_seconds'] / 60:.1f} min "
        f"({'quick' if results['quick'] else 'full'} run, {results['seeds']} fine-tuning seed(s), "
        f"{results['fewshot_folds']} few-shot folds, {results['threads']} threads, torch {results['torch']})."
        + reuse_note,
        "",
        config_line,
        "",
        "## Results (mean ± std over seeds / folds)",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    md += ["| " + " | ".join(r.get(k, "") for k, _ in COLUMNS) + " |" for r in rows]
    transfer_rows = transfer_table(results)
    if transfer_rows:
        t = results["transfer"]
        md += ["", f"## Transfer to {t['data']} ({len(t['classes'])} classes)", ""]
        md += ["| " + " | ".join(transfer_rows[0]) + " |", "|" + "---|" * len(transfer_rows[0])]
        md += ["| " + " | ".join(r.values()) + " |" for r in transfer_rows]
    md += ["", "## Stage I teachers", ""]
    for kind, t in results["teachers"].items():
        md.append(
            f"- {kind}: fine Chamfer-L1 {t['chamfer_fine_first']:.4f} -> {t['chamfer_fine_last']:.4f} "
            f"over {t['steps']} steps"
        )
    md += ["", "## Timings (s)", ""] + [f"- {k}: {v}" for k, v in timings.items()]
    md += ["", "Pictures: " + ", ".join(p.name for p in pictures.values())]
    (out / "report.md").write_text("\n".join(md) + "\n")

    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f'<td data-key="{k}">{html.escape(r.get(k, ""))}</td>' for k, _ in COLUMNS) + "</tr>"
        for r in rows
    )
    transfer_html = ""
    if transfer_rows:
        t = results["transfer"]
        transfer_html = (
            f"<h2>Transfer to {html.escape(t['data'])} ({len(t['classes'])} classes)</h2>"
            '<table id="transfer"><thead><tr>'
            + "".join(f"<th>{html.escape(k)}</th>" for k in transfer_rows[0])
            + "</tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>"
                for r in transfer_rows
            )
            + "</tbody></table>"
        )
    teacher_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{t['steps']}</td><td>{t['chamfer_fine_first']:.4f}</td>"
        f"<td>{t['chamfer_fine_last']:.4f}</td></tr>"
        for k, t in results["teachers"].items()
    )
    timing_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f}</td></tr>" for k, v in timings.items())
    figures = "".join(
        f"<figure>{_img(p)}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, p in pictures.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>act3d demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 14px; }}
th {{ background: #f3f3f3; }} figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>act3d demo report</h1>
<p>ACT (Autoencoders as Cross-Modal Teachers) on act3d's embedded default data: a pretrained image Transformer
(ViT-S/14) prompt-tuned into a 3D autoencoder teaches a 3D student by masked feature prediction; compared with a
randomly initialised teacher, a Point-MAE-style target and no pretraining, on the same budget.</p>
<p id="walltime">Wall time: {results["wall_seconds"] / 60:.1f} min ({"quick" if results["quick"] else "full"} run,
{results["seeds"]} fine-tuning seed(s), {results["fewshot_folds"]} few-shot folds).{html.escape(reuse_note)}</p>
<p id="config">{html.escape(config_line)}</p>
<h2>Results</h2>
<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{transfer_html}
<h2>Stage I teachers (fine Chamfer-L1)</h2>
<table id="teachers"><thead><tr><th>teacher</th><th>steps</th><th>first</th><th>last</th></tr></thead>
<tbody>{teacher_rows}</tbody></table>
<h2>Pictures</h2>{figures}
<h2>Timings (s)</h2>
<table id="timings"><tbody>{timing_rows}</tbody></table>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    (out / "report_rows.json").write_text(json.dumps(rows, indent=2))
    return path
