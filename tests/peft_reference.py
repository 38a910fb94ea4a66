"""A reference statement of the official PEFT classifiers on a Point-MAE / ACT backbone, for tests.

Written for comparison, not for use: the official module names (so `act3d.models.official.to_official` weights
load into it strictly), channels-first 1x1 convolutions, the official order of operations, nothing shared with
act3d. The models take the patches (`neighborhood`, `center`) instead of raw points: the grouping is tested
on its own. Line references are to zyh16143998882/ICCV23-IDPT @bf152f2:

- `VptDeepClassifier`: models/Point_MAE.py `PointTransformerPromptDeep` (l.1230-1385) with
  `TransformerEncoderDeep` (l.237-265);
- `IdptClassifier`: models/Point_MAE.py `PointTransformer` (l.890-1057) with `TransformerPromptEncoderLayerI`
  (l.289-362) and models/dgcnn.py `DGCNNView` (l.78-136).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Encoder(nn.Module):
    """Point-MAE's mini-PointNet (Point_MAE.py l.20-51); `hidden` scales the inner widths as act3d's."""

    def __init__(self, channel: int, hidden: float = 1.0):
        super().__init__()
        c1, c2, c3 = int(128 * hidden), int(256 * hidden), int(512 * hidden)
        self.channel = channel
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, c1, 1), nn.BatchNorm1d(c1), nn.ReLU(), nn.Conv1d(c1, c2, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(2 * c2, c3, 1), nn.BatchNorm1d(c3), nn.ReLU(), nn.Conv1d(c3, channel, 1)
        )

    def forward(self, point_groups: torch.Tensor) -> torch.Tensor:
        bs, g, n, _ = point_groups.shape
        feature = self.first_conv(point_groups.reshape(bs * g, n, 3).transpose(2, 1))
        feature_global = torch.max(feature, dim=2, keepdim=True)[0]
        feature = self.second_conv(torch.cat([feature_global.expand(-1, -1, n), feature], dim=1))
        return torch.max(feature, dim=2, keepdim=False)[0].reshape(bs, g, self.channel)


class Block(nn.Module):
    """Point_MAE.py `Block` (l.132-149): LayerNorm eps 1e-5, qkv without bias, explicit softmax attention;
    no drop path (the comparison runs in eval mode)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = (
            self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.attn.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


def cls_head(in_dim: int, classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(256, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(256, classes),
    )


class _Backbone(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, hidden: float):
        super().__init__()
        self.encoder = Encoder(dim, hidden)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.norm = nn.LayerNorm(dim)
        self.depth, self.heads = depth, heads


class VptDeepClassifier(_Backbone):
    def __init__(self, dim: int, depth: int, heads: int, hidden: float, classes: int, prompts: int):
        super().__init__(dim, depth, heads, hidden)
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.cls_head_finetune = cls_head(2 * dim, classes)
        self.cls_prompt_list = nn.ParameterList(
            nn.Parameter(torch.zeros(1, prompts, dim)) for _ in range(depth)
        )
        self.cls_prompt_pos_list = nn.ParameterList(
            nn.Parameter(torch.randn(1, prompts, dim)) for _ in range(depth)
        )

    def forward(self, neighborhood: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        group_input_tokens = self.encoder(neighborhood)
        b, num_group = group_input_tokens.shape[:2]
        x = torch.cat((self.cls_token.expand(b, -1, -1), group_input_tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(b, -1, -1), self.pos_embed(center)), dim=1)
        for i, block in enumerate(self.blocks.blocks):  # TransformerEncoderDeep.forward
            x = x[:, : num_group + 1, :]
            pos = pos[:, : num_group + 1, :]
            x = torch.cat((x, self.cls_prompt_list[i].expand(b, -1, -1)), dim=1)
            pos = torch.cat((pos, self.cls_prompt_pos_list[i].expand(b, -1, -1)), dim=1)
            x = block(x + pos)
        x = self.norm(x)
        concat_f = torch.cat([x[:, 0], x[:, 1 : num_group + 1, :].max(1)[0]], dim=-1)
        return self.cls_head_finetune(concat_f)


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x**2, dim=1, keepdim=True)
    pairwise_distance = -xx - inner - xx.transpose(2, 1)
    return pairwise_distance.topk(k=k, dim=-1)[1]


def get_graph_feature(x: torch.Tensor, k: int) -> torch.Tensor:
    batch_size, num_dims, num_points = x.shape
    idx = knn(x, k) + torch.arange(0, batch_size).view(-1, 1, 1) * num_points
    x = x.transpose(2, 1).contiguous()
    feature = x.view(batch_size * num_points, -1)[idx.view(-1), :].view(batch_size, num_points, k, num_dims)
    x = x.view(batch_size, num_points, 1, num_dims).repeat(1, 1, k, 1)
    return torch.cat((feature - x, x), dim=3).permute(0, 3, 1, 2).contiguous()


class DGCNNView(nn.Module):
    """Registers its BatchNorms as the official file does (dgcnn.py l.86-109): as `bn1`, `bn2`, `bn3`, `bn5`
    and again inside `conv1..conv5`, so its state dict holds each of them twice (20 alias keys)."""

    def __init__(self, dim: int, k: int = 20):
        super().__init__()
        self.k = k
        self.bn1 = nn.BatchNorm2d(dim)
        self.bn2 = nn.BatchNorm2d(dim)
        self.bn3 = nn.BatchNorm2d(dim)
        self.bn5 = nn.BatchNorm1d(dim)
        self.conv1 = nn.Sequential(nn.Conv2d(dim * 2, dim, 1, bias=False), self.bn1, nn.LeakyReLU(0.2))
        self.conv2 = nn.Sequential(nn.Conv2d(dim * 2, dim, 1, bias=False), self.bn2, nn.LeakyReLU(0.2))
        self.conv3 = nn.Sequential(nn.Conv2d(dim * 2, dim, 1, bias=False), self.bn3, nn.LeakyReLU(0.2))
        self.conv5 = nn.Sequential(nn.Conv1d(dim * 3, dim, 1, bias=False), self.bn5, nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size = x.size(0)
        x1 = self.conv1(get_graph_feature(x, self.k)).max(dim=-1, keepdim=False)[0]
        x2 = self.conv2(get_graph_feature(x1, self.k)).max(dim=-1, keepdim=False)[0]
        x3 = self.conv3(get_graph_feature(x2, self.k)).max(dim=-1, keepdim=False)[0]
        x = self.conv5(torch.cat((x1, x2, x3), dim=1))
        return F.adaptive_max_pool1d(x, 1).view(batch_size, -1).unsqueeze(1)


class IdptClassifier(_Backbone):
    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        hidden: float,
        classes: int,
        prompt_layer: int,
        cls_type: str,
        k: int,
    ):
        super().__init__(dim, depth, heads, hidden)
        self.prompt_layer, self.cls_type = prompt_layer, cls_type
        self.prompt_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Module()  # TransformerPromptEncoderLayerI: `blocks` and the prompt module `cls`
        self.blocks.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.blocks.cls = DGCNNView(dim, k)
        channels = {"all": 3, "promptcls": 2, "pointcls": 2}.get(cls_type, 1)
        self.cls_head_finetune = cls_head(dim * channels, classes)

    def forward(self, neighborhood: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        group_input_tokens = self.encoder(neighborhood)
        b, num_group = group_input_tokens.shape[:2]
        x = torch.cat((self.cls_token.expand(b, -1, -1), group_input_tokens), dim=1)
        pos = torch.cat(
            (self.cls_pos.expand(b, -1, -1), self.prompt_pos.expand(b, -1, -1), self.pos_embed(center)), dim=1
        )
        # TransformerPromptEncoderLayerI.forward (l.350-362)
        pos_prompt = pos[:, 1:2, :]
        pos = torch.cat((pos[:, :1, :], pos[:, -num_group:, :]), dim=1)
        for i, block in enumerate(self.blocks.blocks):
            if i == self.prompt_layer:
                y = x[:, -num_group:]
                prompt = self.blocks.cls(y.permute(0, 2, 1))
                x = torch.cat((x[:, :1, :], prompt, x[:, -num_group:, :]), dim=1)
                pos = torch.cat((pos[:, :1, :], pos_prompt, pos[:, -num_group:, :]), dim=1)
            x = block(x + pos)
        x = self.norm(x)
        if self.cls_type == "promptonly":
            concat_f = torch.cat([x[:, 1]], dim=-1)
        elif self.cls_type == "promptcls":
            concat_f = torch.cat([x[:, 0], x[:, 1]], dim=-1)
        elif self.cls_type == "pointcls":
            concat_f = torch.cat([x[:, 0], x[:, 2:].max(1)[0]], dim=-1)
        else:
            concat_f = torch.cat([x[:, 0], x[:, 1], x[:, 2:].max(1)[0]], dim=-1)
        return self.cls_head_finetune(concat_f)


def only_new_trainable(model: nn.Module) -> set[str]:
    """The official `only_new` optimiser part (IDPT tools/builder.py l.48-55): names containing `cls`."""
    return {name for name, _ in model.named_parameters() if "cls" in name}


# DAPT: LMD0311/DAPT @41aa0bc, models/DAPT.py


def init_tfts(dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    gamma = nn.Parameter(torch.ones(dim))
    beta = nn.Parameter(torch.zeros(dim))
    nn.init.normal_(gamma, mean=1, std=0.02)
    nn.init.normal_(beta, std=0.02)
    return gamma, beta


def apply_tfts(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    assert gamma.shape == beta.shape
    if x.shape[-1] == gamma.shape[0]:
        return x * gamma + beta
    raise ValueError("the input tensor shape does not match the shape of the scale factor.")


class DaptMlp(nn.Module):  # l.79-100
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.tfts_gamma_1, self.tfts_beta_1 = init_tfts(hidden)
        self.tfts_gamma_2, self.tfts_beta_2 = init_tfts(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(apply_tfts(self.fc1(x), self.tfts_gamma_1, self.tfts_beta_1))
        return apply_tfts(self.fc2(x), self.tfts_gamma_2, self.tfts_beta_2)


class DaptAttention(nn.Module):  # l.103-130
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3, bias=False), nn.Linear(dim, dim)
        self.tfts_gamma_1, self.tfts_beta_1 = init_tfts(dim * 3)
        self.tfts_gamma_2, self.tfts_beta_2 = init_tfts(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = apply_tfts(self.qkv(x), self.tfts_gamma_1, self.tfts_beta_1)
        qkv = qkv.reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        return apply_tfts(x, self.tfts_gamma_2, self.tfts_beta_2)


class DaptAdapter(nn.Module):  # l.174-227, adapter_layernorm_option "in"
    def __init__(self, d_model: int, bottleneck: int, dropout: float = 0.0):
        super().__init__()
        self.adapter_layer_norm_before = nn.LayerNorm(d_model)
        self.scale = nn.Linear(d_model, 1)
        self.down_proj = nn.Linear(d_model, bottleneck)
        self.non_linear_func = nn.GELU()
        self.up_proj = nn.Linear(bottleneck, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapter_layer_norm_before(x)
        scale = F.relu(self.scale(x))
        down = self.non_linear_func(self.down_proj(x))
        down = nn.functional.dropout(down, p=self.dropout, training=self.training)
        return self.up_proj(down) * scale


class DaptBlock(nn.Module):  # l.133-171
    def __init__(self, dim: int, heads: int, rank: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = DaptMlp(dim, 4 * dim)
        self.attn = DaptAttention(dim, heads)
        self.Adapter_MLP = DaptAdapter(dim, rank)
        self.non_linear_func = nn.GELU()
        self.tfts_gamma_1, self.tfts_beta_1 = init_tfts(dim)
        self.tfts_gamma_2, self.tfts_beta_2 = init_tfts(dim)
        self.tfts_gamma_3, self.tfts_beta_3 = init_tfts(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(apply_tfts(self.norm1(x), self.tfts_gamma_1, self.tfts_beta_1))
        h = x
        x = apply_tfts(self.norm2(x), self.tfts_gamma_2, self.tfts_beta_2)
        adapter_mlp = self.Adapter_MLP(x)
        x = self.mlp(x) + adapter_mlp
        x = h + x
        adapter_prompt = self.non_linear_func(adapter_mlp).mean(dim=1, keepdim=True)
        adapter_prompt = apply_tfts(adapter_prompt, self.tfts_gamma_3, self.tfts_beta_3)
        return torch.cat([x[:, 0:1, :], adapter_prompt, x[:, 1:, :]], dim=1)


class DaptClassifier(_Backbone):  # PointTransformer_DAPT, l.230-422
    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        hidden: float,
        classes: int,
        rank: int,
        class_token: str,
        prompt_token: str,
        patch_token: str,
    ):
        super().__init__(dim, depth, heads, hidden)
        self.blocks = nn.Module()  # TransformerEncoder
        self.blocks.blocks = nn.ModuleList(DaptBlock(dim, heads, rank) for _ in range(depth))
        self.class_token, self.prompt_token, self.patch_token = class_token, prompt_token, patch_token
        channels = sum(t != "None" for t in (class_token, prompt_token, patch_token))
        self.cls_head_finetune = cls_head(dim * channels, classes)
        self.tfts_gamma_1, self.tfts_beta_1 = init_tfts(dim)
        self.tfts_gamma_2, self.tfts_beta_2 = init_tfts(dim)

    def forward(self, neighborhood: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        group_input_tokens = apply_tfts(self.encoder(neighborhood), self.tfts_gamma_1, self.tfts_beta_1)
        b, num_group = group_input_tokens.shape[:2]
        x = torch.cat((self.cls_token.expand(b, -1, -1), group_input_tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(b, -1, -1), self.pos_embed(center)), dim=1)
        x = x + pos
        for block in self.blocks.blocks:
            x = block(x)
        x = apply_tfts(self.norm(x), self.tfts_gamma_2, self.tfts_beta_2)
        parts = []
        if self.class_token != "None":
            parts.append(x[:, 0])
        if self.prompt_token == "max":
            parts.append(x[:, 1:-num_group].max(dim=1)[0])
        elif self.prompt_token == "mean":
            parts.append(x[:, 1:-num_group].mean(dim=1))
        if self.patch_token == "max":
            parts.append(x[:, -num_group:].max(dim=1)[0])
        return self.cls_head_finetune(torch.cat(parts, dim=-1))


def dapt_trainable(model: nn.Module) -> set[str]:
    """DAPT's `dapt` optimiser part (tools/builder.py l.53-60): names containing `cls`, `tfts` or `Adapter`."""
    return {n for n, _ in model.named_parameters() if "cls" in n or "tfts" in n or "Adapter" in n}


# PointGST: jerryfeng2003/PointGST @7fbe92f, models/PGST.py, models/PointTransformer.py, models/z_order.py


def get_laplacian(adj_matrix: torch.Tensor) -> torch.Tensor:
    D = torch.sum(adj_matrix, dim=-1)
    D_inv_sqrt = torch.diag_embed(torch.rsqrt(D + 1e-6))
    return torch.eye(adj_matrix.size(-1), device=adj_matrix.device) - D_inv_sqrt @ adj_matrix @ D_inv_sqrt


def get_basis(center: torch.Tensor) -> torch.Tensor:
    L = torch.cdist(center, center)
    L = 1 / (L / torch.min(L[L > 0], dim=-1, keepdim=True).values + torch.eye(L.size(-1)).unsqueeze(0))
    L = get_laplacian(L)
    _, U = torch.linalg.eigh(L)
    return U


def sort(pts: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(pts, dim=1, index=idx.unsqueeze(-1).expand(-1, -1, pts.size(-1)))


def _lut_xyz2key(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, depth: int) -> torch.Tensor:
    key = torch.zeros_like(x)
    for i in range(depth):
        mask = 1 << i
        key = key | ((x & mask) << (2 * i + 2)) | ((y & mask) << (2 * i + 1)) | ((z & mask) << (2 * i + 0))
    return key


_R256, _ZERO = torch.arange(256, dtype=torch.int64), torch.zeros(256, dtype=torch.int64)
_EX, _EY, _EZ = (
    _lut_xyz2key(_R256, _ZERO, _ZERO, 8),
    _lut_xyz2key(_ZERO, _R256, _ZERO, 8),
    _lut_xyz2key(_ZERO, _ZERO, _R256, 8),
)


def xyz2key(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, depth: int = 16) -> torch.Tensor:
    """z_order.py l.66-100: through the 8-bit lookup tables."""
    x, y, z = x.long(), y.long(), z.long()
    mask = 255 if depth > 8 else (1 << depth) - 1
    key = _EX[x & mask] | _EY[y & mask] | _EZ[z & mask]
    if depth > 8:
        mask = (1 << (depth - 8)) - 1
        key16 = _EX[(x >> 8) & mask] | _EY[(y >> 8) & mask] | _EZ[(z >> 8) & mask]
        key = key16 << 24 | key
    return key


class PCSA(nn.Module):  # PGST.py l.44-101
    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.rank = rank
        self.norm_ly1, self.norm_ly2 = nn.LayerNorm(rank), nn.LayerNorm(rank)
        self.act = nn.SiLU()
        self.down, self.up = nn.Linear(dim, rank), nn.Linear(rank, dim)
        self.scale = 1.0
        self.adapt1 = nn.Linear(rank, rank)

    def forward(self, input, U, sub_U, idx):
        h = self.down(input)
        B0, group_num, group_size, _ = sub_U.shape
        G0 = group_num * group_size
        x = h[:, -G0:, :]
        h = self.act(h)
        sub_x0 = sort(x, idx[0]).reshape(B0, group_num, group_size, self.rank)
        x_f = U @ x
        h_f = x_f
        x_f = self.norm_ly1(x_f)
        x_f = h_f + self.act(self.adapt1(x_f))
        x = U.transpose(-2, -1) @ x_f
        sub_x_f0 = sub_U @ sub_x0
        sub_h_f0 = sub_x_f0
        sub_x_f0 = self.norm_ly2(sub_x_f0)
        sub_x_f0 = sub_h_f0 + self.act(self.adapt1(sub_x_f0))
        sub_x0 = sub_U.transpose(-2, -1) @ sub_x_f0
        sub_x0 = sort(sub_x0.reshape(B0, G0, self.rank), idx[1])
        x = x + sub_x0
        h[:, -G0:, :] = x + h[:, -G0:, :]
        return self.up(h) * self.scale


class GstBlock(Block):  # PointTransformer.py l.131-156
    def __init__(self, dim: int, heads: int, rank: int):
        super().__init__(dim, heads)
        self.gft_adapter = PCSA(dim, rank)

    def forward(self, x, U, sub_U, idx):
        b, n, c = x.shape
        y = self.norm1(x)
        qkv = self.attn.qkv(y).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.attn.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c))
        t = self.gft_adapter(x, U, sub_U, idx)
        x = x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + t


class PointGstClassifier(_Backbone):  # PointTransformer_PGST, l.179-331
    def __init__(self, dim: int, depth: int, heads: int, hidden: float, classes: int, rank: int, local: int):
        super().__init__(dim, depth, heads, hidden)
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList(GstBlock(dim, heads, rank) for _ in range(depth))
        self.cls_head_finetune = cls_head(2 * dim, classes)
        self.local = local

    def forward(self, neighborhood: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        U = get_basis(center)
        B, G, _ = center.shape
        c = center * 100
        key = xyz2key(c[:, :, 1], c[:, :, 0], c[:, :, 2])
        _, idx0 = torch.sort(key)
        _, idx1 = torch.sort(idx0)
        sub_center = sort(center, idx0)
        group_num = G // self.local
        sub_U = get_basis(sub_center.reshape(B * group_num, self.local, 3)).reshape(
            B, group_num, self.local, self.local
        )
        group_input_tokens = self.encoder(neighborhood)
        x = torch.cat((self.cls_token.expand(B, -1, -1), group_input_tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(B, -1, -1), self.pos_embed(center)), dim=1)
        for block in self.blocks.blocks:
            x = block(x + pos, U, sub_U, [idx0, idx1])
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1))


def adapt_trainable(model: nn.Module) -> set[str]:
    """PointGST's `adapt` optimiser part (tools/builder.py l.138-146): names containing `adapt` or `cls`."""
    return {n for n, _ in model.named_parameters() if "adapt" in n or "cls" in n}


# PPT: zsc000722/PPT @8f87fb8, models/PPT.py


class PptBlock(Block):  # l.125-144
    def forward(self, x, prompt_mlp):
        b, n, c = x.shape
        qkv = (
            self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.attn.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c))
        h_x = prompt_mlp(x)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x)))) + h_x


def _prompt_mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, 256), nn.GELU(), nn.Linear(256, dim))


class PptClassifier(_Backbone):  # PointTransformer, l.229-362
    def __init__(self, dim: int, depth: int, heads: int, hidden: float, classes: int):
        super().__init__(dim, depth, heads, hidden)
        self.blocks = nn.Module()  # TransformerEncoder, l.147-193
        self.blocks.blocks = nn.ModuleList(PptBlock(dim, heads) for _ in range(depth))
        self.blocks.prompt_mlp, self.blocks.prompt_pos_mlp = _prompt_mlp(dim), _prompt_mlp(dim)
        self.blocks.prompt_all_mlp = _prompt_mlp(dim)
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(dim * 3, 256),
            nn.BatchNorm1d(256),
            nn.GELU(),
            nn.Dropout(0.5),
            nn.Linear(256, 256),
            nn.BatchNorm1d(256),
            nn.GELU(),
            nn.Dropout(0.5),
            nn.Linear(256, classes),
        )

    def forward(self, neighborhood, center, neighbor_center, center_center):
        group_input_tokens = self.encoder(neighborhood)
        center_input_tokens = self.encoder(neighbor_center)
        b, num_group = group_input_tokens.shape[:2]
        num_extra = center_input_tokens.shape[1]
        x = torch.cat((self.cls_token.expand(b, -1, -1), group_input_tokens, center_input_tokens), dim=1)
        pos = torch.cat(
            (self.cls_pos.expand(b, -1, -1), self.pos_embed(center), self.pos_embed(center_center)), dim=1
        )
        for block in self.blocks.blocks:
            x = x + pos
            x[:, 1 : num_group + 1] = x[:, 1 : num_group + 1] + self.blocks.prompt_mlp(
                x[:, 1 : num_group + 1]
            )
            x[:, -num_extra:] = x[:, -num_extra:] + self.blocks.prompt_pos_mlp(x[:, -num_extra:])
            x = block(x, self.blocks.prompt_all_mlp)
        x = self.norm(x)
        concat_f = torch.cat([x[:, 0], x[:, 1 : 1 + num_group].mean(1), x[:, -num_extra:].mean(1)], dim=-1)
        return self.cls_head_finetune(concat_f)


def ppt_trainable(model: nn.Module) -> set[str]:
    """PPT's `type: pos` rule (tools/runner_finetune.py l.46-52)."""
    keys = ("cls", "prompt", "first_conv", "pos_embed")
    return {n for n, _ in model.named_parameters() if any(k in n for k in keys)}
