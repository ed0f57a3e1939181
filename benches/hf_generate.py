#!/usr/bin/env python3
"""transformers' `generate` on a 124M-parameter GPT-2 configuration (random
weights), CPU, the same shapes as `cargo bench -p goodhart --bench throughput
-- gpt2`: batch 8, 16-token prompts, 64 new tokens, plain sampling (top_k 0).

    python benches/hf_generate.py --threads 2
"""
import argparse
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    print(f"gpt2 124M configuration: {sum(p.numel() for p in model.parameters())} parameters; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    prompts = torch.randint(3, 50000, (args.batch, args.prompt))

    @torch.inference_mode()
    def run():
        out = model.generate(
            prompts, attention_mask=torch.ones_like(prompts), do_sample=True, top_k=0,
            max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0,
        )
        return out.shape[1] - args.prompt

    run()
    reps, tokens = 3, 0
    t0 = time.perf_counter()
    for _ in range(reps):
        tokens += run() * args.batch
    secs = time.perf_counter() - t0
    print(f"gpt2 124M generate (batch {args.batch}, {args.prompt}-token prompts, "
          f"{args.new_tokens} new tokens): {tokens / secs:.1f} new tokens/s")


if __name__ == "__main__":
    main()
