"""TRL baselines for `cargo bench -p goodhart --bench throughput -- dpo rloo`.

TRL's DPOTrainer (PyTorch, CPU) on the shapes goodhart's bench uses: a GPT-2
of the same size (default 3 layers x 128 wide; `--layers 2 --d-model 64` for
the default experiment's), a character-level vocabulary like goodhart's, 256
preference pairs of 16-character prompts and 48-character completions (TRL
appends EOS to each), 16 pairs a step, 2 epochs, AdamW at 3e-4, beta 0.1, the
reference's log-probabilities computed once (`precompute_ref_log_probs`).
Reports milliseconds per step over the whole `train()` call, as the Rust bench
does over the whole `train_dpo` call.

RLOO (TRL has no PPOTrainer any more; RLOOTrainer is its REINFORCE-leave-one-out
trainer, as goodhart's `rloo`): 8 iterations, each 32 prompts x 2 samples of up
to 48 new tokens sampled at temperature 1 from the full softmax, a reward of
completion length / 48, a KL penalty of 0.05 against the starting policy, and
one gradient step on the 64 completions; seconds per iteration over `train()`.

Run by hand (not in CI):
    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch transformers trl
    /tmp/torchenv/bin/python benches/trl_baseline.py --threads 2 [--layers 2 --d-model 64]
"""

import argparse
import logging
import string
import time

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging
from trl import DPOConfig, DPOTrainer, RLOOConfig, RLOOTrainer


def text(i, n):
    return "".join(chr(ord("a") + (i * 31 + j * 7) % 26) for j in range(n))


def char_tokenizer():
    """One token a character (printable ASCII), plus EOS and padding: BPE with no merges."""
    vocab = {"<eos>": 0, "<pad>": 1}
    for c in string.printable:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("which", nargs="*", default=["dpo", "rloo"], help="dpo, rloo (default: both)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)

    tok = char_tokenizer()

    def fresh_model():
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tok), n_positions=128, n_embd=args.d_model, n_layer=args.layers,
            n_head=args.heads, bos_token_id=0, eos_token_id=0, pad_token_id=1,
        ))

    if "dpo" in args.which:
        dpo(args, tok, fresh_model())
    if "rloo" in args.which:
        rloo(args, tok, fresh_model())


def dpo(args, tok, model):
    pairs = 256
    data = Dataset.from_dict({
        "prompt": [text(i, 16) for i in range(pairs)],
        "chosen": [text(i + 1000, 48) for i in range(pairs)],
        "rejected": [text(i + 2000, 48) for i in range(pairs)],
    })
    cfg = DPOConfig(
        output_dir="/tmp/trl-dpo-bench", per_device_train_batch_size=16, num_train_epochs=2,
        learning_rate=3e-4, beta=0.1, precompute_ref_log_probs=True, precompute_ref_batch_size=32,
        logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True, seed=0,
    )
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok)
    start = time.perf_counter()
    out = trainer.train()
    secs = time.perf_counter() - start
    steps = out.global_step
    print(f"torch {torch.__version__}, trl DPOTrainer, {args.layers} layers, d_model {args.d_model}, "
          f"{args.threads} threads, {sum(p.numel() for p in model.parameters())} parameters")
    print(f"dpo ({pairs} pairs x 2 epochs, 16 a step, reference once): {secs * 1e3 / steps:.1f} ms/step ({steps} steps)")


def rloo(args, tok, model):
    iterations = 8
    prompts = [f"Q: {i * 37 % 1000}+{i * 91 % 1000}\nA: " for i in range(64)]
    data = Dataset.from_dict({"prompt": prompts * 4})

    def length(completions, **kwargs):
        return [len(c) / 48.0 for c in completions]

    cfg = RLOOConfig(
        output_dir="/tmp/trl-rloo-bench", per_device_train_batch_size=64, num_generations=2,
        steps_per_generation=1, num_iterations=1, max_completion_length=48, temperature=1.0,
        top_k=0, top_p=1.0, beta=0.05, learning_rate=3e-4, max_steps=iterations,
        gradient_checkpointing=False,  # TRL turns it on by default; goodhart keeps activations
        logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True, seed=0,
    )
    # RLOOTrainer loads its reference model from the policy's directory.
    path = "/tmp/trl-rloo-model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    trainer = RLOOTrainer(model=path, reward_funcs=length, args=cfg, train_dataset=data,
                          processing_class=tok)
    start = time.perf_counter()
    out = trainer.train()
    secs = time.perf_counter() - start
    print(f"rloo iteration (32 prompts x 2 samples, up to 48 new tokens, one gradient step): "
          f"{secs / out.global_step:.3f} s/iteration ({out.global_step} iterations)")


if __name__ == "__main__":
    main()
