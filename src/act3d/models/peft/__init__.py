"""Parameter-efficient transfer (PEFT) on a frozen student backbone: the methods ACT's users publish with.

Each method is one module here, a `PeftMethod` (`act3d.models.peft.method`, the whole contract) holding only
what the method adds to the backbone (prompts, a prompt generator, adapters) and computing the classifier's
input features from the backbone's own frozen pieces, op for op as its official code does (file and line
cited in each module):

- `vpt_deep`: VPT-deep as IDPT's code defines it, learnable prompts replaced before every block;
- `idpt`: IDPT (ICCV 2023), a DGCNN prompt generator before one block;
- `dapt`: DAPT (CVPR 2024), a dynamic adapter in every block, its output a new prompt, and scale-and-shift
  pairs throughout;
- `pointgst`: PointGST (TPAMI 2025), a spectral adapter in every block, filtering in the graph Fourier bases
  of the patch centres;
- `ppt`: PPT (2024), prompt MLPs on the patch tokens and on the tokens of a second grouping, and in every
  block.

Importing a method's module registers it, in the order act3d lists the methods (`METHODS`); adding a
method: docs/extending.md. `METHODS` maps each `transfer` name to its class.
"""

from __future__ import annotations

# isort: off
from act3d.models.peft import vpt_deep, idpt, dapt, pointgst, ppt  # noqa: F401  (each registers its method)

# isort: on
from act3d.models.peft.method import METHODS, BackboneShape, PeftMethod, register, settings_of

__all__ = ["METHODS", "BackboneShape", "PeftMethod", "register", "settings_of"]
