"""Feature-flag evaluator (Rust core): Reflag filters, DevCycle targeting, JSON Logic, SemVer.

Compile an environment snapshot once with :class:`Snapshot` and evaluate contexts against it, or
call the one-shot entry points used by conformance suites.
"""

from evaluator._evaluator import (
    BudgetExceededError,
    EvaluatorError,
    RuleError,
    Snapshot,
    __version__,
    devcycle_bucket,
    fingerprint,
    jsonlogic_apply,
    murmur3_32,
    parse_query,
    reflag_evaluate,
    reflag_hash,
    semver_compare,
    set_counting,
)

__all__ = [
    "BudgetExceededError",
    "EvaluatorError",
    "RuleError",
    "Snapshot",
    "__version__",
    "devcycle_bucket",
    "fingerprint",
    "jsonlogic_apply",
    "murmur3_32",
    "parse_query",
    "reflag_evaluate",
    "reflag_hash",
    "semver_compare",
    "set_counting",
]
