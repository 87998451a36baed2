"""Checking submitted answers against the steps of the post version they answer.

Every answer is checked (all problems are reported at once, one detail each, ``field`` =
``answers.<step_id>``), and the error is the document's example: 400 ``validation_failed``,
message "Submitted answer did not match the step's input kind.", detail codes

* ``invalid_choice``: a yes/no step not answered ``true``/``false`` (or ``"yes"``/``"no"``), or
  a choice step answered with something that is not one of its options (for ``multiple``: a
  list of distinct options);
* ``invalid_type``: text that is not a string, a rating that is not a whole number;
* ``too_long``: text over the step's ``max_length`` characters;
* ``out_of_range``: a rating outside ``min``..``max``;
* ``unknown_step``, ``duplicate_step``: an answer to no step of the version, or a second one;
* ``required``: a ``required`` step left unanswered.

The answers that pass are returned normalised (yes/no as booleans), in the order given.
"""

from __future__ import annotations

from typing import Any

from control_plane.errors import ApiError
from control_plane.routes.sytwm.models import Answer

MISMATCH = "Submitted answer did not match the step's input kind."
UNFIT = "Submitted answers do not fit the post's steps."
_YES_NO = {True: True, False: False, "yes": True, "no": False}


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _quoted(options: list[str]) -> str:
    return ", ".join(f"'{o}'" for o in options)


def _yes_no(step: dict[str, Any], answer: Any) -> Any:
    # Only booleans and strings: 1 == True in Python, and a 1 is not a yes.
    if isinstance(answer, bool | str) and answer in _YES_NO:
        return _YES_NO[answer]
    raise _Refused("invalid_choice", "Expected 'yes' or 'no'.")


def _choice(step: dict[str, Any], answer: Any) -> Any:
    options: list[str] = step["options"]
    if step["multiple"]:
        ok = (
            isinstance(answer, list)
            and answer
            and all(isinstance(a, str) and a in options for a in answer)
            and len(set(answer)) == len(answer)
        )
        if not ok:
            raise _Refused("invalid_choice", f"Expected a list of distinct options from {_quoted(options)}.")
        return answer
    if not isinstance(answer, str) or answer not in options:
        raise _Refused("invalid_choice", f"Expected one of {_quoted(options)}.")
    return answer


def _text(step: dict[str, Any], answer: Any) -> Any:
    if not isinstance(answer, str):
        raise _Refused("invalid_type", "Expected text.")
    if len(answer) > step["max_length"]:
        raise _Refused("too_long", f"At most {step['max_length']} characters.")
    return answer


def _rating(step: dict[str, Any], answer: Any) -> Any:
    expected = f"Expected a whole number from {step['min']} to {step['max']}."
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise _Refused("invalid_type", expected)
    if not step["min"] <= answer <= step["max"]:
        raise _Refused("out_of_range", expected)
    return answer


_CHECKS = {"yes_no": _yes_no, "choice": _choice, "text": _text, "rating": _rating}


def check(steps: list[dict[str, Any]], answers: list[Answer]) -> list[dict[str, Any]]:
    """The normalised answers, or 400 naming every answer that does not fit its step."""
    by_id = {s["id"]: s for s in steps}
    details: list[dict[str, str]] = []
    kind_mismatch = False
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for a in answers:
        field = f"answers.{a.step_id}"
        step = by_id.get(a.step_id)
        if step is None:
            details.append({"field": field, "code": "unknown_step", "message": "The post has no such step."})
            continue
        if a.step_id in seen:
            details.append({"field": field, "code": "duplicate_step", "message": "Answered more than once."})
            continue
        seen.add(a.step_id)
        try:
            out.append({"step_id": a.step_id, "answer": _CHECKS[step["kind"]](step, a.answer)})
        except _Refused as e:
            kind_mismatch = True
            details.append({"field": field, "code": e.code, "message": e.message})
    for s in steps:
        if s["required"] and s["id"] not in seen:
            details.append({"field": f"answers.{s['id']}", "code": "required", "message": "This step needs an answer."})
    if details:
        raise ApiError(400, MISMATCH if kind_mismatch else UNFIT, details=details)
    return out
