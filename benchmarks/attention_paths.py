"""sdpa's two paths in bf16: PyTorch's fused kernel against the explicit GEMMs (``gemm_attention``), the
measurement behind ``GEMM_MAX_KEYS`` in components/attention.py (issue 27, docs/performance.md).

    OMP_NUM_THREADS=2 python benchmarks/attention_paths.py [--rounds 7] [--step] [--compile] [SHAPE ...]

SHAPE is BATCHxHEADSxKEYS (head_dim 64, causal, as many queries as keys), default a sweep from 128 to
2048 keys. Each case is one forward + backward of ``SDPAttention(path="fused" | "gemm")`` on bf16 inputs.
``--step`` also times whole training steps of the bench's model (dim 256, 4 layers, 4 heads, vocab 2048,
batch 16 x 256, bf16 autocast, fused AdamW; ``--compile``: compiled) with every sdpa kernel on each path.
Cases run interleaved in rounds (order rotating) after an untimed warm-up; each figure is the median over
rounds and each ratio the median of the per-round ratios (``workbench/bench/timing.py``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import TransformerLM  # noqa: E402
from components.attention import SDPAttention  # noqa: E402
from workbench.bench.step import StepShape, _batch, training_step  # noqa: E402
from workbench.bench.timing import interleaved, median, paired_ratio  # noqa: E402

SHAPES = ("16x4x128", "16x4x256", "64x4x256", "16x4x384", "4x4x512", "16x4x512", "8x4x640", "4x4x768",
          "2x4x1024", "1x4x2048")


def kernel_case(kernel: SDPAttention, q, k, v, grad):
    def call():
        kernel(q, k, v).backward(grad)
        q.grad = k.grad = v.grad = None
    return call


def kernels(shapes: list[str], rounds: int) -> None:
    print("| batch x heads x keys | fused ms | GEMMs ms | fused / GEMMs |\n|---|---|---|---|")
    for shape in shapes:
        B, H, T = map(int, shape.split("x"))
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, H, T, 64, generator=g).bfloat16().requires_grad_() for _ in range(3))
        grad = torch.randn(B, H, T, 64, generator=g).bfloat16()
        times = interleaved({path: kernel_case(SDPAttention(path=path), q, k, v, grad) for path in ("fused", "gemm")},
                            reps=rounds, warmup=1)
        print(f"| {shape} | {1000 * median(times['fused']):.1f} | {1000 * median(times['gemm']):.1f} | "
              f"{paired_ratio(times['fused'], times['gemm']):.2f}x |", flush=True)


def steps(rounds: int, compiled: bool) -> None:
    shape = StepShape()
    x, y = _batch(shape, torch.device("cpu"))
    base = TransformerLM(shape.config(), init_seed=0)
    cases = {}
    for path in ("fused", "gemm"):
        model = copy.deepcopy(base)
        for block in model.blocks:
            block.attn.kernel = SDPAttention(path=path)
        if compiled:
            model.compile()
        cases[path] = training_step(model, lambda m: m(x, targets=y), "bf16", torch.device("cpu"))
    times = interleaved(cases, reps=rounds, warmup=1)
    print(f"bf16 {'compiled' if compiled else 'eager'} training step: fused {1000 * median(times['fused']):.0f} ms, "
          f"GEMMs {1000 * median(times['gemm']):.0f} ms, fused / GEMMs {paired_ratio(times['fused'], times['gemm']):.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--step", action="store_true", help="also time the bench's training step on each path")
    parser.add_argument("--compile", action="store_true", help="with --step: compiled steps")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    kernels(args.shapes, args.rounds)
    if args.step:
        steps(args.rounds, args.compile)


if __name__ == "__main__":
    main()
