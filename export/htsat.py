"""HTSAT (a Swin transformer over a log-mel image) as Mellow uses it, for export only.

Built from a checkpoint's tensors alone: sizes come from the weights (embedding width from the
patch convolution, depth of each stage from its block count, heads from the relative-position
tables, classes from the token-semantic convolution); nothing is read by model name. Eval mode
only: no dropout, stochastic depth or SpecAugment.

    input_features (B, T, M)  power-dB mel, T <= 4 * image side / ... (Mellow: 1001 x 64)
      -> batch norm per mel bin, bicubic stretch of time to img * freq_ratio frames
      -> image (B, 1, img, img): freq_ratio time chunks stacked along the mel axis
      -> patch embedding, Swin stages (window attention, shifted every other block, patch merging)
      -> clip latent (B, C) and token-semantic frame logits (B, frames, classes)
    MellowAudioEncoder returns (B, 1 + frames, 768): [latent ; c2l(sigmoid(frame logits))].

The reference repeats each of the `frames` frame vectors `interp` times before c2l and the
projection; both act per frame, so computing on the distinct frames and repeating afterwards
(MellowAdapter) gives the same numbers with a 32x smaller matmul.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


def window_relative_index(w: int) -> torch.Tensor:
    """(w*w, w*w) index into the (2w-1)^2 relative-position table, as Swin defines it."""
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)  # (2, w*w)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)  # (w*w, w*w, 2)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def shifted_window_mask(side: int, w: int, shift: int) -> torch.Tensor:
    """(n_windows, w*w, w*w) additive mask: -100 between tokens that the cyclic shift brought
    together from different image regions."""
    region = torch.zeros(side, side)
    edges = (slice(0, -w), slice(-w, -shift), slice(-shift, None))
    for i, h in enumerate(edges):
        for j, v in enumerate(edges):
            region[h, v] = 3 * i + j
    win = region.view(side // w, w, side // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)  # (nW, w*w)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, side: int, window: int, shift: int) -> None:
        super().__init__()
        if side <= window:  # the window covers the whole map: no partition, no shift
            window, shift = side, 0
        self.dim, self.heads, self.side, self.window, self.shift = dim, heads, side, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.register_buffer("rel_index", window_relative_index(window), persistent=False)
        if shift:
            self.register_buffer("mask", shifted_window_mask(side, window, shift), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        s, w, h = self.side, self.window, self.heads
        y = self.norm1(x).view(B, s, s, C)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = y.view(B, s // w, w, s // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)  # (B*nW, N, C)
        n_win = (s // w) ** 2
        q, k, v = self.qkv(y).view(-1, w * w, 3, h, C // h).permute(2, 0, 3, 1, 4)  # 3 x (B*nW, h, N, Dh)
        attn = (q * (C // h) ** -0.5) @ k.transpose(-2, -1)  # (B*nW, h, N, N)
        bias = self.bias_table[self.rel_index.reshape(-1)].view(w * w, w * w, h).permute(2, 0, 1)
        attn = attn + bias[None]
        if self.shift:
            attn = (attn.view(B, n_win, h, w * w, w * w) + self.mask[None, :, None]).view(-1, h, w * w, w * w)
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, w * w, C)
        y = self.proj(y).view(B, s // w, s // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, s, s, C)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y.reshape(B, L, C)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PatchMerge(nn.Module):
    """2x2 neighbours concatenated (order: (0,0), (1,0), (0,1), (1,1)) -> norm -> Linear(4C, 2C)."""

    def __init__(self, dim: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, C = x.shape
        x = x.view(B, self.side, self.side, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class HTSAT(nn.Module):
    def __init__(
        self,
        mel_bins: int,
        frames: int,
        img: int,
        patch: int,
        dim: int,
        depths: list[int],
        heads: list[int],
        window: int,
        classes: int,
    ) -> None:
        super().__init__()
        self.freq_ratio = img // mel_bins
        self.img, self.patch = img, patch
        self.bn0 = nn.BatchNorm1d(mel_bins)
        # bicubic (align_corners) stretch of the time axis is linear: one fixed matrix, taken
        # from torch's own interpolation of an identity
        eye = torch.eye(frames)[None, None]
        stretch = F.interpolate(eye, (img * self.freq_ratio, frames), mode="bicubic", align_corners=True)[0, 0]
        self.register_buffer("stretch", stretch, persistent=False)  # (img * freq_ratio, frames)
        self.patch_proj = nn.Conv2d(1, dim, patch, patch)
        self.patch_norm = nn.LayerNorm(dim)
        self.stages = nn.ModuleList()
        side = img // patch
        for i, (depth, h) in enumerate(zip(depths, heads)):
            d = dim * 2**i
            blocks = [SwinBlock(d, h, side, window, 0 if j % 2 == 0 else window // 2) for j in range(depth)]
            stage = nn.ModuleDict({"blocks": nn.ModuleList(blocks)})
            if i < len(depths) - 1:
                stage["merge"] = PatchMerge(d, side)
                side //= 2
            self.stages.append(stage)
        self.final_side = side
        self.num_features = dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.tscam_conv = nn.Conv2d(self.num_features, classes, (side // self.freq_ratio, 3), padding=(0, 1))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, M) -> clip latent (B, C), frame logits (B, frames, classes)."""
        B, _, M = feats.shape
        x = self.bn0(feats.transpose(1, 2))  # (B, M, T)
        x = x @ self.stretch.T  # (B, M, r * img)
        r, img = self.freq_ratio, self.img
        x = x.view(B, M, r, img).permute(0, 2, 1, 3).reshape(B, 1, r * M, img)  # (B, 1, img, img)
        x = self.patch_norm(self.patch_proj(x).flatten(2).transpose(1, 2))  # (B, N, dim)
        for stage in self.stages:
            for block in stage["blocks"]:
                x = block(x)
            if "merge" in stage:
                x = stage["merge"](x)
        x = self.norm(x)  # (B, s*s, C)
        s, C = self.final_side, x.shape[-1]
        x = x.transpose(1, 2).reshape(B, C, s, s)
        cf = s // r  # mel rows per time chunk
        x = x.reshape(B, C, r, cf, s).permute(0, 1, 3, 2, 4).reshape(B, C, cf, r * s)  # time chunks side by side
        latent = x.flatten(2).mean(-1)  # (B, C)
        frames = self.tscam_conv(x).flatten(2).transpose(1, 2)  # (B, r*s, classes)
        return latent, frames


class MellowAudioEncoder(nn.Module):
    """input_features (B, T, M) -> hidden (B, 1 + frames, d): [clip latent ; c2l(sigmoid(frame logits))]."""

    def __init__(self, htsat: HTSAT, c2l: nn.Linear) -> None:
        super().__init__()
        self.htsat, self.c2l = htsat, c2l

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        latent, frames = self.htsat(input_features)
        return torch.cat([latent[:, None], self.c2l(torch.sigmoid(frames))], 1)


class MellowAdapter(nn.Module):
    """Mellow's projection (Linear -> GELU -> Linear, residual, LayerNorm) and its pooling: the
    latent stays one token; the frames, each standing for `interp` repeated frames in the
    reference, are average-pooled by `pool`, i.e. each repeated interp // pool times."""

    def __init__(self, d_in: int, d_out: int, interp: int, pool: int) -> None:
        super().__init__()
        if interp % pool:
            raise ValueError(f"frame repeat {interp} is not a multiple of the pooling {pool}")
        self.repeat = interp // pool
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(hidden)
        x = self.layer_norm(e1 + self.linear2(F.gelu(e1)))  # (B, 1 + frames, D)
        return torch.cat([x[:, :1], x[:, 1:].repeat_interleave(self.repeat, dim=1)], 1)  # (B, 1 + frames*rep, D)


# checkpoint names (after the audio encoder's prefix) -> this module's
BLOCK, NEW_BLOCK = r"^htsat\.layers\.(\d+)\.blocks\.(\d+)\.", r"htsat.stages.\1.blocks.\2."
RENAMES = [
    (r"^htsat\.patch_embed\.proj\.", "htsat.patch_proj."),
    (r"^htsat\.patch_embed\.norm\.", "htsat.patch_norm."),
    (BLOCK + r"attn\.relative_position_bias_table", NEW_BLOCK + "bias_table"),
    (BLOCK + r"(?:attn|mlp)\.(qkv|proj|fc1|fc2)\.", NEW_BLOCK + r"\3."),
    (BLOCK + r"(norm1|norm2)\.", NEW_BLOCK + r"\3."),
    (r"^htsat\.layers\.(\d+)\.downsample\.", r"htsat.stages.\1.merge."),
    (r"^htsat\.(bn0|norm|tscam_conv)\.", r"htsat.\1."),
    (r"^c2l\.", "c2l."),
]
# buffers Swin computes from its sizes, and what the eval path never uses (the class head, the
# front end's fixed STFT/mel matrices: the runtime computes features in numpy)
DERIVED = re.compile(r"relative_position_index|attn_mask|num_batches_tracked|^htsat\.head\.|_extractor\.")


def rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in state.items():
        if DERIVED.search(name):
            continue
        for pattern, repl in RENAMES:
            new, n = re.subn(pattern, repl, name)
            if n:
                out[new] = t
                break
        else:
            raise ValueError(f"unexpected audio encoder tensor {name!r} in the checkpoint")
    return out


def htsat_from_state(state: dict[str, torch.Tensor], mel_bins: int, frames: int, img: int) -> MellowAudioEncoder:
    """Build the encoder from the checkpoint tensors under `audio_encoder.base.` (prefix removed)."""
    w = rename(state)
    stages = sorted({int(m.group(1)) for k in w if (m := re.match(r"htsat\.stages\.(\d+)\.", k))})
    depths = [len({k.split(".")[4] for k in w if k.startswith(f"htsat.stages.{i}.blocks.")}) for i in stages]
    heads = [w[f"htsat.stages.{i}.blocks.0.bias_table"].shape[1] for i in stages]
    window = (int(w["htsat.stages.0.blocks.0.bias_table"].shape[0] ** 0.5) + 1) // 2
    proj = w["htsat.patch_proj.weight"]  # (dim, 1, patch, patch)
    classes = w["htsat.tscam_conv.weight"].shape[0]
    htsat = HTSAT(mel_bins, frames, img, proj.shape[-1], proj.shape[0], depths, heads, window, classes)
    c2l = nn.Linear(*w["c2l.weight"].shape[::-1])
    model = MellowAudioEncoder(htsat, c2l)
    missing, unexpected = model.load_state_dict(w, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"audio encoder tensors do not fit HTSAT: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()
