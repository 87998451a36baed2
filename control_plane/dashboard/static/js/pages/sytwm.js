// shareyourthoughtswith.me for the organisation: posts (create, edit as a new version, publish,
// unpublish) and the feedback inbox with moderation (hide, show again).
import { useState } from "preact/hooks";
import { get, post, seg } from "../api.js";
import { html } from "../html.js";
import { can } from "../session.js";
import { ActionState, Badge, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

const SAMPLE = JSON.stringify(
  { steps: [{ id: "useful", kind: "yes_no", label: "Was this useful?" }, { id: "why", kind: "text", label: "What should we change?" }] },
  null,
  2,
);

export function Sytwm({ params }) {
  const { org } = params;
  const load = useLoad(() => Promise.all([get("/admin/posts", { org }), get("/admin/feedback", { org, query: { limit: 100 } })]), [org]);
  const [run, state] = useAction();
  const [definition, setDefinition] = useState(SAMPLE);
  const write = can(org, "write");
  const act = (fn, notice) => run(() => fn().then(load.reload), notice);
  const create = (e) => {
    const f = formData(e);
    act(() => post("/admin/posts", { slug: f.slug, title: f.title, definition: JSON.parse(definition) }, { org }), `Post ${f.slug} created (not published).`);
  };
  if (!load.data) return html`<${Pending} load=${load} what="posts and feedback" />`;
  const [posts, feedback] = load.data;
  return html`<h1>Posts and feedback</h1>
    <${ActionState} state=${state} />
    <h2>Posts</h2>
    ${posts.length === 0
      ? html`<${Empty}>No posts yet.<//>`
      : html`<table>
          <thead><tr><th>Post</th><th>Steps</th><th>Versions</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${posts.map(
              (p) => html`<tr>
                <td><strong>${p.title}</strong><br /><code>${p.slug}</code></td>
                <td>${p.definition.steps.map((s) => html`<div><small>${s.kind}: ${s.label}</small></div>`)}</td>
                <td>latest v${p.latest_version}, ${p.published_version ? html`<${Badge} on=${true}>published v${p.published_version}<//>` : html`<${Badge} on=${false}>unpublished<//>`}</td>
                ${write &&
                html`<td>
                  ${p.published_version !== p.latest_version && html`<button type="button" onClick=${() => act(() => post(`/admin/posts/${seg(p.slug)}/publish`, {}, { org }), `Published v${p.latest_version}.`)}>Publish v${p.latest_version}</button> `}
                  ${p.published_version && html`<button type="button" class="secondary" onClick=${() => act(() => post(`/admin/posts/${seg(p.slug)}/unpublish`, {}, { org }), "Unpublished.")}>Unpublish</button>`}
                </td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>New post</summary>
      <form onSubmit=${create} aria-label="New post">
        <div class="row">
          <label>Slug <input name="slug" required /></label>
          <label>Title <input name="title" required /></label>
        </div>
        <label>Steps (JSON: yes_no, choice, text, rating) <textarea rows="8" value=${definition} onInput=${(e) => setDefinition(e.target.value)} /></label>
        <button type="submit">Create post</button>
      </form>
    </details>`}
    <h2>Feedback inbox</h2>
    ${feedback.items.length === 0
      ? html`<${Empty}>No feedback yet.<//>`
      : html`<table>
          <thead><tr><th>When</th><th>Post</th><th>Answers</th><th>Visibility</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${feedback.items.map(
              (f) => html`<tr>
                <td>${when(f.submitted_at)}<br /><small>${f.submitter_label || ""}</small></td>
                <td><code>${f.post_slug}</code></td>
                <td>${f.answers.map((a) => html`<div><small>${a.step_label || a.step_id}:</small> ${JSON.stringify(a.answer)}</div>`)}</td>
                <td>${f.is_hidden ? html`<${Badge} on=${false}>hidden<//>` : f.is_public ? html`<${Badge} on=${true}>public<//>` : "private"}</td>
                ${write &&
                html`<td><button type="button" class="secondary outline" onClick=${() => act(() => post(`/admin/feedback/${seg(f.id)}/${f.is_hidden ? "unhide" : "hide"}`, {}, { org }), f.is_hidden ? "Shown again." : "Hidden.")}>
                  ${f.is_hidden ? "Show" : "Hide"}
                </button></td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${feedback.next_cursor && html`<p><small>Showing the newest 100.</small></p>`}`;
}
