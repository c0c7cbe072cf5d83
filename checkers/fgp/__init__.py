"""Fast geometric projections (FGP): a local-robustness certifier for ReLU networks, sound for float32.

`FGP(module, n).check(x0, eps, norm)` returns an `FGPResult`: HOLDS (robust), VIOLATED (not
robust, with a replayed float32 witness), UNKNOWN or TIMEOUT, and a certified radius.
See `checkers.fgp.search` (algorithm, soundness), `checkers.fgp.geometry` (float64
tolerance) and `checkers.fgp.witness` (projections, replay).
"""

from checkers.fgp.api import FGP, FGPBatch
from checkers.fgp.search import FGPOptions, FGPResult

__all__ = ["FGP", "FGPBatch", "FGPOptions", "FGPResult"]
