"""PyTorch baseline for `cargo bench -p goodhart --bench throughput`.

The same GPT-2-layout model (default goodhart size unless overridden), the same
shapes and the same thread count:
  - one SFT step: batch 32 x 64 tokens, loss on the last 48, AdamW, clipping;
  - one PPO update: 64 sequences of 64 tokens, 2 epochs of minibatches of 32,
    clipped policy and value losses (goodhart's `-- ppo-update`);
  - KV-cache sampling: batch 64, 16-token prompts, 64 new tokens, multinomial
    sampling from the full softmax, like goodhart's sampler.

Run by hand (not in CI), with CPU torch from PyPI:
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python benches/torch_baseline.py --threads 2 [--layers L --d-model D --heads H] [--llama]
On a GPU (a CUDA build of torch), `--device cuda` against goodhart's
`--features cuda` bench on the same card (.ci/gpu-measure runs both).
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def attn(self, x, cache):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=(t > 1))
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def hidden(self, idx, start=0, caches=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(start, start + t))
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x)

    def forward(self, idx, start=0, caches=None):
        return self.hidden(idx, start, caches) @ self.wte.weight.T


class LlamaBlock(nn.Module):
    """goodhart's Llama block: RMSNorm, rotary positions (rotate-half), grouped-query
    attention with half the KV heads, SwiGLU with d_ff = 8/3 d; no biases."""

    def __init__(self, d, h, ctx, theta=10000.0):
        super().__init__()
        self.h, self.kv, self.dh = h, max(h // 2, 1), d // h
        f = d * 8 // 3
        self.input_norm = nn.RMSNorm(d, eps=1e-5)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, self.kv * self.dh, bias=False)
        self.v = nn.Linear(d, self.kv * self.dh, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.post_norm = nn.RMSNorm(d, eps=1e-5)
        self.gate = nn.Linear(d, f, bias=False)
        self.up = nn.Linear(d, f, bias=False)
        self.down = nn.Linear(f, d, bias=False)
        inv = 1.0 / theta ** (torch.arange(0, self.dh, 2).float() / self.dh)
        angles = torch.arange(ctx).float()[:, None] * inv[None]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def rope(self, x, start):
        t, half = x.shape[2], self.dh // 2
        cos, sin = self.cos[start : start + t], self.sin[start : start + t]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def forward(self, x, cache=None, start=0):
        b, t, d = x.shape
        y = self.input_norm(x)
        q = self.q(y).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k(y).view(b, t, self.kv, self.dh).transpose(1, 2)
        v = self.v(y).view(b, t, self.kv, self.dh).transpose(1, 2)
        q, k = self.rope(q, start), self.rope(k, start)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        a = F.scaled_dot_product_attention(q, k, v, is_causal=(t > 1), enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        y = self.post_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Llama(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(LlamaBlock(d, heads, ctx) for _ in range(layers))
        self.norm = nn.RMSNorm(d, eps=1e-5)

    def hidden(self, idx, start=0, caches=None):
        x = self.wte(idx)
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i], start)
        return self.norm(x)

    def forward(self, idx, start=0, caches=None):
        return self.hidden(idx, start, caches) @ self.wte.weight.T


def synchronize():
    """Wait for queued GPU work, so a timing covers it (nothing to wait for on the CPU)."""
    if torch.cuda.is_available() and torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(f, warmup, n):
    """Mean wall time of `f()` over `n` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        f()
    synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    synchronize()
    return (time.perf_counter() - t0) / n


def forward_flops(vocab, d, layers, tokens, context, llama=False):
    if llama:
        kv, f = d // 2, d * 8 // 3
        per_token = layers * (2 * d * d + 2 * d * kv + 3 * d * f) + d * vocab
    else:
        per_token = layers * (3 * d * d + d * d + 8 * d * d) + d * vocab
    return 2.0 * tokens * (per_token + layers * 2 * context * d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--llama", action="store_true", help="the Llama path (RMSNorm, rotary, SwiGLU, GQA)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the model and every tensor live")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_device(args.device)
    torch.manual_seed(0)
    vocab, ctx = 99, 128
    model = (Llama if args.llama else GPT)(vocab, args.d_model, args.layers, args.heads, ctx)
    n_params = sum(p.numel() for p in model.parameters())
    arch = "Llama" if args.llama else "GPT-2"
    where = torch.cuda.get_device_name() if torch.get_default_device().type == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {arch}, {args.layers} layers, d_model {args.d_model}, {where}, {n_params} parameters")

    # One SFT step.
    batch, seq, prompt = 32, 64, 16
    idx = torch.randint(3, vocab, (batch, seq))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.01)

    def step():
        logits = model(idx)
        loss = F.cross_entropy(logits[:, prompt - 1 : -1].reshape(-1, vocab), idx[:, prompt:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    secs = seconds_per_call(step, warmup=3, n=20)
    flops = 3 * forward_flops(vocab, args.d_model, args.layers, batch * seq, seq // 2, args.llama)
    print(f"sft step (batch {batch} x {seq} tokens): {secs*1e3:.1f} ms/step, {1/secs:.1f} steps/s, {flops/secs/1e9:.1f} GFLOP/s")

    # One PPO update: 64 sequences (16-token prompts, 48-token completions), 2 epochs of
    # minibatches of 32, clipped policy loss and clipped value loss (a linear value head on
    # the same trunk, weight 0.5), AdamW with clipping: goodhart's default PPO update.
    value_head = nn.Linear(args.d_model, 1)
    params = list(model.parameters()) + list(value_head.parameters())
    ppo_opt = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.99), weight_decay=0.01)
    rollout = torch.randint(3, vocab, (64, seq))

    def logprobs_and_values(x):
        # Each completion token's log-probability and the value at the position before it.
        h = model.hidden(x)[:, prompt - 1 : -1]
        lp = torch.log_softmax(h @ model.wte.weight.T, -1)
        return lp.gather(-1, x[:, prompt:, None]).squeeze(-1), value_head(h).squeeze(-1)

    with torch.no_grad():
        old_lp, old_v = logprobs_and_values(rollout)
    adv = torch.randn(64, seq - prompt)
    ret = old_v + adv

    def ppo_update():
        for _ in range(2):
            for mb in torch.randperm(64).split(32):
                lp, v = logprobs_and_values(rollout[mb])
                ratio = (lp - old_lp[mb]).exp()
                pg = -torch.min(ratio * adv[mb], ratio.clamp(0.8, 1.2) * adv[mb]).mean()
                v_clipped = old_v[mb] + (v - old_v[mb]).clamp(-0.2, 0.2)
                vf = 0.5 * torch.max((v - ret[mb]) ** 2, (v_clipped - ret[mb]) ** 2).mean()
                loss = pg + 0.5 * vf
                ppo_opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                ppo_opt.step()

    secs = seconds_per_call(ppo_update, warmup=1, n=5)
    print(f"ppo update (64 sequences of {seq} tokens, 2 epochs of minibatches of 32): {secs*1e3:.1f} ms/update")

    # KV-cache sampling.
    sample_batch, new_tokens = 64, 64
    prompts = torch.randint(3, vocab, (sample_batch, prompt))

    @torch.inference_mode()
    def sample():
        caches = [[None, None] for _ in model.h]
        logits = model(prompts, 0, caches)[:, -1]
        for i in range(new_tokens):
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1)
            if i + 1 == new_tokens:
                break
            logits = model(nxt, prompt + i, caches)[:, -1]

    secs = seconds_per_call(sample, warmup=1, n=3)
    tokens = sample_batch * new_tokens
    flops = forward_flops(vocab, args.d_model, args.layers, tokens, prompt + new_tokens // 2, args.llama) + forward_flops(
        vocab, args.d_model, args.layers, sample_batch * prompt, prompt // 2, args.llama
    )
    print(
        f"sampling (batch {sample_batch}, {prompt}-token prompts, {new_tokens} new tokens): "
        f"{tokens/secs:.0f} new tokens/s, {flops/secs/1e9:.1f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
