"""act3d: self-supervised 3D point-cloud learning with cross-modal teachers (ACT, ICLR 2023)."""

__version__ = "0.1.0"


def load_model(path, precision="float32"):
    """Load a Stage II student, fine-tuned classifier or segmenter checkpoint; `precision`: float32 (default),
    bf16 or auto. See `act3d.api.load_model`."""
    from act3d.api import load_model as _load

    return _load(path, precision)
