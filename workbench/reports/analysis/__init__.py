"""The pure analysis of a run folder's results: what the runner needs, and what the report renders.

- ``verdicts``: better / worse / equivalent / undecided from paired seeds (sequential, Holm), compute multipliers;
- ``comparisons``: every run group against its baseline (or the rung before it in a ladder), via ``verdicts``;
- ``stats``: mean ± std over seeds;
- ``scaling``: L(C) power-law fits and where two of them cross;
- ``scale_verdicts``: each verdict across the sizes of a sweep (results.json "scale").

Plain numbers and the records of ``reports.load`` in, plain data out: no matplotlib, no rendering, no model.
"""
