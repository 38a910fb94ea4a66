"""The demo's report: `report.md` and the self-contained `report.html` (images embedded), both rendered from
one model of the page: a headline, then sections of paragraphs, bullet points and tables."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from act3d.data.fewshot import fewshot_key
from act3d.demo.arms import (
    ACT,
    ACT_RANDOM_TEACHER,
    ARMS,
    FEWSHOT_SETTINGS,
    POINT_MAE,
    TEACHERS,
    student_folder,
    teacher_folder,
)
from act3d.demo.results import DemoResults, OwnDataResults, PeftResult, RobustRow
from act3d.eval.paired import PairedDifference
from act3d.eval.robust import CORRUPTIONS
from act3d.viz import plot_confusion, plot_forest, plot_loss_curves, plot_tsne


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


@dataclass
class Table:
    """Rows of shown strings under `columns` (key, title); HTML cells carry the key as `data-key`."""

    id: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None


RESULT_COLUMNS = [
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


def _fewshot_cells(fewshot: dict) -> dict[str, str]:
    return {f"fewshot_{k}": f"{_pct(v['mean'])} ± {_pct(v['std'])}" for k, v in fewshot.items()}


def results_table(results: DemoResults) -> Table:
    """The results table, one row per arm, as the strings shown."""
    rows = []
    for arm in results.arms:
        rows.append(
            {
                "arm": arm.label,
                "finetune_val": _pct(arm.finetune_scan_val_acc_mean),
                "finetune": f"{_pct(arm.finetune_scan_acc_mean)} ± {_pct(arm.finetune_scan_acc_std)}",
                "svm_scan": _pct(arm.svm_scan_acc),
                "svm_clean": _pct(arm.svm_clean_acc),
                **_fewshot_cells(arm.fewshot),
            }
        )
    return Table("results", RESULT_COLUMNS, rows)


def own_data_table(own_data: OwnDataResults) -> Table:
    """The table of the user's own dataset (`--own-data`): one row per arm."""
    keys = sorted({k for arm in own_data.arms for k in arm.fewshot})
    columns = [
        ("arm", "arm"),
        ("finetune_val", "fine-tune, validation OA % (selects)"),
        ("finetune", "fine-tune, test OA %"),
        ("svm", "SVM, test OA %"),
        *[(f"fewshot_{k}", f"few-shot {k} %") for k in keys],
    ]
    rows = [
        {
            "arm": arm.label,
            "finetune_val": _pct(arm.finetune_val_acc_mean),
            "finetune": f"{_pct(arm.finetune_acc_mean)} ± {_pct(arm.finetune_acc_std)}",
            "svm": _pct(arm.svm_acc),
            **_fewshot_cells(arm.fewshot),
        }
        for arm in own_data.arms
    ]
    return Table("own-data", columns, rows)


def comparison_table(
    comparisons: list[PairedDifference],
    table_id: str,
    labels: dict[str, str] | None = None,
    points: bool = True,
    measure: str = "measure",
) -> Table:
    """Paired differences a − b: mean and 95% interval (accuracies in points; with `points` False, values as
    they are), the units, and whether it excludes zero. `labels`: name -> label (default: the arms')."""
    labels = labels or {arm.name: arm.short for arm in ARMS}

    def shown(v: float) -> str:
        return f"{100 * v:+.1f}" if points else f"{v:+.3f}"

    rows = [
        {
            "pair": f"{labels.get(c.a, f'ACT + {c.a}')} − {labels[c.b]}",
            "measure": c.measure,
            "diff": shown(c.mean),
            "interval": "-" if c.low is None else f"{shown(c.low)} to {shown(c.high)}",
            "units": f"{c.n} {c.unit}{'s' if c.n != 1 else ''}"
            + (f", {c.clouds} clouds" if c.clouds else ""),
            "verdict": "yes" if c.distinguishable else "no",
        }
        for c in comparisons
    ]
    columns = [
        ("pair", "a − b"),
        ("measure", measure),
        ("diff", "mean difference, points" if points else "mean difference"),
        ("interval", "95% paired bootstrap interval"),
        ("units", "paired units"),
        ("verdict", "excludes zero"),
    ]
    return Table(table_id, columns, rows)


def peft_table(peft: list[PeftResult], table_id: str = "peft") -> Table:
    """`--peft`: the ACT student's full fine-tuning, then one row per PEFT method on it."""
    rows = [
        {
            "method": "full fine-tuning" if p.method == "full" else p.method,
            "trainable": f"{p.trainable:,} of {p.parameters:,}",
            "step": f"{1e3 * p.seconds_per_step:.0f}",
            "finetune_val": _pct(p.finetune_scan_val_acc_mean),
            "finetune": f"{_pct(p.finetune_scan_acc_mean)} ± {_pct(p.finetune_scan_acc_std)}",
        }
        for p in peft
    ]
    columns = [
        ("method", "transfer"),
        ("trainable", "trainable parameters"),
        ("step", "ms per step"),
        ("finetune_val", "validation OA % (selects)"),
        ("finetune", "test OA %"),
    ]
    return Table(table_id, columns, rows)


def robust_sections(rows: list[RobustRow], comparisons: list[PairedDifference], where: str) -> list[Section]:
    """`--robust`: each arm's accuracy on the clean and the damaged clouds, its mCE and RmCE, and the paired
    differences against the ACT arm."""
    columns = [("arm", "arm"), ("clean", "clean OA %"), ("mce", "mCE (± std over seeds)"), ("rmce", "RmCE")]
    columns += [(c, f"{c} OA %") for c in CORRUPTIONS]
    table = [
        {
            "arm": r.label,
            "clean": _pct(r.clean_oa_mean),
            "mce": f"{r.mce_mean:.3f} ± {r.mce_std:.3f}",
            "rmce": f"{r.rmce_mean:.3f}",
            **{c: _pct(r.oa[c]) for c in CORRUPTIONS},
        }
        for r in rows
    ]
    paired = comparison_table(
        comparisons,
        f"robust-paired{where and '-own-data'}",
        labels={r.name: r.label for r in rows},
        points=False,
        measure="measure (lower is more robust)",
    )
    text = [
        "Every fine-tuned classifier on its test clouds at 1,024 points, clean and damaged by the seven "
        "ModelNet-C corruptions at five levels each, computed as the official code computes them and drawn "
        "once (seed 0), so every arm sees the same damaged clouds. mCE and RmCE normalise by DGCNN's published "
        "accuracies (1 = DGCNN on ModelNet-C); on these clouds, not the released ModelNet-C files, they are "
        "not the benchmark's numbers. The differences are paired seed by seed and cloud by cloud."
    ]
    return [
        Section(
            f"Robustness to corruptions{where}",
            text,
            table=Table(f"robust{where and '-own-data'}", columns, table),
        ),
        Section(
            f"Robustness{where}: paired differences against ACT",
            table=paired,
        ),
    ]


PAPER_BUDGET = (
    "The paper's gap was measured after 300 epochs of Stage I and 300 of Stage II on ShapeNet-55 with a "
    "12-block ViT-B (34.8 hours on one RTX 3090, as PCP-MAE's table reports); docs/experiments.md counts "
    "that budget in FLOPs against the demo's and traces the gap against compute at CPU budgets."
)


def headline(comparisons: list[PairedDifference]) -> list[str]:
    """What the run shows, in words: the pretrained-teacher question first, then every other difference
    whose interval excludes zero."""
    if not comparisons:
        return ["No paired comparison could be made (one seed, one episode and no per-cloud SVM results)."]
    lines = []
    teacher = [c for c in comparisons if (c.a, c.b) == (ACT.name, ACT_RANDOM_TEACHER.name)]
    if teacher:
        ahead = sum(c.distinguishable and c.mean > 0 for c in teacher)
        behind = sum(c.distinguishable and c.mean < 0 for c in teacher)
        single = sum(c.low is None for c in teacher)
        lines.append(
            f"Pretrained against random teacher: ahead on {ahead}, behind on {behind} and not distinguishable "
            f"on {len(teacher) - ahead - behind - single} of {len(teacher)} measures (95% paired intervals)"
            + (f"; {single} measured on one unit only, without an interval." if single else ".")
            + ("" if ahead > behind else " " + PAPER_BUDGET)
        )
    shown = [c.text for c in comparisons if c.distinguishable]
    return lines + (shown or ["No paired difference is distinguishable from zero."])


def machine_line(env: dict) -> list[str]:
    """What the run's bits depend on (`act3d.environment`), in one sentence; none for an older results.json."""
    if not env:
        return []
    pinned = ", ".join(f"{k}={v}" for k, v in env["kernel_variables"].items())
    cpu = env.get("cpu_id") or {}
    kind = f" (family {cpu['family']} model {cpu['model']})" if cpu.get("family") else ""
    libraries = ", ".join(f"{k} {v}" for k, v in (env.get("kernel_libraries") or {}).items())
    return [
        f"Machine: {env['cpu']}{kind}, PyTorch kernels for {env['cpu_capability']}, BLAS {env['blas']}"
        + (f" ({libraries})" if libraries else "")
        + (f", pinned by {pinned}" if pinned else "")
        + "; a rerun on this machine kind is identical to the last bit, another CPU kind differs within the "
        "seed spread (docs/experiments.md, 'What is identical where')."
    ]


def build_sections(results: DemoResults) -> list[Section]:
    """Every section of the report, in order."""
    reused, changes, preset = results.reused_stages, results.overrides, results.preset
    wall = (
        f"Wall time: {results.wall_seconds / 60:.1f} min ({'quick' if results.quick else 'full'} run, "
        f"{results.seeds} fine-tuning seed(s), {results.fewshot_folds} few-shot folds, "
        f"{results.threads} threads, torch {results.torch})."
        + (
            f" This invocation reused {len(reused)} stage(s) finished earlier; their own times are in the timings."
            if reused
            else ""
        )
    )
    config = (
        f"Configuration: presets teacher.{preset}, pretrain.{preset} and finetune.{preset} (each stage's resolved "
        "config.yaml is in its folder)" + (f"; changed: {', '.join(changes)}" if changes else "") + "."
    )
    sections = [
        Section(
            "What this run shows",
            [wall, *machine_line(results.environment), config],
            headline(results.comparisons),
        ),
        Section("Results (mean ± std over seeds / folds)", table=results_table(results)),
        Section(
            "Paired differences",
            [
                "Every arm shares the seeds, the few-shot episodes and the test clouds, so each difference is "
                "paired: its 95% interval comes from a paired bootstrap that resamples the units (seeds, "
                "episodes) and, within each, the clouds an accuracy is made of."
            ],
            table=comparison_table(results.comparisons, "paired"),
        ),
    ]
    own_data = results.own_data
    if own_data is not None:
        title = f"Your data: {own_data.data} ({len(own_data.classes)} classes)"
        sections.append(Section(title, table=own_data_table(own_data)))
        sections.append(
            Section(
                "Your data: paired differences",
                table=comparison_table(own_data.comparisons, "own-data-paired"),
            )
        )
        if own_data.peft:
            sections.append(
                Section(
                    "Your data: parameter-efficient transfer",
                    table=peft_table(own_data.peft, "own-data-peft"),
                )
            )
            sections.append(
                Section(
                    "Your data: PEFT methods against full fine-tuning",
                    table=comparison_table(own_data.peft_comparisons, "own-data-peft-paired"),
                )
            )
    if results.peft:
        sections.append(
            Section(
                "Parameter-efficient transfer of the ACT student",
                [
                    "The ACT arm's student, frozen, under each PEFT method (`--peft`), with the seeds of its full "
                    "fine-tuning; each method computes what its official code computes and trains what its "
                    "official rule trains (docs/method.md, section 4b). The differences below are paired "
                    "with full fine-tuning seed by seed."
                ],
                table=peft_table(results.peft),
            )
        )
        sections.append(
            Section(
                "Parameter-efficient transfer: paired differences against full fine-tuning",
                table=comparison_table(results.peft_comparisons, "peft-paired"),
            )
        )
    if results.robust:
        sections += robust_sections(results.robust, results.robust_comparisons, "")
    if results.own_data is not None and results.own_data.robust:
        sections += robust_sections(
            results.own_data.robust, results.own_data.robust_comparisons, " on your data"
        )
    teachers = [
        {
            "teacher": k,
            "steps": str(t["steps"]),
            "first": f"{t['chamfer_fine_first']:.4f}",
            "last": f"{t['chamfer_fine_last']:.4f}",
        }
        for k, t in results.teachers.items()
    ]
    columns = [("teacher", "teacher"), ("steps", "steps"), ("first", "first"), ("last", "last")]
    sections.append(Section("Stage I teachers (fine Chamfer-L1)", table=Table("teachers", columns, teachers)))
    timings = [{"stage": k, "seconds": f"{v:.1f}"} for k, v in results.timings.items()]
    sections.append(
        Section("Timings", table=Table("timings", [("stage", "stage"), ("seconds", "seconds")], timings))
    )
    return sections


def draw_pictures(out: Path, results: DemoResults) -> dict[str, Path]:
    """The report's pictures, caption -> file: the paired differences, loss curves, reconstructions, masks,
    t-SNE, confusion."""
    pictures: dict[str, Path] = {}
    forests = [("", "paired_differences.png", results.comparisons)]
    if results.own_data is not None:
        forests.append((" on your data", "paired_differences_own_data.png", results.own_data.comparisons))
    for where, name, comparisons in forests:
        drawn = plot_forest([c.to_dict() for c in comparisons], out / name)
        if drawn:
            pictures[
                f"Paired differences{where} (dot: mean, bar: 95% interval; coloured where it excludes zero)"
            ] = drawn
    arms = {arm.name: arm for arm in ARMS}
    runs = {teacher_folder(t): record for t, record in results.teachers.items()}
    runs |= {student_folder(arms[arm.name]): arm.stage2 for arm in results.arms}
    curves = plot_loss_curves(
        {folder: record.get("loss_curve", []) for folder, record in runs.items()}, out / "loss_curves.png"
    )
    if curves:
        pictures["Loss curves of every training stage"] = curves
    for folder, name in (
        *((teacher_folder(t), "reconstructions.png") for t in TEACHERS),
        (student_folder(ACT), "masked_inputs.png"),
        (student_folder(POINT_MAE), "masked_inputs.png"),
    ):
        if (out / folder / name).is_file():
            pictures[f"{folder}: {name.removesuffix('.png').replace('_', ' ')}"] = out / folder / name
    pictures["t-SNE of the ACT student's features"] = plot_tsne(results.embedding_act, out / "tsne.png")
    pictures["Confusion matrix, ACT fine-tuned on the scan split (seed 0)"] = plot_confusion(
        results.confusion_act, results.class_names, out / "confusion.png", "ACT, scan test split"
    )
    return pictures


STYLE = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; font-size: 14px; }
th { background: #f3f3f3; } figure { margin: 1.5em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 13px; }"""
INTRO = (
    "ACT (Autoencoders as Cross-Modal Teachers) on act3d's embedded default data: a pretrained image "
    "Transformer (ViT-S/14) prompt-tuned into a 3D autoencoder teaches a 3D student by masked feature "
    "prediction; compared with a randomly initialised teacher, a Point-MAE-style target and no pretraining, "
    "on the same budget."
)


def render_markdown(sections: list[Section], pictures: dict[str, Path]) -> str:
    md = ["# act3d demo report", "", INTRO]
    for s in sections:
        md += ["", f"## {s.title}"]
        for p in s.paragraphs:
            md += ["", p]
        if s.bullets:
            md += [""] + [f"- {b}" for b in s.bullets]
        if s.table is not None:
            t = s.table
            md += [
                "",
                "| " + " | ".join(title for _, title in t.columns) + " |",
                "|" + "---|" * len(t.columns),
            ]
            md += ["| " + " | ".join(r.get(k, "") for k, _ in t.columns) + " |" for r in t.rows]
    md += ["", "Pictures: " + ", ".join(p.name for p in pictures.values()), ""]
    return "\n".join(md)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in t.columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-key="{k}">{html.escape(r.get(k, ""))}</td>' for k, _ in t.columns)
        + "</tr>"
        for r in t.rows
    )
    return f'<table id="{t.id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(sections: list[Section], pictures: dict[str, Path]) -> str:
    parts = [f"<h1>act3d demo report</h1><p>{html.escape(INTRO)}</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        if s.bullets:
            parts.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in s.bullets) + "</ul>")
        if s.table is not None:
            parts.append(_html_table(s.table))
    parts.append("<h2>Pictures</h2>")
    parts += [
        f"<figure>{_img(p)}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, p in pictures.items()
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>act3d demo report</title>\n'
        f"<style>\n{STYLE}\n</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(out: Path, results: DemoResults) -> Path:
    """Write the pictures, `report.md`, `report_rows.json` and the self-contained `report.html` into `out`."""
    pictures = draw_pictures(out, results)
    sections = build_sections(results)
    (out / "report.md").write_text(render_markdown(sections, pictures))
    path = out / "report.html"
    path.write_text(render_html(sections, pictures))
    (out / "report_rows.json").write_text(json.dumps(results_table(results).rows, indent=2))
    return path
