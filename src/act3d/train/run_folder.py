"""A run's folder: claimed without losing a finished run, locked while one process writes it, checked on
resume against the settings it was trained with, with `config.yaml` and `log.txt` in it."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from act3d.atomic import exclusive_lock
from act3d.errors import Act3dError, ConfigError

log = logging.getLogger(__name__)


class RunExistsError(Act3dError):
    """The output folder already holds a run, and neither resuming nor overwriting was asked for."""


# what a run writes into its folder; `overwrite` removes exactly these
RUN_OUTPUTS = (
    "config.yaml",
    "log.txt",
    "metrics.csv",
    "results.json",
    "checkpoints",
    "tensorboard",
)


def refuse_held_run(out_dir: Path, resume: bool, overwrite: bool) -> list[str]:
    """The run files `out_dir` holds; refused unless the run is to be continued or replaced. Reads only: a
    stage calls it before it reads its inputs, so a refused run costs nothing (`claim_run_dir` checks again
    under the lock). Under torchrun only rank 0 looks: the others may arrive after it claimed the folder."""
    from act3d.train.distributed import is_main_process

    if not is_main_process():
        return []
    held = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if held and not (resume or overwrite):
        raise RunExistsError(
            f"{out_dir} already holds a run ({', '.join(held)}); continue it with --resume, replace "
            "it with --overwrite, or choose another --out"
        )
    return held


def claim_run_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Make `out_dir` ready for a run without losing one: a folder that holds a started or finished run is
    continued (`resume`), replaced (`overwrite`: its run files and pictures are removed first) or refused.
    Temporary checkpoint files a killed run left behind are removed."""
    held = refuse_held_run(out_dir, resume, overwrite)
    if held and overwrite and not resume:
        for name in held:
            path = out_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for picture in out_dir.glob("*.png"):
            picture.unlink()
    for stale in (out_dir / "checkpoints").glob(".*.tmp*"):  # save_checkpoint's temporary files
        stale.unlink()


class RunLockedError(Act3dError):
    """Another process is writing the run folder."""


def run_lock(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on the run folder itself while a run writes it (no lock file to leave behind); a
    second process is refused at once, not kept waiting."""
    busy = RunLockedError(
        f"{out_dir} is being written by another act3d process; wait for it to finish, or choose another --out"
    )
    return exclusive_lock(out_dir, busy)


# what a resumed run of any stage may change: how long and how fast it trains, how it runs; anything else
# (models, patches, data, targets, seeds of the data split) would mix two runs in one folder. A stage's run
# config adds its own report-only settings as `RESUMABLE` (e.g. fine-tuning's votes).
RESUMABLE = ("optim.epochs", "optim.max_steps", "optim.lr", "optim.min_lr", "optim.weight_decay")
RESUMABLE += ("optim.warmup_epochs", "optim.grad_clip", "optim.accum_steps", "data.root", "data.on_device")


def resumable(key: str, config_class: type) -> bool:
    """Whether a resumed run may change this setting (`runtime.seed` also draws the validation split)."""
    own = getattr(config_class, "RESUMABLE", ())
    return key in RESUMABLE or key in own or (key.startswith("runtime.") and key != "runtime.seed")


def changed_settings(
    before: dict[str, Any], after: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """`(dotted key, old, new)` for every value that differs between two nested config dicts."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append((f"{prefix}{key}", old, new))
    return changes


def check_resumed_config(out_dir: Path, config: Any) -> None:
    """A resumed run says, in one line, which settings differ from its `config.yaml`, and refuses those that
    cannot change mid-run (`resumable` says which can)."""
    from act3d.config import from_dict, load_yaml, to_dict

    if not (out_dir / "config.yaml").is_file():
        return
    saved = load_yaml(out_dir / "config.yaml")
    try:  # settings added to act3d since the run was written read as their defaults, as the run ran
        saved = to_dict(from_dict(type(config), saved))
    except ConfigError:
        pass  # a setting act3d no longer has: compared as written, and named below
    changes = changed_settings(saved, to_dict(config))
    said = ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)
    fixed = [k for k, _, _ in changes if not resumable(k, type(config))]
    if fixed:
        raise Act3dError(
            f"cannot resume {out_dir} with changed {', '.join(fixed)} (it was trained with other values: "
            f"{said}); resume with the run's own values or start a new --out"
        )
    if changes:
        log.warning("resuming %s with changed settings: %s", out_dir, said)


@contextlib.contextmanager
def run_files(out_dir: Path, config: Any, resume: bool = False, overwrite: bool = False) -> Iterator[bool]:
    """Prepare a run folder (see `claim_run_dir`), locked for this process (`run_lock`): `config.yaml` and a
    `log.txt` that receives this process's log records. A resumed run's settings are checked against its
    `config.yaml` (`check_resumed_config`). Only rank 0 writes; yields whether this process is the one that
    writes."""
    from act3d.config import save_config
    from act3d.train.distributed import is_main_process

    main = is_main_process()
    if not main:
        yield False
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir):
        claim_run_dir(out_dir, resume, overwrite)
        if resume:
            check_resumed_config(out_dir, config)
        save_config(config, out_dir / "config.yaml")
        with _log_file(out_dir / "log.txt"):
            yield True


@contextlib.contextmanager
def _log_file(path: Path) -> Iterator[None]:
    """This process's log records also go to `path` while the context lasts."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
