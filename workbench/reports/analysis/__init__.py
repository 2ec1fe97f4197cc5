"""The pure analysis of a run folder's results: what the runner needs, and what the report renders.

- ``verdicts``: better / worse / equivalent / undecided from paired seeds (sequential, Holm);
- ``pooled``: the noise a verdict sees through, from one model of every run (pooled across sizes, a size, or own);
- ``design``: both at once over a whole design (per look, per Holm family): what compare() and the simulations run;
- ``estimable``: what the data cannot bound (no interval shown as digits);
- ``multipliers``: compute multipliers, per seed and combined;
- ``comparisons``: every run group against its baseline (or the rung before it in a ladder), via the above;
- ``stats``: mean ± std over seeds;
- ``scaling``: L(C) power-law fits and where two of them cross;
- ``scale_verdicts``: each verdict across the sizes of a sweep (results.json "scale").

Plain numbers and the records of ``reports.load`` in, plain data out: no matplotlib, no rendering, no model.
"""
