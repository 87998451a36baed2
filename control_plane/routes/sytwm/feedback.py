"""Feedback: submitted with a submit key (``POST /api/v1/feedback``), listed newest first with a
read key (``GET /api/v1/feedback``) or in the dashboard's inbox (``GET /admin/feedback``), hidden
or shown again from the dashboard.

A submission answers the post's published version; each answer is checked against its step
(:mod:`.answers`). ``client_dedup_id`` makes retries safe: the unique constraint on
``(api_key_id, client_dedup_id)`` decides, in the insert itself, which of any number of identical
submissions becomes the entry; every other one is answered with that entry and ``replayed: true``.

The list pages by arrival order (``seq``), newest first: a cursor is "below seq N", so entries
that arrive while a client pages are above every cursor it holds and never shift, repeat or
skip what is left to read (they show on a fresh first page).
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.dialect import Connection, Row
from control_plane.errors import not_found
from control_plane.http import Ctx, Handler, Router, Write
from control_plane.routes.sytwm import answers
from control_plane.routes.sytwm.common import ORG, READ, SUBMIT, dashboard_org, decode_cursor, key_org, page
from control_plane.routes.sytwm.models import FeedbackBody, FeedbackPage, Reason
from control_plane.store import new_id, now_iso

dashboard = Router("sytwm-dashboard")
api = Router("sytwm-api")
CURSOR = "feedback"
# A feedback body: 50 answers of up to 10,000 characters fit well; anything larger is not a form.
MAX_BODY = 256 << 10


def _replay(db: Connection, key_id: str, dedup: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT id, is_public FROM sytwm_feedback WHERE api_key_id = ? AND client_dedup_id = ?", (key_id, dedup)
    ).fetchone()
    return None if row is None else {"id": row["id"], "is_public": bool(row["is_public"]), "replayed": True}


@api.route(
    "POST",
    "/api/v1/feedback",
    summary="Submit feedback to a published post (client_dedup_id makes retries safe)",
    body=FeedbackBody,
    status=201,
    keys=SUBMIT,
    max_body=MAX_BODY,
    responses=(413,),
)
async def submit_feedback(ctx: Ctx) -> Any:
    body: FeedbackBody = ctx.body
    key_id, org_id = ctx.principal.api_key_id or "", key_org(ctx)
    with ctx.services.store.transaction() as db:
        # A retry of a stored submission is answered from it even if the post changed since.
        if body.client_dedup_id is not None and (done := _replay(db, key_id, body.client_dedup_id)):
            return done
        post = db.execute(
            "SELECT p.id, v.version, v.definition FROM sytwm_posts p JOIN sytwm_post_versions v"
            " ON v.post_id = p.id AND v.version = p.published_version WHERE p.organisation_id = ? AND p.slug = ?",
            (org_id, body.post_slug),
        ).fetchone()
        if post is None:
            raise not_found(f"published post {body.post_slug!r}")
        checked = answers.check(orjson.loads(post["definition"])["steps"], body.answers)
        entry_id = new_id()
        # The constraint, not the look-up above, is what makes concurrent copies one entry.
        inserted = db.execute(
            "INSERT INTO sytwm_feedback (id, organisation_id, post_id, post_version, api_key_id, client_dedup_id,"
            " answers, is_public, public_text, submitter_label, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (api_key_id, client_dedup_id) DO NOTHING RETURNING id",
            (
                entry_id,
                org_id,
                post["id"],
                post["version"],
                key_id,
                body.client_dedup_id,
                orjson.dumps(checked).decode(),
                int(body.is_public),
                body.public_text,
                body.submitter_label,
                now_iso(),
            ),
        ).fetchone()
        if inserted is None and body.client_dedup_id is not None:
            return _replay(db, key_id, body.client_dedup_id)
    return {"id": entry_id, "is_public": body.is_public, "replayed": False}


def _labels(db: Connection, rows: list[Row]) -> dict[tuple[str, int], dict[str, str]]:
    """Step labels of every post version the rows answered: what the submitter was asked."""
    labels: dict[tuple[str, int], dict[str, str]] = {}
    for post_id, version in {(r["post_id"], r["post_version"]) for r in rows}:
        row = db.execute(
            "SELECT definition FROM sytwm_post_versions WHERE post_id = ? AND version = ?", (post_id, version)
        ).fetchone()
        steps = orjson.loads(row["definition"])["steps"] if row else []
        labels[(post_id, version)] = {s["id"]: s["label"] for s in steps}
    return labels


def _item(row: Row, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "post_slug": row["slug"],
        "is_public": bool(row["is_public"]),
        "is_hidden": bool(row["is_hidden"]),
        "public_text": row["public_text"],
        "submitter_label": row["submitter_label"],
        "submitted_at": row["submitted_at"],
        "answers": [
            {"step_id": a["step_id"], "step_label": labels.get(a["step_id"]), "answer": a["answer"]}
            for a in orjson.loads(row["answers"])
        ],
    }


@api.route(
    "GET",
    "/api/v1/feedback",
    summary="Feedback, newest first (pass next_cursor as cursor for the next page; null at the end)",
    query=FeedbackPage,
    keys=READ,
)
async def list_feedback(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        return _feedback_page(db, key_org(ctx), ctx.query)


def _feedback_page(db: Connection, organisation_id: str, query: FeedbackPage) -> dict[str, Any]:
    """One page of an organisation's feedback, newest first: the key API's list and the inbox."""
    below = decode_cursor(CURSOR, query.cursor)
    rows = db.execute(
        "SELECT f.*, p.slug FROM sytwm_feedback f JOIN sytwm_posts p ON p.id = f.post_id"
        " WHERE f.organisation_id = ? AND f.seq < ? ORDER BY f.seq DESC LIMIT ?",
        (organisation_id, below if below is not None else 2**63 - 1, query.limit + 1),
    ).fetchall()
    shown, next_cursor = page(rows, query.limit, CURSOR, "seq")
    labels = _labels(db, shown)
    return {
        "items": [_item(r, labels[(r["post_id"], r["post_version"])]) for r in shown],
        "next_cursor": next_cursor,
    }


@dashboard.route(
    "GET",
    "/admin/feedback",
    summary="The feedback inbox for the signed-in user (hidden entries included), newest first",
    query=FeedbackPage,
    headers=ORG,
)
async def feedback_inbox(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        return _feedback_page(db, dashboard_org(db, ctx, "read").id, ctx.query)


def _moderate(hidden: bool) -> Handler:
    async def handler(ctx: Ctx) -> Any:
        feedback_id = ctx.path("feedback_id")

        def change(w: Write) -> dict[str, Any]:
            org = dashboard_org(w.db, ctx, "write")
            updated = w.db.execute(
                "UPDATE sytwm_feedback SET is_hidden = ? WHERE id = ? AND organisation_id = ? RETURNING id",
                (int(hidden), feedback_id, org.id),
            ).fetchone()
            if updated is None:
                raise not_found("feedback")
            w.audit(f"sytwm.feedback.{'hide' if hidden else 'show'}", f"feedback:{feedback_id}", organisation_id=org.id)
            return {"id": feedback_id, "is_hidden": hidden}

        return ctx.commit(change)

    handler.__name__ = "hide_feedback" if hidden else "unhide_feedback"
    return handler


dashboard.route(
    "POST", "/admin/feedback/{feedback_id}/hide", summary="Hide feedback (moderation)", body=Reason, headers=ORG
)(_moderate(True))
dashboard.route(
    "POST", "/admin/feedback/{feedback_id}/unhide", summary="Show hidden feedback again", body=Reason, headers=ORG
)(_moderate(False))
