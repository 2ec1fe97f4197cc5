"""The main job's layernorm verdict against 8 seeds (docs/main-job.md, 2026-12-06, after issue 26): prints the table.

The final val losses of experiments/ablate_norm.yaml (both norms at eps 1e-6, the byte-share val split) at seeds 0-7
(`python -m workbench run experiments/ablate_norm.yaml --out runs/main8 'seeds=[0,1,2,3,4,5,6,7]'`; seeds 0 and 1
are the main job's runs, bitwise), decided for each prefix of the seeds by the report's own function as a fixed
seed list. Usage: python docs/main_job_seeds.py
"""

import math

import numpy as np
from scipy import stats

from workbench.reports.analysis.verdicts import SeedPolicy, decide

RMSNORM = [4.149398531232562, 4.09369032723563, 4.183896473475865, 4.075697762625558, 4.117620195661273, 4.1471388680594305, 4.1606903076171875, 4.0919189453125]
LAYERNORM = [4.142663955688477, 4.116455623081753, 4.146927152361188, 4.052431651524135, 4.135006495884487, 4.102425711495536, 4.106900078909738, 4.159150804792132]

for n in (2, 3, 4, 6, 8):
    d = np.subtract(LAYERNORM[:n], RMSNORM[:n])
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    v = decide({"layernorm": list(d)}, policy=SeedPolicy(n, n))["layernorm"]
    print(f"seeds 0-{n - 1}: Δ {mean:+.4f}, std {std:.4f} ({n - 1} df), plain 95% [{mean - half:+.4f}, "
          f"{mean + half:+.4f}] -> {v.verdict}, seeds needed {v.seeds_needed}")
