"""act3d's pretrained student as 3DETR's encoder (`DetrConfig.encoder = "act"`).

The forks that put a pretrained point Transformer into 3DETR keep its pre-encoder and replace its encoder
by the pretrained blocks: PointGST's detection fork (jerryfeng2003/PointGST @68c0dc7,
`detection/models/model_3detr.py` l.391-416, `Point_BERTraw.py` l.120-184) sets `enc_dim` to the backbone's
width (384), so the set abstraction's 2,048 features are the tokens, and runs them through the pretrained
`blocks` and `norm` (the `ACT_encoder.` weights); the mini-PointNet patch embedding and the cls token are not
used. Two things that fork does are not done here: it feeds the blocks `(N, B, C)` tensors that its
attention reads as `(B, N, C)`, so each token attends across the scenes of a batch instead of across its
scene's points, and it drops the position embedding the backbone was pretrained with. Here the tokens
attend within their scene and the student's own position embedding of the token centres (`pos_embed`,
metres as they are) is added before every block, as in pretraining.
"""

from __future__ import annotations

import torch
from torch import nn

from act3d.models.student import StudentConfig, StudentEncoder


class StudentSceneEncoder(nn.Module):
    """`(N, B, W)` pre-encoder features at points `xyz (B, N, 3)` -> `(xyz, (N, B, W) features, None)`: the
    student's position embedding, blocks and final norm over each scene's tokens (no downsampling)."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        student = StudentEncoder(cfg)
        self.pos_embed, self.blocks, self.norm = student.pos_embed, student.blocks, student.norm

    def load_student(self, student: StudentEncoder) -> None:
        """Take a pretrained student's position embedding, blocks and norm (its patch embedding and cls
        token are not used)."""
        for name in ("pos_embed", "blocks", "norm"):
            getattr(self, name).load_state_dict(getattr(student, name).state_dict())

    def forward(self, src: torch.Tensor, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x = src.permute(1, 0, 2)
        x = self.norm(self.blocks(x, self.pos_embed(xyz)))
        return xyz, x.permute(1, 0, 2), None
