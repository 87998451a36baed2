"""``python -m evaluator``: evaluate a snapshot file for contexts from the command line.

``demo`` compiles the bundled demo snapshot and evaluates a few contexts; ``eval`` evaluates a
snapshot file (JSON) for one context given as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources

import orjson

from evaluator import RuleError, Snapshot


def _print_body(snapshot: Snapshot, context: dict[str, object], debug: bool) -> None:
    body = snapshot.evaluate_all(context, debug=debug)
    sys.stdout.write(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode() + "\n")


def _demo(args: argparse.Namespace) -> int:
    data = resources.files("evaluator").joinpath("demo_snapshot.json").read_bytes()
    started = time.perf_counter()
    snapshot = Snapshot(data)
    compiled_ms = (time.perf_counter() - started) * 1000
    print(f"compiled {len(snapshot)} flags in {compiled_ms:.2f} ms")
    contexts: list[dict[str, object]] = [
        {"user": {"id": "u-1", "email": "ada@acme.com"}, "company": {"id": "acme", "plan": "enterprise"}},
        {"user": {"id": "u-2", "email": "bob@example.org", "appVersion": "2.4.0"}, "company": {"id": "globex"}},
        {},
    ]
    for context in contexts:
        print(f"\ncontext {orjson.dumps(context).decode()}")
        _print_body(snapshot, context, args.debug)
    return 0


def _eval(args: argparse.Namespace) -> int:
    with open(args.snapshot, "rb") as f:
        data = f.read()
    try:
        snapshot = Snapshot(data)
    except RuleError as e:
        print(f"invalid snapshot at {e.path}: {e.reason}", file=sys.stderr)
        return 2
    context = orjson.loads(args.context)
    if not isinstance(context, dict):
        print("context must be a JSON object", file=sys.stderr)
        return 2
    _print_body(snapshot, context, args.debug)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="evaluate the bundled demo snapshot for a few contexts")
    demo.add_argument("--debug", action="store_true", help="include rule results and missing fields")
    demo.set_defaults(func=_demo)
    ev = sub.add_parser("eval", help="evaluate a snapshot file for one context")
    ev.add_argument("snapshot", help="snapshot JSON file ({'features': [...]})")
    ev.add_argument("--context", default="{}", help="context as a JSON object")
    ev.add_argument("--debug", action="store_true", help="include rule results and missing fields")
    ev.set_defaults(func=_eval)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
