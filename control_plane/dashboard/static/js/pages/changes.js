// Change requests (the project's approval workflow, README "DevCycle approval workflow"): a
// change of a protected environment that the API refused with 412 approval_required is proposed
// as a request (POST .../change-requests with the very PATCH that was refused, then submitted to
// reviewers), reviewed by a publisher, applied, or cancelled. The API decides who may do what;
// the page shows each button only to those it would let through.
import { useState } from "preact/hooks";
import { get, patch, post, seg } from "../api.js";
import { Diff } from "../diff.js";
import { html } from "../html.js";
import { REVIEWER_ROLES, useMembers } from "../members.js";
import { href } from "../router.js";
import { can, session } from "../session.js";
import { ActionState, Badge, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

export const STATUSES = ["draft", "pending", "approved", "rejected", "applied", "cancelled"];

// Whether an API error is the approval workflow's refusal of a direct write.
export const needsApproval = (error) => error?.status === 412 && (error.details || []).some((d) => d.code === "approval_required");

const me = () => session.user?.user_id;

function Reviewers({ members, workflow, name = "reviewers" }) {
  const eligible = members.list.filter((m) => REVIEWER_ROLES.includes(m.roles[0]) && (m.user_id !== me() || workflow.allowPublisherBypass));
  const defaults = workflow.defaultReviewers || [];
  if (eligible.length === 0) return html`<p class="empty">No publisher or owner in this organisation can review this request.</p>`;
  return html`<fieldset>
    <legend>Reviewers (publishers and owners)</legend>
    ${eligible.map(
      (m) => html`<label><input type="checkbox" name=${name} value=${m.user_id} defaultChecked=${defaults.includes(m.user_id)} /> ${m.username} (${m.email}, ${m.roles[0]})</label>`,
    )}
  </fieldset>`;
}

const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);

// Offered where a direct save was refused: the same change, proposed and submitted for review.
export function ProposeChange({ org, project, feature, path, body, workflow, onDone, onCancel }) {
  const members = useMembers(org);
  const [run, state] = useAction();
  const url = `/v2/projects/${seg(project)}/features/${seg(feature)}/change-requests`;
  const submit = (e) => {
    const form = e.currentTarget;
    const f = formData(e);
    const reviewers = checked(form, "reviewers");
    // The form goes away when done: the page that offered it says what happened.
    run(async () => {
      const cr = await post(url, { path, method: "PATCH", body }, { org });
      if (f.submitNow === "on") await patch(`${url}/${seg(cr._id)}/submit`, { description: f.description, reviewers }, { org });
      onDone(f.submitNow === "on" ? "Change request submitted for review." : "Change request saved as a draft: submit it below.");
    });
  };
  return html`<form onSubmit=${submit} aria-label="Propose a change request" class="propose">
    <p>This environment is protected by the project's approval workflow: the change needs a publisher's approval. Propose it as a change request:</p>
    <label>What and why <input name="description" required /></label>
    ${members.loaded ? html`<${Reviewers} members=${members} workflow=${workflow} />` : html`<p aria-busy="true">Loading members…</p>`}
    <label><input type="checkbox" name="submitNow" defaultChecked /> Submit for review now (else keep it as a draft)</label>
    <div class="row">
      <button type="submit" aria-busy=${state.busy}>Create change request</button>
      <button type="button" class="secondary outline" onClick=${onCancel}>Keep editing</button>
    </div>
    <${ActionState} state=${state} />
  </form>`;
}

// What a request would change: the current values of the fields its body sets, against the body.
function proposed(cr, f, envs) {
  const change = cr.changes[0];
  const { change_reason: _, ...body } = change.body || {};
  const env = new URL(change.path, location.origin).searchParams.get("environment");
  let current = f;
  if (env) {
    const e = envs.find((x) => x.key === env || x._id === env);
    current = f.configurations.find((c) => c._environment === e?._id) || { status: "inactive", targets: [] };
  }
  const before = Object.fromEntries(Object.keys(body).map((k) => [k, current[k]]));
  return { env, before, after: body };
}

// A feature's open change requests (draft, pending, approved) and what can be done with each.
export function FeatureChangeRequests({ f, envs, org, project, workflow, reload, version }) {
  const url = `/v2/projects/${seg(project)}/features/${seg(f.key)}/change-requests`;
  const load = useLoad(() => get(url, { org }), [org, project, f.key, version]);
  const members = useMembers(org);
  const [run, state] = useAction();
  const publisher = can(org, "admin");
  const done = () => (load.reload(), reload());
  const act = (cr, path, body, notice) => run(() => patch(`${url}/${seg(cr._id)}/${path}`, body, { org }).then(done), notice);
  // The button pressed says which review it is (both submit the comment).
  const review = (cr) => (e) => {
    const action = e.submitter?.value;
    const v = formData(e);
    act(cr, "review", { action, comment: v.comment || "" }, `Change request ${action}.`);
  };
  if (!load.data) return html`<${Pending} load=${load} what="change requests" />`;
  return html`<section aria-labelledby="cr-title">
    <h2 id="cr-title">Change requests</h2>
    <${ActionState} state=${state} />
    ${load.data.length === 0
      ? html`<${Empty}>No open change request for this feature.<//>`
      : load.data.map((cr) => {
          const mine = cr._createdBy === me();
          const authorOrPublisher = mine || publisher;
          const reviewer = publisher && (!mine || workflow.allowPublisherBypass);
          const { env, before, after } = proposed(cr, f, envs);
          return html`<article data-change-request=${cr._id} data-status=${cr.status} aria-label=${`Change request ${cr._id}`}>
            <header>
              <${Badge} warn=${cr.status !== "approved"} on=${cr.status === "approved"}>${cr.status}<//>
              ${" "}${cr.operation}${env ? html` in <strong>${env}</strong>` : ""} · by ${members.name(cr._createdBy)} · ${when(cr.createdAt)}
            </header>
            ${cr.description && html`<p>${cr.description}</p>`}
            <${Diff} before=${before} after=${after} label=${`Proposed changes of ${cr._id}`} />
            ${cr.reviewers.users.length > 0 && html`<p><small>Reviewers: ${cr.reviewers.users.map(members.name).join(", ")}</small></p>`}
            ${cr.reviews.length > 0 &&
            html`<ul>${cr.reviews.map((r) => html`<li>${r.action} by ${members.name(r._createdBy)} ${when(r.createdAt)}${r.comment ? html`: <q>${r.comment}</q>` : ""}</li>`)}</ul>`}
            ${["draft", "rejected"].includes(cr.status) &&
            authorOrPublisher &&
            html`<form aria-label=${`Submit change request ${cr._id}`} onSubmit=${(e) => {
              const reviewers = checked(e.currentTarget, "reviewers");
              const v = formData(e);
              act(cr, "submit", { description: v.description, reviewers }, "Change request submitted for review.");
            }}>
              <label>Description <input name="description" defaultValue=${cr.description} required /></label>
              ${members.loaded && html`<${Reviewers} members=${members} workflow=${workflow} />`}
              <button type="submit">Submit for review</button>
            </form>`}
            ${cr.status === "pending" &&
            reviewer &&
            html`<form class="row" aria-label=${`Review change request ${cr._id}`} onSubmit=${review(cr)}>
              <label>Comment <input name="comment" /></label>
              <button type="submit" value="approved">Approve</button>
              <button type="submit" value="rejected" class="secondary">Reject</button>
            </form>`}
            ${cr.status === "pending" && !reviewer && html`<p><small>Waiting for a reviewer${mine ? " (authors do not review their own requests)" : ""}.</small></p>`}
            <div class="row">
              ${cr.status === "approved" &&
              authorOrPublisher &&
              html`<button type="button" onClick=${() => act(cr, "apply", { description: cr.description || "applied", action: "applied" }, "Change request applied; edges serve it within a moment.")}>
                Apply change
              </button>`}
              ${authorOrPublisher &&
              can(org, "write") &&
              html`<button type="button" class="secondary outline" onClick=${() => confirm("Cancel this change request?") && act(cr, "cancel", {}, "Change request cancelled.")}>
                Cancel request
              </button>`}
            </div>
          </article>`;
        })}
  </section>`;
}

// Every change request of the project, by status.
export function ProjectChangeRequests({ params, query }) {
  const { org, project } = params;
  const [status, setStatus] = useState(query.status || "pending");
  const members = useMembers(org);
  const load = useLoad(() => get(`/v2/projects/${seg(project)}/change-requests`, { org, query: { status, perPage: 200 } }), [org, project, status]);
  return html`<h1>Change requests</h1>
    <form class="row" aria-label="Filter change requests" onSubmit=${(e) => e.preventDefault()}>
      <label>Status
        <select value=${status} onChange=${(e) => setStatus(e.target.value)}>
          <option value="">any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
    </form>
    ${!load.data
      ? html`<${Pending} load=${load} what="change requests" />`
      : load.data.length === 0
        ? html`<${Empty}>No ${status || ""} change requests.<//>`
        : html`<table>
            <thead><tr><th>Feature</th><th>Status</th><th>Description</th><th>Author</th><th>Reviewers</th><th>Updated</th></tr></thead>
            <tbody>
              ${load.data.map(
                (cr) => html`<tr>
                  <td><a href=${href("o", org, "p", project, "features", cr.feature.key)}>${cr.feature.name}</a></td>
                  <td>${cr.status}</td><td>${cr.description}</td><td>${members.name(cr._createdBy)}</td>
                  <td>${cr.reviewers.users.map(members.name).join(", ")}</td><td>${when(cr.updatedAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table>`}`;
}
