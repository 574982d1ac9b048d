"""Experiment: the writer stall of stall/ together with the backpressure of bp/ (both applied as they are)."""

import runpy
from pathlib import Path

VARIANTS = Path(__file__).resolve().parent.parent
for name in ("stall", "bp"):
    runpy.run_path(str(VARIANTS / name / "sitecustomize.py"))
