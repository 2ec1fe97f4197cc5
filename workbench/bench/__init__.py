"""Speed benchmarks: ``python -m workbench bench``.

Sections (``runner.SECTIONS``): the machine's GEMM peak; one training step of the workbench LLaMA
against transformers' LlamaForCausalLM with identical weights (eager and compiled, fp32 and bf16
autocast) with MFU; attention kernels' time and memory against sequence length; Lightning's
overhead per step. Every comparison is measured in one process with interleaved repetitions and
medians. Importing this package is cheap (the CLI builds its parser from ``bench.cli``).
"""
