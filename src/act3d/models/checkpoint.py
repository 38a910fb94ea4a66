"""Weight files in and out: act3d checkpoints (written atomically, read without unpickling code, checked to
belong to the model that loads them), foreign weight files (safetensors, `.pth` / `.bin`, `.npz`), and the
one strict state-dict loader every loader uses."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from act3d.atomic import atomic_file
from act3d.errors import CheckpointError

# 2: checkpoints carry "arch", the model-level description `act3d.models.zoo` rebuilds a model from
# 3: in "arch" and "config" the patch settings (`PatchConfig`) are `patching` (format 2: `patches`), and the
#    training number format is `runtime.precision` (format 2: `runtime.amp`)
FORMAT_VERSION = 3


def model_payload(
    kind: str,
    state: dict[str, torch.Tensor],
    step: int,
    config: dict[str, Any] | None,
    arch: dict[str, Any],
    **more,
) -> dict[str, Any]:
    """What every act3d checkpoint holds: its `kind`, the model's state dict, the optimiser step it was taken
    at, the run's resolved config and `arch` (what `act3d.models.zoo` rebuilds the model from); `more`: what
    its writer adds (training state, the source of an imported checkpoint)."""
    return {"kind": kind, "model": state, "step": step, "config": config, "arch": arch, **more}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format version) to `path` atomically: a crash never leaves half a file."""
    path = Path(path)
    with atomic_file(path, "wb", fsync=True) as f:
        torch.save({"format_version": FORMAT_VERSION, **payload}, f)
    return path


def host_copy(obj: Any) -> Any:
    """`obj` (dicts, lists, tuples of tensors and values) with every tensor copied to the CPU: a snapshot that
    training cannot change while a background thread writes it."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Writes checkpoints (`save_checkpoint`) one at a time on a background thread, so that training goes on
    while the file is written. `wait` blocks until every submitted write is on disk and re-raises the error
    of a failed one."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="act3d-checkpoint")
        self._pending: list[Future] = []

    def submit(self, path: Path, payload: dict[str, Any]) -> None:
        """Queue a write of `payload`, whose tensors must already be copies (`host_copy`)."""
        self._pending.append(self._pool.submit(save_checkpoint, path, payload))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for write in pending:
            write.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def numpy_scalar_globals() -> list[Any]:
    """The globals a pickled numpy scalar needs, and no others: `numpy.dtype`, its numeric dtype classes and
    the `scalar` constructor under the names numpy 1 (`numpy.core`) and 2 (`numpy._core`) pickle it with.
    Official checkpoints hold such scalars: ACT's runner stores `metrics` / `best_metrics` from scikit-learn's
    `accuracy_score(...) * 100.`, a `numpy.float64` (tools/runner_finetune.py l.286-287, builder.py
    `save_checkpoint`). A scalar is built from a dtype and its bytes; nothing else becomes loadable."""
    scalar = np._core.multiarray.scalar
    names = ("Float16DType", "Float32DType", "Float64DType", "Int32DType", "Int64DType", "BoolDType")
    dtypes = [getattr(np.dtypes, n) for n in names]
    return [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *dtypes,
    ]


def safe_torch_load(path: Path, extra_globals: Sequence[Any] = ()) -> Any:
    """`torch.load` with `weights_only=True`: tensors, containers, plain values and numpy scalars
    (`numpy_scalar_globals`) only, never code; `extra_globals`: the plain classes a layout also holds
    (3DETR's `argparse.Namespace`). torch's own warnings (e.g. about the pickle protocol) are held back, the
    error it raises is left to the caller."""
    allowed = [*numpy_scalar_globals(), *extra_globals]
    with warnings.catch_warnings(), torch.serialization.safe_globals(allowed):
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def unreadable_reason(err: Exception) -> str:
    """Why `safe_torch_load` (or a safetensors / npz reader) failed, in a few words: for a pickle holding
    more than weights, what it holds, and that act3d does not load it (torch's own message suggests
    `weights_only=False`, which would run the file's code)."""
    text = str(err)
    if "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        what = f" ({detail.group(1).strip()})" if detail and detail.group(1).strip() else ""
        return (
            f"it holds pickled Python objects besides weights{what}, and act3d never loads those, since "
            "loading them can run code"
        )
    return f"{type(err).__name__}: {' '.join(text.split())[:300]}"


def load_checkpoint(path: str | Path, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read an act3d checkpoint; with `kind`, refuse one of another kind with a message saying what it is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = safe_torch_load(path)
    except Exception as err:  # truncated zip, foreign pickle, ...: many exception types, one message
        raise CheckpointError(f"{path}: not a readable act3d checkpoint ({unreadable_reason(err)})") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "model" not in ckpt:
        raise CheckpointError(
            f"{path}: not an act3d checkpoint (no 'kind'/'model' entries); official ACT "
            "checkpoints are read with `act3d import-official`"
        )
    version = ckpt.get("format_version")
    if version == 2:
        ckpt = _from_format_2(ckpt)
    elif version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version}, this act3d reads formats 2 and {FORMAT_VERSION}; "
            "re-create it with this version (or import it with the act3d that wrote it)"
        )
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and ckpt["kind"] not in wanted:
        raise CheckpointError(
            f"{path} is a {ckpt['kind']} checkpoint, but a {' or '.join(wanted)} checkpoint is needed"
        )
    return ckpt


def _from_format_2(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A format 2 checkpoint read as format 3: `patches` renamed `patching`, `runtime.amp` `runtime.precision`."""

    def renamed(record: Any, old: str, new: str) -> Any:
        return (
            {(new if k == old else k): v for k, v in record.items()} if isinstance(record, dict) else record
        )

    arch, config = (
        renamed(ckpt.get("arch"), "patches", "patching"),
        renamed(ckpt.get("config"), "patches", "patching"),
    )
    if isinstance(config, dict) and "runtime" in config:
        config["runtime"] = renamed(config["runtime"], "amp", "precision")
    return ckpt | {"arch": arch, "config": config, "format_version": FORMAT_VERSION}


def listing(names: list[str], limit: int = 8) -> str:
    """`(count) first, second, ... and N more`: key lists in error messages."""
    if not names:
        return "none"
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"({len(names)}) " + ", ".join(names[:limit]) + more


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict` that refuses any mismatch, listing the missing, unexpected and mis-shaped keys and
    naming the file they came from."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source} does not fit this model: missing keys {listing(missing)}; "
            f"unexpected keys {listing(unexpected)}; shape mismatches {listing(wrong, 4)}"
        )
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(
            f"{source} holds NaN/inf weights ({listing(broken, 4)}): it comes from a diverged run"
        )
    model.load_state_dict(state)


def read_weight_file(path: str | Path, extra_globals: Sequence[Any] = ()) -> dict[str, torch.Tensor]:
    """A flat state dict from `.safetensors`, `.pth` / `.pt` / `.bin` (read with `weights_only=True`, with
    `extra_globals` allowed: `safe_torch_load`) or `.npz`. The weights may sit under `state_dict`, `model`,
    `base_model` or `module` (official ACT, 3DETR and timm checkpoints); DataParallel's `module.` prefix is
    removed. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: torch.from_numpy(np.ascontiguousarray(f[k])) for k in f.files}
        state = safe_torch_load(path, extra_globals)
    except Exception as err:  # corrupt archives raise many types
        raise CheckpointError(f"{path}: not a readable weight file ({unreadable_reason(err)})") from None
    if (
        isinstance(state, dict)
        and str(state.get("kind", "")).startswith("act3d-")
        and "format_version" in state
    ):
        raise CheckpointError(f"{path} is already an act3d checkpoint ({state['kind']}); use it as it is")
    for key in ("state_dict", "model", "base_model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = (
        {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise CheckpointError(
            f"{path}: no state dict of tensors found (looked for 'state_dict', 'model', "
            "'base_model', 'module' and the top level)"
        )
    return tensors
