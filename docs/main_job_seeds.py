"""The main job's layernorm verdict against 8 seeds (docs/main-job.md, 2026-12-06): prints the table there.

The final val losses of experiments/ablate_norm.yaml at seeds 0-7 (seeds 0 and 1 from the main job, 2-7 from
`python -m workbench run experiments/ablate_norm.yaml --out runs/main8 'seeds=[2,3,4,5,6,7]'`), decided for each
prefix of the seeds by the report's own function as a fixed seed list. Usage: python docs/main_job_seeds.py
"""

import math

import numpy as np
from scipy import stats

from workbench.reports.analysis.verdicts import SeedPolicy, decide

RMSNORM = [4.261064741346571, 4.3184763590494795, 4.191751268174913, 4.239514668782552, 4.220838334825304, 4.2414224412706165, 4.324181450737847, 4.3209643893771705]
LAYERNORM = [4.232967800564236, 4.289559258355035, 4.208436330159505, 4.269839392768012, 4.224439832899305, 4.262053595648871, 4.304975297715929, 4.387033250596788]

for n in (2, 3, 4, 6, 8):
    d = np.subtract(LAYERNORM[:n], RMSNORM[:n])
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    v = decide({"layernorm": list(d)}, policy=SeedPolicy(n, n))["layernorm"]
    print(f"seeds 0-{n - 1}: Δ {mean:+.4f}, std {std:.4f} ({n - 1} df), plain 95% [{mean - half:+.4f}, "
          f"{mean + half:+.4f}] -> {v.verdict}, seeds needed {v.seeds_needed}")
