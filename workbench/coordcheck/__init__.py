"""Coordinate check: ``python -m workbench coordcheck EXP.yaml [--widths ...] [--depths ...]`` (docs/coordcheck.md).

Does a parametrization keep every activation's scale the same across widths (μP) or depths (CompleteP)?
The baseline's config trains a few steps at each size (``measure``), forward hooks read the mean
|activation| of each module kind (``probe``), and each kind gets a verdict from its max/min ratio
(``verdict``), shown as a table, JSON and a plot (``render``). ``cli`` holds the subcommand; importing
this package loads nothing heavy.
"""
