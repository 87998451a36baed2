"""Type stubs of the Rust extension module ``evaluator._evaluator``."""

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Self, TypedDict, final

# Checked against the built module by `python -m mypy.stubtest evaluator._evaluator` (./dev lint,
# ./dev test). The names with a leading underscore exist only for typing (stubtest skips them).

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

__version__: str

_JSONValue = Any

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

class _ConfigResult(TypedDict):
    key: str
    payload: _JSONValue

class _FlagResult(TypedDict):
    key: str
    value: bool
    variant: str
    reason: Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DEFAULT", "DISABLED"]
    targetingVersion: int | None
    config: _ConfigResult | None
    ruleEvaluationResults: list[bool]
    missingContextFields: list[str]

class _RulesResult(TypedDict):
    value: _JSONValue | None
    flagKey: str
    context: dict[str, str]
    ruleEvaluationResults: list[bool]
    reason: str
    missingContextFields: list[str]

_FlatContext = Mapping[str, str] | Iterable[tuple[str, str]]

# The kind of SDK key a request came with, "client", "mobile" or "server" (anything else is a
# ValueError); `sdkVisibility` hides flags from some kinds.
_KeyKind = str

@final
class Snapshot:
    """One environment's flags, compiled once and evaluated many times."""

    def __new__(cls, data: bytes, format: Literal["json", "msgpack"] = "json") -> Self: ...
    @staticmethod
    def assemble(extras: bytes, entries: Sequence[bytes]) -> Snapshot:
        """A snapshot from the document's members beside ``features`` (a JSON object) and its
        flags as stored entries (each ``{"order", "definition", ...}`` as JSON), sorted by order."""
    def patch(self, upserts: Sequence[bytes], removed: Sequence[str], extras: bytes | None = None) -> Snapshot:
        """This snapshot with ``upserts`` (stored entries) compiled in and the flags keyed
        ``removed`` left out; unchanged flags are shared, not recompiled. RuleError names the key
        of an upsert that does not compile. With ``extras`` (the document's members beside
        ``features``, as for ``assemble``) the document-wide members (DevCycle section, overrides,
        custom data types, ``sdkVisibility``) are replaced as well: they compile, the flags do not
        (except those linked to DevCycle or whose visibility changed), and the result answers as
        ``assemble(extras, ...)`` of the same flags."""
    def shares_flag(self, other: Snapshot, key: str) -> bool:
        """Whether both snapshots share flag ``key``'s compiled form (a patch left it alone)."""
    def __len__(self) -> int: ...
    def __contains__(self, key: str, /) -> bool: ...
    def flag_keys(self) -> list[str]: ...
    def definitions_json(self, stored: list[bytes]) -> bytes | None:
        """The ``features`` array from the flags' stored entries (as for ``assemble``, any
        order): None unless they hold every flag's definition text as compiled (the snapshot
        keeps only hashes of them)."""
    def local_definitions_json(self, stored: list[bytes]) -> bytes | None:
        """``GET /features``' ``features`` array from the flags' stored entries, as
        ``definitions_json`` (None when the store has moved on). Releases the GIL."""
    def remote_only(self) -> list[tuple[str, str]]: ...
    def evaluate_all(
        self,
        context: Mapping[str, _JSONValue] | None = None,
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> bytes: ...
    def evaluate_all_flat(
        self,
        pairs: _FlatContext,
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> bytes: ...
    def evaluate_batch(
        self,
        contexts: Iterable[Mapping[str, _JSONValue]],
        *,
        enabled_only: bool = False,
        debug: bool = False,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> list[bytes]: ...
    def evaluate_flag(
        self,
        key: str,
        context: Mapping[str, _JSONValue] | None = None,
        *,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> _FlagResult | None: ...
    def evaluate_flag_flat(
        self, key: str, pairs: _FlatContext, *, now_ms: float | None = None, key_kind: _KeyKind | None = None
    ) -> _FlagResult | None: ...
    def ofrep_all(
        self,
        context: Mapping[str, _JSONValue] | None = None,
        *,
        flag_state_version: int,
        has_targeting_key: bool,
        tail: bytes | None = None,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> bytes:
        """The OFREP bulk answer: ``{"flags":[...]``, then ``tail`` (further members, each with
        its leading comma), then ``}``; flags hidden from ``key_kind`` keys are left out."""
    def ofrep_flag(
        self,
        key: str,
        context: Mapping[str, _JSONValue] | None = None,
        *,
        flag_state_version: int,
        has_targeting_key: bool,
        tail: bytes | None = None,
        now_ms: float | None = None,
        key_kind: _KeyKind | None = None,
    ) -> tuple[bool, bytes] | None:
        """One flag's OFREP answer: ``(True, success object with tail before its closing brace)``,
        ``(False, its TARGETING_KEY_MISSING failure object)``, or None for an unknown or hidden flag."""
    def hidden_from(self, key_kind: _KeyKind) -> list[str]:
        """Keys of the flags ``sdkVisibility`` hides from SDK keys of this kind, in snapshot order."""
    def drain_counts(self) -> list[tuple[str, str, int]]:
        """``(flag or feature key, variation key, evaluations)`` counted on every route since the
        last call; each counter is reset as it is read (README, "Evaluation counts")."""
    def devcycle_splits(self) -> list[tuple[str, list[bool]]]:
        """Per flag DevCycle's bucketing decides: per target, whether serving from it is a SPLIT."""
    def devcycle_bucket(
        self, user: Mapping[str, _JSONValue], now_ms: int, *, key_kind: _KeyKind | None = None
    ) -> dict[str, _JSONValue] | None: ...
    def devcycle_json(
        self,
        user: Mapping[str, _JSONValue],
        now_ms: int,
        part: Literal["config", "variables", "features", "variable", "ofrep", "ofrep_flag"] = "config",
        key: str | None = None,
        hidden: AbstractSet[str] | None = None,
    ) -> bytes | None:
        """A DevCycle route's answer bytes for one user, without the features whose ``_id`` is in
        ``hidden``; None without a ``devcycle`` section or for a variable (``part``
        ``variable``/``ofrep_flag`` with ``key``) the user is not served."""

    def devcycle_ofrep_flag(
        self,
        user: Mapping[str, _JSONValue],
        now_ms: int,
        key: str,
        hidden: AbstractSet[str] | None = None,
        *,
        flag_state_version: int,
        tail: bytes | None = None,
    ) -> bytes | None:
        """One DevCycle variable's OFREP answer: the ``ofrep_flag`` part with ``flagStateVersion``
        last in its ``metadata`` and ``tail`` before its closing brace; None without a
        ``devcycle`` section or when the user is not served the variable."""

def set_counting(enabled: bool) -> None:
    """Whether snapshots compiled from now on count their evaluations (on by default)."""

def reflag_hash(value: str) -> int: ...
def murmur3_32(data: str, seed: int = 0) -> int: ...
def parse_query(qs: bytes) -> list[tuple[str, str]]:
    """The pairs of a raw query string exactly as
    ``urllib.parse.parse_qsl(qs.decode("latin-1"), keep_blank_values=True)`` gives them."""

def fingerprint(data: bytes) -> str:
    """XXH3-128 of ``data`` as 32 lowercase hex digits (not cryptographic; for ETags)."""

def reflag_evaluate(
    flag_key: str, rules: list[_JSONValue], context: Mapping[str, _JSONValue], *, now_ms: float | None = None
) -> _RulesResult: ...
def devcycle_bucket(
    config: Mapping[str, _JSONValue], user: Mapping[str, _JSONValue], now_ms: int
) -> dict[str, _JSONValue]: ...
def jsonlogic_apply(rule: _JSONValue, data: _JSONValue = None) -> _JSONValue: ...
def semver_compare(a: str, b: str) -> int: ...
