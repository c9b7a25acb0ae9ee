"""`train` fails the way a real algorithm does: the reason first in /opt/ml/output/failure, exit code 1."""

import os
import sys
from pathlib import Path

root = Path(os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml"))
if sys.argv[1:] == ["train"]:
    print("reading train/iris.csv", flush=True)  # output of its own, as an algorithm's log would show
    (root / "output").mkdir(parents=True, exist_ok=True)
    reason = "the label column is missing from train/iris.csv: put the label first"
    (root / "output" / "failure").write_text(reason + "\nTraceback (most recent call last): ...\n")
    sys.exit(1)
sys.exit(f"unknown command {sys.argv[1:]}")
