"""Cross-checks: every checker's claims against every attack's replayed counterexamples (see `core`)."""

from checkers.crosscheck.core import ATTACKS, CHECKERS, Case, Checker, Contradiction, Row, attack_case, check_case

__all__ = ["ATTACKS", "CHECKERS", "Case", "Checker", "Contradiction", "Row", "attack_case", "check_case"]
