// The audit log: the project's (GET /v1/projects/{p}/audit) or one feature's
// (GET .../features/{f}/audit, ?feature= in the route), newest first, filtered by environment and
// by who; an entry whose details hold the state before and after (targeting changes) shows them
// as a diff, other details as JSON.
import { useState } from "preact/hooks";
import { get, seg } from "../api.js";
import { Diff } from "../diff.js";
import { html } from "../html.js";
import { useMembers } from "../members.js";
import { href, navigate } from "../router.js";
import { Empty, Pending, useLoad, when } from "../ui.js";

const PER_PAGE = 50;

export function Audit({ params, query }) {
  const { org, project } = params;
  const base = `/v1/projects/${seg(project)}`;
  const feature = query.feature || "";
  const [environment, setEnvironment] = useState(query.environment || "");
  const [pages, setPages] = useState(1);
  const members = useMembers(org);
  const scope = useLoad(() => Promise.all([get(`${base}/features`, { org, query: { perPage: 1000 } }), get(`${base}/environments`, { org })]), [org, project]);
  const load = useLoad(
    () => get(feature ? `${base}/features/${seg(feature)}/audit` : `${base}/audit`, { org, query: { perPage: PER_PAGE * pages, environment } }),
    [org, project, feature, environment, pages],
  );
  const [features, envs] = scope.data || [[], []];
  const pick = (key) => navigate(href("o", org, "p", project, "audit") + (key ? `?feature=${encodeURIComponent(key)}` : ""));
  return html`<h1>Audit log${feature ? html` of <code>${feature}</code>` : ""}</h1>
    <p>Every change made through the admin API (this dashboard, scripts, API keys), who made it and why.</p>
    <form class="row" aria-label="Filter the audit log" onSubmit=${(e) => e.preventDefault()}>
      <label>Feature
        <select value=${feature} onChange=${(e) => pick(e.target.value)}>
          <option value="">the whole project</option>
          ${features.map((f) => html`<option value=${f.key}>${f.name} (${f.key})</option>`)}
        </select>
      </label>
      <label>Environment
        <select value=${environment} onChange=${(e) => (setEnvironment(e.target.value), setPages(1))}>
          <option value="">any</option>
          ${envs.map((e) => html`<option value=${e.key}>${e.name}</option>`)}
        </select>
      </label>
    </form>
    ${!load.data
      ? html`<${Pending} load=${load} what="the audit log" />`
      : load.data.length === 0
        ? html`<${Empty}>No entries${feature || environment ? " match these filters" : " yet"}.<//>`
        : html`<ol class="audit" aria-label="Audit entries">
              ${load.data.map((e, i) => html`<${Entry} key=${i} entry=${e} name=${members.name} />`)}
            </ol>
            ${load.data.length === PER_PAGE * pages && html`<button type="button" class="secondary" onClick=${() => setPages(pages + 1)}>Show older entries</button>`}`}`;
}

function Entry({ entry, name }) {
  const c = entry.changes[0];
  const { before, after, ...rest } = c.details || {};
  const hasDiff = before !== undefined || after !== undefined;
  return html`<li data-action=${c.action} data-target=${c.target}>
    <p>
      <strong>${c.action}</strong> <code>${c.target}</code>
      <br /><small>${when(entry.date)} · by ${name(entry.a0_user)}${c.changeReason ? html` · reason: <q>${c.changeReason}</q>` : ""}</small>
    </p>
    ${hasDiff && html`<${Diff} before=${before ?? {}} after=${after ?? {}} label=${`Changes of ${c.action} on ${c.target}`} />`}
    ${Object.keys(rest).length > 0 && html`<details><summary>Details</summary><pre>${JSON.stringify(rest, null, 2)}</pre></details>`}
  </li>`;
}
