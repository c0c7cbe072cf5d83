"""ACAS Xu: `python bench/acasxu.py [options]` is `python bench/vnncomp.py acasxu [options]`.

The 76 VNN-COMP instances of ../shared/data/acasxu/expected.csv, ours and (where its
binary is found) Marabou's, side by side; see bench/vnncomp.py for the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vnncomp import main

if __name__ == "__main__":
    sys.exit(main(["acasxu", *sys.argv[1:]]))
