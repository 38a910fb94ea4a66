"""act3d: self-supervised 3D point-cloud learning with cross-modal teachers (ACT, ICLR 2023)."""

__version__ = "0.1.0"
