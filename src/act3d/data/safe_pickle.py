"""A restricted unpickler for the pickled datasets of this field (ModelNet40 `.dat`, few-shot `.pkl`).

Pickles can run arbitrary code on load. These files only ever hold numpy arrays, lists, tuples, dicts,
strings and numbers, so only the classes needed to rebuild those are admitted; anything else is refused
before it is constructed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from act3d.errors import DataError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "complex"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "str"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # numpy arrays pickled under Python 2 / latin-1
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only arrays, lists, dicts and numbers are allowed"
        )


def load_pickle(path: str | Path) -> Any:
    """Load a data pickle safely; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(io.BufferedReader(f), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: unsafe or corrupt pickle: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err})") from None
