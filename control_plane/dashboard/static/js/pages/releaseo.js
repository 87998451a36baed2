// Releaseo for this project: feature-request moderation (approve/reject, workflow status),
// roadmap and changelog with their audiences, and the widget settings /sdk/config serves, with
// a live preview of the unsaved settings.
import { useState } from "preact/hooks";
import { ApiError, del, get, patch, post, put, seg } from "../api.js";
import { html } from "../html.js";
import { can } from "../session.js";
import { ActionState, Badge, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

const REVIEW = ["pending", "approved", "rejected"];
const REQUEST_STATUS = ["open", "planned", "in_progress", "done", "closed"];

// The widget config is absent until first saved (404): that is a state, not an error.
const widgetOrNone = (url, org) => get(url, { org }).catch((e) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e)));

export function Releaseo({ params }) {
  const { org, project } = params;
  const base = `/projects/${seg(project)}`;
  const [review, setReview] = useState("pending");
  const load = useLoad(
    () =>
      Promise.all([
        get(`${base}/feature-requests`, { org, query: { reviewStatus: review, limit: 100 } }),
        get(`${base}/roadmap`, { org }),
        get(`${base}/changelog`, { org, query: { limit: 100 } }),
        get(`${base}/segments`, { org, query: { limit: 100 } }),
        widgetOrNone(`${base}/widget-config`, org),
      ]),
    [org, project, review],
  );
  const [run, state] = useAction();
  const write = can(org, "write");
  if (!load.data) return html`<${Pending} load=${load} what="Releaseo" />`;
  const [requests, roadmap, changelog, segments, widget] = load.data;
  const act = (fn, notice) => run(() => fn().then(load.reload), notice);
  return html`<h1>Releaseo for ${project}</h1>
    <${ActionState} state=${state} />
    <h2>Feature requests</h2>
    <div role="group" aria-label="Review status">
      ${REVIEW.map((r) => html`<button type="button" class=${r === review ? "" : "secondary outline"} aria-pressed=${r === review} onClick=${() => setReview(r)}>${r}</button>`)}
    </div>
    ${requests.items.length === 0
      ? html`<${Empty}>No ${review} feature requests.<//>`
      : html`<table>
          <thead><tr><th>Request</th><th>Votes</th><th>From</th><th>Status</th>${write && html`<th>Moderation</th>`}</tr></thead>
          <tbody>
            ${requests.items.map(
              (r) => html`<tr data-request=${r.id}>
                <td><strong>${r.title}</strong> <${Badge}>${r.kind}<//><br /><small>${r.description}</small></td>
                <td>${r.voteCount}</td>
                <td>${r.authorName || r.authorUserId || r.source}<br /><small>${when(r.createdAt)}</small></td>
                <td>
                  ${write
                    ? html`<select aria-label=${`Status of ${r.title}`} value=${r.status} onChange=${(e) => act(() => patch(`${base}/feature-requests/${seg(r.id)}`, { status: e.target.value }, { org }), "Status changed.")}>
                        ${REQUEST_STATUS.map((s) => html`<option value=${s}>${s}</option>`)}
                      </select>`
                    : r.status}
                </td>
                ${write &&
                html`<td>
                  ${r.reviewStatus !== "approved" && html`<button type="button" onClick=${() => act(() => patch(`${base}/feature-requests/${seg(r.id)}`, { reviewStatus: "approved" }, { org }), `“${r.title}” approved: it is on the public board.`)}>Approve</button> `}
                  ${r.reviewStatus !== "rejected" && html`<button type="button" class="secondary" onClick=${() => act(() => patch(`${base}/feature-requests/${seg(r.id)}`, { reviewStatus: "rejected" }, { org }), `“${r.title}” rejected.`)}>Reject</button>`}
                </td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
    <${Segments} items=${segments.items} base=${base} org=${org} write=${write} act=${act} />
    <${Roadmap} items=${roadmap.items} segments=${segments.items} base=${base} org=${org} write=${write} act=${act} />
    <${Changelog} items=${changelog.items} segments=${segments.items} base=${base} org=${org} write=${write} act=${act} />
    <${Widget} widget=${widget} base=${base} org=${org} write=${write} act=${act} />`;
}

// Segments: saved Reflag filter trees; publishing one freezes a version that changelog entries
// and roadmap items targeted at it keep.
function Segments({ items, base, org, write, act }) {
  const create = (e) => {
    const f = formData(e);
    act(() => post(`${base}/segments`, { name: f.name, description: f.description, definition: JSON.parse(f.definition) }, { org }), `Segment ${f.name} saved (publish it to target with it).`);
  };
  return html`<h2>Segments</h2>
    ${items.length === 0
      ? html`<${Empty}>No segments: changelog and roadmap audiences can still be all users or a condition.<//>`
      : html`<table>
          <thead><tr><th>Segment</th><th>Definition</th><th>Published</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${items.map(
              (s) => html`<tr>
                <td><strong>${s.name}</strong><br /><small>${s.description}</small></td>
                <td><code>${JSON.stringify(s.definition)}</code></td>
                <td>${s.published ? html`v${s.published.version}${s.hasUnpublishedChanges ? html` <${Badge} warn=${true}>changed since<//>` : ""}` : html`<${Badge} on=${false}>never<//>`}</td>
                ${write && html`<td><button type="button" class="secondary" onClick=${() => act(() => post(`${base}/segments/${seg(s.id)}/publish`, {}, { org }), `Segment ${s.name} published.`)}>Publish</button></td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>New segment</summary>
      <form onSubmit=${create} aria-label="New segment">
        <div class="row">
          <label>Name <input name="name" required /></label>
          <label>Description <input name="description" /></label>
        </div>
        <label>Definition (Reflag filter JSON)
          <input name="definition" required value='{"type":"context","field":"user.plan","operator":"IS","values":["pro"]}' />
        </label>
        <button type="submit">Save segment</button>
      </form>
    </details>`}`;
}

// An audience picker: everyone, a saved segment, or a custom condition (Reflag filter JSON).
function AudienceFields({ segments, prefix }) {
  const [mode, setMode] = useState("all");
  return html`<div class="row">
    <label>Audience
      <select name="audienceMode" value=${mode} onChange=${(e) => setMode(e.target.value)} id=${`${prefix}-audience`}>
        <option value="all">all users</option><option value="segment">a saved segment</option><option value="condition">a custom condition</option>
      </select>
    </label>
    ${mode === "segment" && html`<label>Segment <select name="segmentId" required>${segments.map((s) => html`<option value=${s.id}>${s.name}</option>`)}</select></label>`}
    ${mode === "condition" && html`<label>Condition (Reflag filter JSON) <input name="filter" required placeholder='{"type":"context","field":"user.plan","operator":"IS","values":["pro"]}' /></label>`}
  </div>`;
}

function audienceOf(f) {
  if (f.audienceMode === "segment") return { mode: "segment", segmentId: f.segmentId };
  if (f.audienceMode === "condition") return { mode: "condition", filter: JSON.parse(f.filter) };
  return { mode: "all" };
}

function audienceText(a, segments) {
  if (!a || a.mode === "all") return "all users";
  if (a.mode === "segment") return `segment ${segments.find((s) => s.id === a.segmentId)?.name || a.segmentId}${a.segmentVersion ? ` v${a.segmentVersion}` : ""}`;
  return `condition ${JSON.stringify(a.filter)}`;
}

function Roadmap({ items, segments, base, org, write, act }) {
  const create = (e) => {
    const f = formData(e);
    const body = { title: f.title, description: f.description, status: f.status, visibility: f.visibility };
    if (f.visibility === "audience_targeted") body.audience = audienceOf(f);
    act(() => post(`${base}/roadmap`, body, { org }), "Roadmap item added.");
  };
  return html`<h2>Roadmap</h2>
    ${items.length === 0
      ? html`<${Empty}>The roadmap is empty.<//>`
      : html`<table>
          <thead><tr><th>Item</th><th>Status</th><th>Visibility</th><th>Followers</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${items.map(
              (i) => html`<tr><td><strong>${i.title}</strong><br /><small>${i.description}</small></td><td>${i.status}</td>
                <td>${i.visibility}${i.audience ? html`<br /><small>${audienceText(i.audience, segments)}</small>` : ""}</td><td>${i.followerCount}</td>
                ${write && html`<td><button type="button" class="secondary outline" onClick=${() => act(() => del(`${base}/roadmap/${seg(i.id)}`, { org }), "Item removed.")}>Remove</button></td>`}</tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>Add a roadmap item</summary>
      <form onSubmit=${create} aria-label="New roadmap item">
        <div class="row">
          <label>Title <input name="title" required /></label>
          <label>Status <select name="status">${["planned", "in_progress", "done"].map((s) => html`<option>${s}</option>`)}</select></label>
          <label>Visibility <select name="visibility">${["public", "internal_only", "audience_targeted"].map((s) => html`<option>${s}</option>`)}</select></label>
        </div>
        <label>Description <input name="description" /></label>
        <${AudienceFields} segments=${segments} prefix="roadmap" />
        <small>The audience applies when the visibility is audience_targeted.</small>
        <button type="submit">Add item</button>
      </form>
    </details>`}`;
}

function Changelog({ items, segments, base, org, write, act }) {
  const create = (e) => {
    const f = formData(e);
    act(() => post(`${base}/changelog`, { title: f.title, body: f.body, status: f.status, audience: audienceOf(f) }, { org }), "Changelog entry saved.");
  };
  return html`<h2>Changelog</h2>
    ${items.length === 0
      ? html`<${Empty}>No changelog entries.<//>`
      : html`<table>
          <thead><tr><th>Entry</th><th>Audience</th><th>State</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${items.map(
              (c) => html`<tr><td><strong>${c.title}</strong><br /><small>${c.body}</small></td><td>${audienceText(c.audience, segments)}</td>
                <td>${c.status}${c.publishedAt ? html`<br /><small>${when(c.publishedAt)}</small>` : ""}</td>
                ${write && html`<td>${c.status === "draft" && html`<button type="button" onClick=${() => act(() => patch(`${base}/changelog/${seg(c.id)}`, { status: "published" }, { org }), "Published.")}>Publish</button>`}</td>`}</tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>Write a changelog entry</summary>
      <form onSubmit=${create} aria-label="New changelog entry">
        <div class="row">
          <label>Title <input name="title" required /></label>
          <label>State <select name="status"><option>draft</option><option>published</option></select></label>
        </div>
        <label>Text <textarea name="body" rows="3" /></label>
        <${AudienceFields} segments=${segments} prefix="changelog" />
        <button type="submit">Save entry</button>
      </form>
    </details>`}`;
}

const DEFAULT_WIDGET = { theme: "light", primaryColor: "#1e6fd9", position: "bottom-right", title: "Share your feedback", launcherText: "Feedback" };

function Widget({ widget, base, org, write, act }) {
  const [text, setText] = useState(JSON.stringify(widget?.settings || DEFAULT_WIDGET, null, 2));
  let settings = null;
  let problem = null;
  try {
    settings = JSON.parse(text);
    if (typeof settings !== "object" || settings === null || Array.isArray(settings)) problem = "settings must be a JSON object";
  } catch (e) {
    problem = e.message;
  }
  const save = () => act(() => put(`${base}/widget-config`, { settings }, { org }), "Widget settings saved: /sdk/config serves them now.");
  const dark = settings?.theme === "dark";
  return html`<h2>Widget settings</h2>
    <p>${widget ? html`Project key for the widget and public routes: <code data-project-key>${widget.projectKey}</code> (version ${widget.version})` : "Not configured yet: saving creates the project key the widget uses."}</p>
    <div class="grid">
      <label>Settings (JSON, served by /sdk/config)
        <textarea rows="10" value=${text} onInput=${(e) => setText(e.target.value)} readonly=${!write} aria-invalid=${problem ? "true" : undefined} aria-describedby="widget-problem" />
        <small id="widget-problem">${problem || ""}</small>
      </label>
      <div aria-label="Widget preview" role="img" class="widget-preview" style=${{ background: dark ? "#1d232a" : "#fff", color: dark ? "#eee" : "#222" }}>
        ${settings && !problem
          ? html`<p><strong>${settings.title || "Feedback"}</strong></p>
              <p><small>Shown ${settings.position || "bottom-right"}, ${settings.theme || "light"} theme.</small></p>
              <span class="launcher" style=${{ background: settings.primaryColor || "#1e6fd9" }}>${settings.launcherText || "Feedback"}</span>`
          : html`<p class="empty">No preview: ${problem}</p>`}
      </div>
    </div>
    ${write && html`<button type="button" onClick=${save} disabled=${Boolean(problem)}>Save widget settings</button>`}`;
}
