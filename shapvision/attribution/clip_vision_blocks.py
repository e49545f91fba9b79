"""The vision tower of an open_clip model opened block by block, for the CLIP explainers that recompute
its last blocks (MaskCLIP, CLIP Surgery, Grad-ECLIP) or intercept one (M2IB).

Two towers, the ones :class:`~shapvision.models.clip_towers.CLIPTowers` supports:
- timm's ``Eva`` trunk (``EVA02-B-16``): q / k / v projections, rotary embedding on the patch tokens'
  queries and keys (never on values, never on CLS), ``attn.norm`` before ``attn.proj``, SwiGLU MLP;
- open_clip's own ``VisionTransformer`` (``ViT-B-16``, the tiny digits CLIP): ``nn.MultiheadAttention``
  with one in-projection and ``out_proj``.
Every reference implementation of these methods is written for OpenAI's CLIP ViT-B/16 (the second
kind); their mapping onto EVA02 is ours (shared/table_methods.md, section 3): a value path goes through
``attn.norm`` then ``attn.proj``, exactly as the attention output does in the model.
The explainers read the CLS token, so a tower run without it (SVO-CLIP's ``drop_prefix_tokens``) is
refused, as the attention methods refuse it.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import apply_rot_embed_cat

from shapvision.attribution.base import UnsupportedBackbone
from shapvision.models.open_clip_vit import OpenCLIPViTBackbone
from shapvision.models.timm_transformer import TimmTransformerBackbone


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, T, C)`` -> ``(B, heads, T, C / heads)``."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, T, d)`` -> ``(B, T, heads * d)``."""
    return x.transpose(1, 2).flatten(2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Softmax attention over the last two dimensions, written out (no fused kernel: gradients and
    the probabilities are needed)."""
    return ((q * scale) @ k.transpose(-2, -1)).softmax(-1) @ v


class VisionTowerBlocks:
    """``embed`` -> ``run`` (whole blocks) / the parts of a block -> ``token_embeddings``, ``cls_embedding``."""

    def __init__(self, model, method: str):
        module = getattr(model, "module", None)
        towers = getattr(module, "towers", None)
        backbone = getattr(towers, "backbone", None)
        if isinstance(backbone, TimmTransformerBackbone) and backbone.is_eva:
            self.eva = True
            self.blocks = list(backbone.model.blocks)
        elif isinstance(backbone, OpenCLIPViTBackbone):
            self.eva = False
            self.blocks = list(backbone.visual.transformer.resblocks)
        else:
            found = type(backbone or module).__name__
            raise UnsupportedBackbone(
                f"method {method!r} explains the image tower of an open_clip image-text model (EVA02's timm "
                f"trunk or open_clip's VisionTransformer), but {model.name} has a {found}"
            )
        if backbone.num_prefix_tokens != 1:
            raise UnsupportedBackbone(
                f"method {method!r} reads the CLS token, and {model.name}'s vision tower runs without it "
                "(SVO-CLIP's drop_prefix_tokens); explain a CLIPFineTune or an SVOCLIP trained with keep_cls"
            )
        if self.eva and any(getattr(b.attn, "gate", None) is not None for b in self.blocks):
            raise UnsupportedBackbone(f"method {method!r}: gated Eva attention is not supported")
        self.towers = towers
        self.backbone = backbone
        self.depth = len(self.blocks)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens entering the first block (CLS first) and Eva's rotary table (None for open_clip)."""
        out = self.backbone._embed(images)
        return out if self.eva else (out, None)

    def run(self, x: torch.Tensor, rope, blocks) -> torch.Tensor:
        for block in blocks:
            x = block(x, rope=rope) if self.eva else block(x)
        return x

    def attention_input(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return block.norm1(x) if self.eva else block.ln_1(x)

    def heads(self, block: nn.Module) -> int:
        return block.attn.num_heads

    def scale(self, block: nn.Module) -> float:
        if self.eva:
            return block.attn.scale
        return (block.attn.embed_dim // block.attn.num_heads) ** -0.5

    def queries_keys_values(self, block: nn.Module, h: torch.Tensor, rope, rotate: bool = True):
        """Per-head ``q, k, v`` ``(B, heads, T, d)`` of the normed input ``h``, as the block computes them
        (Eva: q / k norms and, with ``rotate``, the rotary embedding at the patch positions)."""
        heads = self.heads(block)
        attn = block.attn
        if not self.eva:
            q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            return split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)
        if attn.qkv is not None:
            bias = None
            if attn.q_bias is not None:
                bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
            q, k, v = (attn.qkv(h) if bias is None else F.linear(h, attn.qkv.weight, bias)).chunk(
                3, dim=-1
            )
        else:
            q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
        q, k, v = split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if rope is not None and rotate:
            prefix = attn.num_prefix_tokens
            half = getattr(attn, "rotate_half", False)
            q = torch.cat(
                [q[:, :, :prefix], apply_rot_embed_cat(q[:, :, prefix:], rope, half=half)], 2
            )
            k = torch.cat(
                [k[:, :, :prefix], apply_rot_embed_cat(k[:, :, prefix:], rope, half=half)], 2
            )
        return q.type_as(v), k.type_as(v), v

    def attention_output(self, block: nn.Module, o: torch.Tensor) -> torch.Tensor:
        """The attention's output projection of merged heads ``(B, T, C)`` (Eva: its norm first)."""
        if self.eva:
            return block.attn.proj(block.attn.norm(o))
        return F.linear(o, block.attn.out_proj.weight, block.attn.out_proj.bias)

    def add_attention(self, block: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The attention residual: ``x + layer_scale(out)``."""
        if self.eva:
            return x + (out if block.gamma_1 is None else block.gamma_1 * out)
        return x + block.ls_1(out)

    def add_mlp(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.eva:
            out = block.mlp(block.norm2(x))
            return x + (out if block.gamma_2 is None else block.gamma_2 * out)
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    def block_forward(self, block: nn.Module, x: torch.Tensor, rope) -> torch.Tensor:
        """One block from its parts (equal to ``block(x)``: the parts are checked against it in the tests)."""
        q, k, v = self.queries_keys_values(block, self.attention_input(block, x), rope)
        out = self.attention_output(block, merge_heads(attend(q, k, v, self.scale(block))))
        return self.add_mlp(block, self.add_attention(block, x, out))

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.model.norm(x) if self.eva else self.backbone.visual.ln_post(x)

    def token_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, T, D)`` in the joint space of every token leaving the last block."""
        return F.normalize(self.towers.project(self.final_norm(x)), dim=-1)

    def cls_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The unit image embedding ``(B, D)`` (CLIP's ``encode_image``) from the tokens leaving the last block."""
        cls = self.final_norm(x)[:, 0]
        if self.eva:
            cls = self.backbone.model.fc_norm(cls)
        return F.normalize(self.towers.project(cls), dim=-1)


def target_captions(model, target: torch.Tensor) -> torch.Tensor:
    """The unit text embedding ``(B, D)`` of each image's target caption (set by ``set_captions``)."""
    text = model.network.text
    if text is None:
        raise RuntimeError("set_captions must be called before an image-caption pair is explained")
    return text[target]
