"""Type stubs of the Rust extension module ``evaluator._evaluator``."""

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict, final

__version__: str

JSONValue = Any

class EvaluatorError(ValueError):
    """Base class of evaluator errors."""

class RuleError(EvaluatorError):
    """A rule or snapshot that does not compile."""

    path: str
    """JSONPath of the offending node, e.g. ``$.features[3].targeting.rules[0].filter.operator``."""
    reason: str
    """What is wrong with that node."""

class BudgetExceededError(EvaluatorError):
    """Evaluation exceeded its step or size budget (for example a JSON Logic bomb)."""

class ConfigResult(TypedDict):
    key: str
    payload: JSONValue

class FlagResult(TypedDict):
    key: str
    value: bool
    variant: str
    reason: Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DEFAULT", "DISABLED"]
    targetingVersion: int | None
    config: ConfigResult | None
    ruleEvaluationResults: list[bool]
    missingContextFields: list[str]

class RulesResult(TypedDict):
    value: JSONValue | None
    flagKey: str
    context: dict[str, str]
    ruleEvaluationResults: list[bool]
    reason: str
    missingContextFields: list[str]

FlatContext = Mapping[str, str] | Iterable[tuple[str, str]]

@final
class Snapshot:
    """One environment's flags, compiled once and evaluated many times."""

    def __init__(self, data: bytes, format: Literal["json", "msgpack"] = "json") -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: str) -> bool: ...
    def flag_keys(self) -> list[str]: ...
    def definitions_json(self) -> bytes: ...
    def evaluate_all(
        self,
        context: Mapping[str, JSONValue] | None = None,
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
    ) -> bytes: ...
    def evaluate_all_flat(
        self,
        pairs: FlatContext,
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
    ) -> bytes: ...
    def evaluate_batch(
        self,
        contexts: Iterable[Mapping[str, JSONValue]],
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
    ) -> list[bytes]: ...
    def evaluate_flag(
        self, key: str, context: Mapping[str, JSONValue] | None = None, *, now_ms: float | None = None
    ) -> FlagResult | None: ...
    def evaluate_flag_flat(self, key: str, pairs: FlatContext, *, now_ms: float | None = None) -> FlagResult | None: ...
    def devcycle_bucket(self, user: Mapping[str, JSONValue], now_ms: int) -> dict[str, JSONValue] | None: ...

def reflag_hash(value: str) -> int: ...
def murmur3_32(data: str, seed: int = 0) -> int: ...
def parse_query(qs: bytes) -> list[tuple[str, str]]:
    """The pairs of a raw query string exactly as
    ``urllib.parse.parse_qsl(qs.decode("latin-1"), keep_blank_values=True)`` gives them."""

def fingerprint(data: bytes) -> str:
    """XXH3-128 of ``data`` as 32 lowercase hex digits (not cryptographic; for ETags)."""

def reflag_evaluate(
    flag_key: str, rules: list[JSONValue], context: Mapping[str, JSONValue], *, now_ms: float | None = None
) -> RulesResult: ...
def devcycle_bucket(
    config: Mapping[str, JSONValue], user: Mapping[str, JSONValue], now_ms: int
) -> dict[str, JSONValue]: ...
def jsonlogic_apply(rule: JSONValue, data: JSONValue = None) -> JSONValue: ...
def semver_compare(a: str, b: str) -> int: ...
