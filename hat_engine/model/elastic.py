"""Elastic ops of the SuperTransformer (HAT, Wang et al., ACL 2020, Sec. 3.1; Once-for-All style).

Each op owns full-size weights and computes with their leading slice `weight[:out, :in]`. Input widths are
read from the input tensor; output widths and head counts are explicit arguments, so an op holds no active
state. `extract(...)` returns a plain module (nn.Linear, nn.LayerNorm, `Attention`) with copied weights that
shares no storage with the supernet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hat_engine.model.transformer import Attention, merge_heads, split_heads


def _copy(t: Tensor) -> nn.Parameter:
    """A contiguous copy of a (possibly sliced) weight, detached from the supernet."""
    return nn.Parameter(t.detach().clone().contiguous())


class ElasticLinear(nn.Module):
    """y = x @ W[:out, :in].T + b[:out], with `in` the width of x."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        self.max_in, self.max_out = max_in, max_out
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.empty(max_out)) if bias else None
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, out_dim: int) -> Tensor:
        in_dim = x.shape[-1]
        bias = None if self.bias is None else self.bias[:out_dim]
        return F.linear(x, self.weight[:out_dim, :in_dim], bias)  # (..., out_dim)

    def extract(self, in_dim: int, out_dim: int) -> nn.Linear:
        linear = nn.Linear(in_dim, out_dim, bias=self.bias is not None)
        linear.weight = _copy(self.weight[:out_dim, :in_dim])
        if self.bias is not None:
            linear.bias = _copy(self.bias[:out_dim])
        return linear


class ElasticLayerNorm(nn.Module):
    """LayerNorm over the width of x, with the leading slice of the affine parameters."""

    def __init__(self, max_dim: int, eps: float = 1e-5):
        super().__init__()
        self.max_dim, self.eps = max_dim, eps
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))

    def forward(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)

    def extract(self, dim: int) -> nn.LayerNorm:
        norm = nn.LayerNorm(dim, eps=self.eps)
        norm.weight, norm.bias = _copy(self.weight[:dim]), _copy(self.bias[:dim])
        return norm


class ElasticAttention(nn.Module):
    """Attention whose q/k/v project the active width to the FIXED `qkv_dim`; `heads` sets the head size."""

    def __init__(self, max_q_in: int, max_kv_in: int, qkv_dim: int, max_out: int, dropout: float = 0.0):
        super().__init__()
        self.qkv_dim, self.dropout = qkv_dim, dropout
        self.q_proj = ElasticLinear(max_q_in, qkv_dim)
        self.k_proj = ElasticLinear(max_kv_in, qkv_dim)
        self.v_proj = ElasticLinear(max_kv_in, qkv_dim)
        self.out_proj = ElasticLinear(qkv_dim, max_out)

    def project_kv(self, kv: Tensor, heads: int) -> tuple[Tensor, Tensor]:
        k = split_heads(self.k_proj(kv, self.qkv_dim), heads)  # (B, H, S, d)
        v = split_heads(self.v_proj(kv, self.qkv_dim), heads)  # (B, H, S, d)
        return k, v

    def attend(
        self,
        x: Tensor,
        k: Tensor,
        v: Tensor,
        heads: int,
        out_dim: int,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        q = split_heads(self.q_proj(x, self.qkv_dim), heads)  # (B, H, T, d)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=is_causal)
        return self.out_proj(merge_heads(out), out_dim)  # (B, T, out_dim)

    def forward(
        self,
        x: Tensor,
        kv: Tensor,
        heads: int,
        out_dim: int,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        k, v = self.project_kv(kv, heads)
        return self.attend(x, k, v, heads, out_dim, attn_mask, is_causal)

    def extract(self, q_in: int, kv_in: int, heads: int, out_dim: int) -> Attention:
        attn = Attention(q_in, kv_in, self.qkv_dim, heads, out_dim, self.dropout)
        attn.q_proj = self.q_proj.extract(q_in, self.qkv_dim)
        attn.k_proj = self.k_proj.extract(kv_in, self.qkv_dim)
        attn.v_proj = self.v_proj.extract(kv_in, self.qkv_dim)
        attn.out_proj = self.out_proj.extract(self.qkv_dim, out_dim)
        return attn
