"""Greedy decoding speed with the KV cache: TransformerLM.generate vs transformers' generate, same weights.

    OMP_NUM_THREADS=1 python benchmarks/generate_speed.py [--rounds 7] [--new-tokens 200] [--threads 1]

The model is the tiny preset (dim 128, 4 layers, 4 heads, vocab 2048, LLaMA recipe), seeded; transformers
gets the same weights through ``workbench.interop.to_hf`` (LlamaForCausalLM, eager and sdpa attention).
A 16-token prompt, 200 new tokens, greedy, batch 1. The cases run interleaved in rounds (order rotating)
after an untimed warm-up; each figure is the median over rounds, the ratio the median of the per-round
ratios, so a busy moment of the machine falls on both sides. Both must produce the same tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import TransformerConfig, TransformerLM  # noqa: E402
from workbench.interop import to_hf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = TransformerConfig(vocab_size=2048, max_seq_len=256, dim=128, n_layers=4, n_heads=4, norm_eps=1e-6)
    model = TransformerLM(cfg, init_seed=0).eval()
    with torch.no_grad():  # larger weights than init: a peaked distribution, so greedy tokens vary
        for p in model.parameters():
            p.mul_(4.0)
    prompt = torch.randint(0, cfg.vocab_size, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
    n = args.new_tokens

    cases = {"workbench": lambda: model.generate(prompt, n, temperature=0)}
    for impl in ("eager", "sdpa"):
        hf = to_hf(model, attn_implementation=impl).eval()

        def run_hf(hf=hf):
            with torch.inference_mode():
                return hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                                   do_sample=False)

        cases[f"transformers ({impl})"] = run_hf

    reference = cases["workbench"]()  # warm-up round, and the tokens every case must produce
    for name, fn in cases.items():
        out = fn()
        if not torch.equal(out, reference):
            raise SystemExit(f"{name} produced other tokens than the workbench: not the same computation")

    seconds: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            seconds[name].append(time.perf_counter() - start)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); prompt {args.prompt_tokens} tokens, "
          f"{n} new tokens, greedy, batch 1; {model.num_params():,} parameters; {args.rounds} rounds, medians")
    ours = seconds["workbench"]
    for name in names:
        tps = n / statistics.median(seconds[name])
        line = f"  {name:<22} {tps:8.0f} tokens/s  ({1e3 * statistics.median(seconds[name]) / n:.2f} ms/token)"
        if name != "workbench":
            ratio = statistics.median(t / o for t, o in zip(seconds[name], ours))
            line += f"   workbench {ratio:.2f}x as fast"
        print(line)


if __name__ == "__main__":
    main()
