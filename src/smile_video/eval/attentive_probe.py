"""Attentive probing on cached tokens (V-JEPA's frozen evaluation): a learned query cross-attends over all of a
clip's output tokens, then a linear head classifies it.

Why: a linear probe on mean-pooled tokens (VideoMAE's, the paper's Table 16) sees only the average token. Whatever an
encoder knows about *where* and *when* things happen lives in how tokens differ from each other, and a mean over space
and time averages it away: an object moving left and one moving right leave the same mean. An attentive probe reads
the token set (it can weight tokens by content and, through their position-dependent features, by place and time)
while keeping the encoder frozen and the head small, so it still measures the encoder and not the head.

The head (`AttentiveHead`): LayerNorm on the tokens, one query (trunc-normal, std 0.02) attending over them with
`num_heads` heads, a residual MLP on the query (V-JEPA's `AttentivePooler`, depth 1), then LayerNorm + linear to the
classes. Training follows `linear_probe`: one head per learning rate (`ProbeConfig.lrs`, base rates scaled by
batch / 256), the same initial weights and batches for every head, AdamW with per-head parameter groups, cosine
decay; with test tokens, (lr, epoch) chosen on val and the test metrics at that point reported (`select_on_val`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ProbeConfig
from .linear_probe import ProbeResult, classification_metrics, cosine_factor, select_on_val

__all__ = ["AttentiveHead", "train_attentive_probe"]


class AttentiveHead(nn.Module):
    """Tokens (B, L, D) -> logits (B, K): one learned query cross-attends over the tokens, MLP, linear head."""

    def __init__(self, dim: int, num_classes: int, num_heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attentive probe: feature dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Trunc-normal (std 0.02) weights and the query, zero biases, unit LayerNorms; drawn from `generator`."""
        for name, p in self.named_parameters():
            if p.dim() > 1 or name == "query":
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator).clamp_(-2, 2).mul_(0.02))
            elif name.endswith("weight"):  # LayerNorm scale
                nn.init.ones_(p)
            else:
                nn.init.zeros_(p)

    def pool(self, tokens: Tensor) -> Tensor:
        """(B, L, D) -> (B, D): the query after cross-attention and the MLP.

        Computed without projecting every token: with one query, head h's logits are q_h . (W_k,h x + b_k,h) =
        (W_k,h^T q_h) . x + const (the constant cancels in the softmax), and its output is
        sum_l a_l (W_v,h x_l + b_v,h) = W_v,h (sum_l a_l x_l) + b_v,h (the weights sum to 1). Exactly
        `pool_reference`, in O(L D) instead of O(L D^2) a head.
        """
        B, L, D = tokens.shape
        h, dh = self.num_heads, D // self.num_heads
        x = self.norm_kv(tokens)  # (B, L, D)
        w_k, w_v = self.kv.weight[:D].view(h, dh, D), self.kv.weight[D:].view(h, dh, D)  # (h, dh, D)
        q = self.q(self.query[0, 0]).view(h, dh)  # (h, dh)
        u = torch.einsum("hd,hdc->hc", q, w_k) * dh ** -0.5  # (h, D): each head's key-space query
        a = torch.einsum("blc,hc->bhl", x, u).softmax(dim=-1)  # (B, h, L)
        pooled = torch.einsum("bhl,blc->bhc", a, x)  # (B, h, D)
        y = torch.einsum("bhc,hdc->bhd", pooled, w_v).reshape(B, D) + self.kv.bias[D:]  # (B, D)
        z = self.query[:, 0] + self.proj(y)  # (B, D)
        return z + self.mlp(self.norm_mlp(z))

    def pool_reference(self, tokens: Tensor) -> Tensor:
        """`pool` written the usual way (keys and values of every token, scaled dot-product attention)."""
        B, L, D = tokens.shape
        h = self.num_heads
        x = self.norm_kv(tokens)
        k, v = self.kv(x).view(B, L, 2, h, D // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, L, D/h)
        q = self.q(self.query).view(1, 1, h, D // h).transpose(1, 2).expand(B, -1, -1, -1)  # (B, h, 1, D/h)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, 1, D/h)
        z = self.query.expand(B, -1, -1) + self.proj(y.transpose(1, 2).reshape(B, 1, D))  # (B, 1, D)
        z = z + self.mlp(self.norm_mlp(z))
        return z[:, 0]  # (B, D)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm_out(self.pool(tokens)))  # (B, K)


def _check(tokens: Tensor, labels: Tensor, split: str, dim: int | None = None) -> None:
    if tokens.dim() not in (3, 4) or tokens.shape[0] != labels.shape[0]:
        raise ValueError(f"{split} tokens must be (N, L, D) or (N, V, L, D) with N = len(labels); got "
                         f"{tuple(tokens.shape)} and {tuple(labels.shape)}")
    if dim is not None and tokens.shape[-1] != dim:
        raise ValueError(f"{split} tokens have dim {tokens.shape[-1]}, the train tokens {dim}")


def _views(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """(B, V, L, D) -> (B, L, D): a random view per sample (generator) or the views' mean (None); (B, L, D) as is."""
    if x.dim() == 3:
        return x
    if generator is None:
        return x.mean(dim=1)
    choice = torch.randint(x.shape[1], (x.shape[0],), generator=generator).to(x.device)
    return x[torch.arange(x.shape[0], device=x.device), choice]


@torch.no_grad()
def _scores(heads: list[AttentiveHead], x: Tensor, batch: int = 256) -> list[Tensor]:
    """(M, L, D) -> per head logits (M, K)."""
    for h in heads:
        h.eval()
    out = [torch.cat([h(c.float()) for c in x.split(batch)]) for h in heads]
    for h in heads:
        h.train()
    return out


def train_attentive_probe(
    train_tokens: Tensor,
    train_labels: Tensor,
    val_tokens: Tensor,
    val_labels: Tensor,
    cfg: ProbeConfig,
    generator: torch.Generator,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[dict[str, Any]], None] | None = None,
    test_tokens: Tensor | None = None,
    test_labels: Tensor | None = None,
    num_heads: int = 4,
) -> ProbeResult:
    """Train one `AttentiveHead` per `cfg.lrs` together on cached tokens; the protocol of `train_linear_probe`.

    train_tokens: (N, L, D) or (N, V, L, D) (V views: one drawn per sample and epoch), any float dtype (fp16 caches
    are fine: batches are cast to float32); train_labels (N,); val_tokens (M, [V,] L, D) (views averaged), val_labels
    (M,); optional test_tokens / test_labels switch to "chosen on val, reported on test". Uses cfg.epochs,
    cfg.batch_size, cfg.lrs, cfg.weight_decay, cfg.betas (not cfg.batchnorm: the head normalises its input).
    `generator` (CPU) draws the initial weights, the batch order and the views. Returns a `ProbeResult` without
    head weights.
    """
    _check(train_tokens, train_labels, "train")
    _check(val_tokens, val_labels, "val", train_tokens.shape[-1])
    if (test_tokens is None) != (test_labels is None):
        raise ValueError("train_attentive_probe: give both test_tokens and test_labels, or neither")
    if test_tokens is not None:
        _check(test_tokens, test_labels, "test", train_tokens.shape[-1])
    device = torch.device(device)
    label_sets = [train_labels, val_labels] + ([test_labels] if test_labels is not None else [])
    k = int(num_classes if num_classes is not None else max(int(y.max()) for y in label_sets) + 1)
    n, d = train_tokens.shape[0], train_tokens.shape[-1]
    train_labels = train_labels.long().to(device)
    val_x = _views(val_tokens, None).to(device)
    test_x = None if test_tokens is None else _views(test_tokens, None).to(device)

    first = AttentiveHead(d, k, num_heads)
    first.reset_parameters(generator)
    heads = [first] + [AttentiveHead(d, k, num_heads) for _ in cfg.lrs[1:]]
    for h in heads[1:]:
        h.load_state_dict(first.state_dict())  # the same initial weights for every lr
    heads = [h.to(device) for h in heads]
    scale = cfg.batch_size / 256
    groups = []
    for h, lr in zip(heads, cfg.lrs):
        decay = [p for name, p in h.named_parameters() if p.dim() > 1 and name != "query"]
        rest = [p for name, p in h.named_parameters() if not (p.dim() > 1 and name != "query")]
        groups.append({"params": decay, "lr": lr * scale, "base": lr * scale, "weight_decay": cfg.weight_decay})
        groups.append({"params": rest, "lr": lr * scale, "base": lr * scale, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=tuple(cfg.betas))

    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history: list[dict[str, Any]] = []
    val_hist: list[list[dict[str, float]]] = []
    test_hist: list[list[dict[str, float]]] = []
    step = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        loss_sum = torch.zeros(len(heads))
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = _views(train_tokens[idx], generator).to(device).float()  # (B, L, D)
            y = train_labels[idx.to(device)]
            losses = torch.stack([F.cross_entropy(h(x), y) for h in heads])  # (L_heads,)
            factor = cosine_factor(step, total)
            for g in opt.param_groups:
                g["lr"] = g["base"] * factor
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # heads share no parameters
            opt.step()
            loss_sum += losses.detach().cpu()
            step += 1
        if not torch.isfinite(loss_sum).all():
            bad = [lr for lr, v in zip(cfg.lrs, loss_sum.tolist()) if not math.isfinite(v)]
            raise FloatingPointError(f"attentive probe: non-finite loss at epoch {epoch} for base lr(s) {bad}")
        val_m = [classification_metrics(s, val_labels, k) for s in _scores(heads, val_x)]
        val_hist.append(val_m)
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": (loss_sum / steps_per_epoch).tolist(),
                                  "val_top1": [m["top1"] for m in val_m]}
        if test_x is not None:
            test_hist.append([classification_metrics(s, test_labels, k) for s in _scores(heads, test_x)])
            record["test_top1"] = [m["top1"] for m in test_hist[-1]]
        history.append(record)
        if log is not None:
            log(record)

    if test_x is not None:
        e, i = select_on_val(val_hist, cfg.lrs)
        selected = {"lr": cfg.lrs[i], "epoch": e + 1, "val": val_hist[e][i], "test": test_hist[e][i]}
        return ProbeResult(lrs=list(cfg.lrs), metrics=val_hist[-1], best_index=i, history=history,
                           test_metrics=test_hist[-1], selected=selected)
    metrics = val_hist[-1]
    best = max(range(len(metrics)), key=lambda j: (metrics[j]["top1"], metrics[j]["mean_class"]))
    return ProbeResult(lrs=list(cfg.lrs), metrics=metrics, best_index=best, history=history)
