# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The original computation, kept here as the benchmark's baseline (written from the published description of the
model, not from the authors' code): a Microsoft-style Swin (fused qkv, explicit window attention with the relative
position bias and the shift mask added to eager softmax attention), the description re-weighting with a per-image
Python loop that materializes the (tags, descriptions, 512) product, and the BERT-style decoder (query/key/value
modules, `transpose_for_scores`, an extended attention mask of zeros, eager attention, dropout modules). It shares the
weights of the model under test (only the fused qkv are new tensors) and runs in that model's dtype.

`load_authors_model` builds the authors' own `RAM_plus` from a checkout given with `--reference-src`."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from transformers_ramplus import RamPlusModel


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, channels)


def _window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    batch = int(windows.shape[0] / (height * width / window / window))
    x = windows.view(batch, height // window, width // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


class OriginalStyleSwinBlock(nn.Module):
    """One Swin block as the original computes it: fused qkv, eager window attention, explicit shift mask."""

    def __init__(self, block, resolution: int, window: int, shift: int, num_heads: int):
        super().__init__()
        attention = block.attention
        self.num_heads = num_heads
        self.resolution = resolution
        if resolution <= window:  # the window covers the whole map: no shift
            window, shift = resolution, 0
        self.window, self.shift = window, shift
        dim = attention.q_proj.weight.shape[0]
        self.scale = (dim // num_heads) ** -0.5
        self.norm1, self.norm2 = block.layernorm_before, block.layernorm_after
        self.qkv = nn.Linear(dim, 3 * dim)
        with torch.no_grad():  # the original stores q, k, v as one matrix
            self.qkv.weight.copy_(torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]))
            self.qkv.bias.copy_(torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias]))
        self.proj = attention.o_proj
        self.bias_table = attention.relative_position_bias.relative_position_bias_table
        self.register_buffer("bias_index", _relative_position_index(window), persistent=False)
        self.fc1, self.fc2 = block.mlp.fc1, block.mlp.fc2
        if shift > 0:
            region = torch.zeros(1, resolution, resolution, 1)
            bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            label = 0
            for rows in bounds:
                for cols in bounds:
                    region[:, rows, cols, :] = label
                    label += 1
            windows = _window_partition(region, window).view(-1, window * window)
            mask = windows.unsqueeze(1) - windows.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
            self.register_buffer("shift_mask", mask, persistent=False)
        else:
            self.shift_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        side, window = self.resolution, self.window
        shortcut = x
        x = self.norm1(x).view(batch, side, side, channels)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = _window_partition(x, window).view(-1, window * window, channels)
        num_windows_total, tokens, _ = windows.shape
        qkv = self.qkv(windows).reshape(num_windows_total, tokens, 3, self.num_heads, channels // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        attn = (query * self.scale) @ key.transpose(-2, -1)
        bias = self.bias_table[self.bias_index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if self.shift_mask is not None:
            per_image = self.shift_mask.shape[0]
            attn = attn.view(num_windows_total // per_image, per_image, self.num_heads, tokens, tokens)
            attn = (attn + self.shift_mask.unsqueeze(1).unsqueeze(0)).view(-1, self.num_heads, tokens, tokens)
        attn = attn.softmax(dim=-1)
        out = (attn @ value).transpose(1, 2).reshape(num_windows_total, tokens, channels)
        out = self.proj(out).view(-1, window, window, channels)
        x = _window_reverse(out, window, side, side)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(batch, side * side, channels)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class OriginalStylePatchMerging(nn.Module):
    def __init__(self, downsample, resolution: int):
        super().__init__()
        self.norm, self.reduction, self.resolution = downsample.norm, downsample.reduction, resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        x = x.view(batch, self.resolution, self.resolution, channels)
        x0, x1 = x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :]
        x2, x3 = x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(batch, -1, 4 * channels)
        return self.reduction(self.norm(x))


class BertStyleTaggingLayer(nn.Module):
    """The original decoder layer: BERT cross-attention modules (no self-attention) and feed-forward."""

    def __init__(self, layer, num_heads: int):
        super().__init__()
        attention = layer.cross_attention
        self.num_heads = num_heads
        self.head_size = attention.q_proj.weight.shape[0] // num_heads
        self.query, self.key, self.value = attention.q_proj, attention.k_proj, attention.v_proj
        self.attention_dropout = nn.Dropout(0.1)
        self.attention_output_dense, self.attention_output_norm = attention.o_proj, layer.cross_attention_layer_norm
        self.intermediate_dense = layer.fc1
        self.output_dense, self.output_norm = layer.fc2, layer.final_layer_norm
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size()[:-1] + (self.num_heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden: torch.Tensor, encoder_hidden: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        query = self.transpose_for_scores(self.query(hidden))
        key = self.transpose_for_scores(self.key(encoder_hidden))
        value = self.transpose_for_scores(self.value(encoder_hidden))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        probs = self.attention_dropout(nn.functional.softmax(scores + extended_mask, dim=-1))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (self.num_heads * self.head_size,))
        attention_out = self.attention_output_norm(self.dropout(self.attention_output_dense(context)) + hidden)
        intermediate = F.gelu(self.intermediate_dense(attention_out))
        return self.output_norm(self.dropout(self.output_dense(intermediate)) + attention_out)


class OriginalStyleRamPlus(nn.Module):
    """The original computation order, fp32, sharing the weights of `model` (only the fused qkv are new tensors)."""

    def __init__(self, model: RamPlusModel):
        super().__init__()
        config, vision = model.config, model.config.vision_config
        swin = model.vision_model
        patch = vision.patch_size if isinstance(vision.patch_size, int) else vision.patch_size[0]
        self.patch_proj, self.patch_norm = swin.embeddings.patch_embeddings.projection, swin.embeddings.norm
        resolution = vision.image_size // patch
        stages = []
        for index, stage in enumerate(swin.encoder.layers):
            blocks = [
                OriginalStyleSwinBlock(
                    block, resolution, vision.window_size, 0 if j % 2 == 0 else vision.window_size // 2,
                    vision.num_heads[index],
                )
                for j, block in enumerate(stage.blocks)
            ]
            merge = OriginalStylePatchMerging(stage.downsample, resolution) if stage.downsample is not None else None
            stages.append(nn.ModuleDict({"blocks": nn.ModuleList(blocks), **({"merge": merge} if merge else {})}))
            if merge is not None:
                resolution //= 2
        self.stages = nn.ModuleList(stages)
        self.final_norm = swin.layernorm
        self.image_proj = model.image_projection
        self.label_embed = model.label_embeds  # (C*D, T), shared
        self.descriptions_per_tag = config.descriptions_per_tag
        self.description_mask = model.builtin_description_mask()
        self.reweight_scale = model.reweight_scale
        self.wordvec_proj = model.query_projection
        self.layers = nn.ModuleList(
            [BertStyleTaggingLayer(layer, config.num_attention_heads) for layer in model.decoder.layers]
        )
        self.fc = model.classifier

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_proj(pixel_values).flatten(2).transpose(1, 2))
        for stage in self.stages:
            for block in stage["blocks"]:
                x = block(x)
            if "merge" in stage:
                x = stage["merge"](x)
        x = self.final_norm(x)
        pooled = x.transpose(1, 2).mean(dim=-1, keepdim=True).transpose(1, 2)  # average pool over the tokens
        return self.image_proj(torch.cat([pooled, x], dim=1))

    def tag_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        batch = image_embeds.shape[0]
        width = self.label_embed.shape[-1]
        per_tag = self.descriptions_per_tag
        cls = F.normalize(image_embeds[:, 0, :], dim=-1)
        similarity = (self.reweight_scale.exp() * cls @ self.label_embed.t()).view(batch, -1, per_tag)
        if self.description_mask is not None:
            similarity = similarity.masked_fill(~self.description_mask, torch.finfo(similarity.dtype).min)
        weights = F.softmax(similarity, dim=2)
        num_tags = similarity.shape[1]
        reweighted = torch.empty(batch, num_tags, width, dtype=weights.dtype)
        for i in range(batch):  # the original loops over the images, materializing (C, D, T) each time
            descriptions = self.label_embed.view(-1, per_tag, width)
            product = weights[i].unsqueeze(-1) * descriptions
            reweighted[i] = product.sum(dim=1)
        hidden = F.relu(self.wordvec_proj(reweighted))
        attention_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long)
        extended_mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, image_embeds, extended_mask)
        return self.fc(hidden).squeeze(-1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tag_logits(self.image_embeds(pixel_values))


def baseline_int8_naive(baseline: OriginalStyleRamPlus) -> nn.Module:
    """The naive int8 route: PyTorch's (deprecated) `torch.ao.quantization.quantize_dynamic` on every `nn.Linear` of
    the baseline (fp32 activations, per-tensor dynamic quantization, the default engine), on a copy."""
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(baseline), {nn.Linear}, dtype=torch.qint8)


# ------------------------------------------------------------------------------------------ the authors' own code
AUTHORS_MODULE = Path("ram") / "models" / "ram_plus.py"


def check_reference_src(path) -> Path:
    """A checkout of the authors' repository (the folder holding `ram/models/ram_plus.py`), or a ValueError."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"--reference-src {str(path)!r} is not a folder (give a checkout of the authors' repository)")
    if not (path / AUTHORS_MODULE).is_file():
        raise ValueError(
            f"--reference-src {str(path)!r} holds no {AUTHORS_MODULE.as_posix()}: not a checkout of the authors' "
            "recognize-anything repository"
        )
    return path.resolve()


def load_authors_model(path, image_size: int = 384):
    """The authors' `RAM_plus` (Swin-L) from the checkout at `path`, random weights, eval mode, fp32. Its own
    dependencies (and the files its constructor reads) must be installed; any failure is reported with its cause."""
    root = check_reference_src(path)
    sys.path.insert(0, str(root))
    try:
        from ram.models.ram_plus import RAM_plus  # noqa: PLC0415  (the checkout given by the user)

        model = RAM_plus(image_size=image_size, vit="swin_l")
    except Exception as error:  # their imports and constructor: report whatever stops them
        raise RuntimeError(f"cannot build the authors' RAM_plus from {str(root)!r}: {type(error).__name__}: {error}") from error
    finally:
        sys.path.remove(str(root))
    return model.eval()


def authors_weights_into(model: RamPlusModel, authors_model) -> None:
    """Give `model` the weights of `authors_model` (through the package's checkpoint conversion), so that both
    compute with the same numbers."""
    from transformers_ramplus.models.ram_plus.convert_ram_plus import convert_state_dict

    state, _ = convert_state_dict(authors_model.state_dict(), model.config)
    model.load_state_dict(state, strict=False)
