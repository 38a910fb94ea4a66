"""The README's layout table names what is in the tree, and everything in the tree has a row."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_rows() -> list[str]:
    text = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")]


def test_every_layout_path_exists_and_every_module_has_a_row():
    named = set()
    for cell in layout_rows():
        paths = re.findall(r"`([^`]+)`", cell)
        base = Path(paths[0]).parent
        for i, path in enumerate(paths):
            full = ROOT / path if i == 0 or "/" in path else ROOT / base / path
            assert full.exists(), f"README layout names {path}, which is not in the tree"
            named.add(full.resolve())
    package = ROOT / "src" / "act3d"
    for entry in sorted(package.iterdir()):
        if entry.name.startswith("_") or entry.suffix not in (".py", "") or entry.name.endswith(".egg-info"):
            continue
        assert entry.resolve() in named, f"src/act3d/{entry.name} has no row in the README's layout table"
