import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))
# Unit tests read settings from the environment only (no metadata DB to ask for Variables).
os.environ.setdefault("TUNE_SERVE_NO_VARIABLES", "1")
