// A project's features: search (3+ characters, as the API takes it), filters by type and status,
// each feature's state per environment, and a new feature with a Boolean variable and on/off
// variations (the usual start; more variations and variables on the feature's page).
import { useEffect, useState } from "preact/hooks";
import { get, post, seg } from "../api.js";
import { html } from "../html.js";
import { href, navigate } from "../router.js";
import { can } from "../session.js";
import { ActionState, Badge, Empty, Pending, formData, useAction, useLoad } from "../ui.js";

export const TYPES = ["release", "experiment", "permission", "ops"];
export const STATUSES = ["active", "complete", "archived"];
// The list's ?staleness= filter (GET .../features): why a feature may be ready to clean up.
export const STALENESS = { all: "stale for any reason", unused: "unused", released: "released", unmodified: "unmodified for long", notStale: "not stale" };

// A feature's computed staleness (DevCycle's FeatureStalenessEntity) as a badge.
export function Staleness({ s }) {
  if (!s?.stale) return null;
  return html`<${Badge} warn=${true}>stale: ${s.reason || "yes"}<//>`;
}

export function Features({ params, query }) {
  const { org, project } = params;
  const base = `/v1/projects/${seg(project)}`;
  const [search, setSearch] = useState(query.search || "");
  const [filters, setFilters] = useState({ type: query.type || "", status: query.status || "", staleness: query.staleness || "" });
  const [sent, setSent] = useState(search);
  // The API searches from 3 characters; shorter input lists everything (and says so).
  useEffect(() => {
    const t = setTimeout(() => setSent(search.length >= 3 ? search : ""), 250);
    return () => clearTimeout(t);
  }, [search]);
  const load = useLoad(
    () => Promise.all([get(`${base}/features`, { org, query: { perPage: 1000, search: sent, ...filters } }), get(`${base}/environments`, { org })]),
    [org, project, sent, filters.type, filters.status, filters.staleness],
  );
  const [run, state] = useAction();
  const create = (e) => {
    const f = formData(e);
    const body = {
      key: f.key,
      name: f.name,
      type: f.type,
      description: f.description,
      variables: [{ key: f.key, type: "Boolean" }],
      variations: [
        { key: "on", name: "On", variables: { [f.key]: true } },
        { key: "off", name: "Off", variables: { [f.key]: false } },
      ],
    };
    run(() => post(`${base}/features`, body, { org }).then(() => navigate(href("o", org, "p", project, "features", f.key))));
  };
  return html`<h1>Features</h1>
    <form class="row" role="search" aria-label="Filter features" onSubmit=${(e) => e.preventDefault()}>
      <label>Search by key or name
        <input type="search" value=${search} onInput=${(e) => setSearch(e.target.value)} aria-describedby="search-help" />
        <small id="search-help">${search.length > 0 && search.length < 3 ? "Type at least 3 characters to search." : ""}</small>
      </label>
      <label>Type
        <select value=${filters.type} onChange=${(e) => setFilters({ ...filters, type: e.target.value })}>
          <option value="">any</option>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
        </select>
      </label>
      <label>Status
        <select value=${filters.status} onChange=${(e) => setFilters({ ...filters, status: e.target.value })}>
          <option value="">any</option>${STATUSES.map((t) => html`<option value=${t}>${t}</option>`)}
        </select>
      </label>
      <label>Staleness
        <select value=${filters.staleness} onChange=${(e) => setFilters({ ...filters, staleness: e.target.value })}>
          <option value="">any</option>${Object.entries(STALENESS).map(([k, t]) => html`<option value=${k}>${t}</option>`)}
        </select>
      </label>
    </form>
    ${!load.data ? html`<${Pending} load=${load} what="features" />` : html`<${FeatureTable} features=${load.data[0]} envs=${load.data[1]} org=${org} project=${project} filtered=${Boolean(sent || filters.type || filters.status || filters.staleness)} />`}
    ${can(org, "write") &&
    html`<h2>New feature</h2>
      <form onSubmit=${create} aria-label="New feature">
        <div class="row">
          <label>Key <input name="key" required pattern="[a-z0-9_.\\-]+" /></label>
          <label>Name <input name="name" required /></label>
          <label>Type <select name="type">${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
        </div>
        <label>Description <input name="description" /></label>
        <small>Starts with a Boolean variable named like the key, and variations <em>on</em> and <em>off</em>; off in every environment.</small>
        <button type="submit" aria-busy=${state.busy}>Create feature</button>
      </form>
      <${ActionState} state=${state} />`}`;
}

function FeatureTable({ features, envs, org, project, filtered }) {
  if (features.length === 0) return html`<${Empty}>${filtered ? "No feature matches these filters." : "No features yet."}<//>`;
  return html`<table>
    <thead>
      <tr><th>Feature</th><th>Type</th><th>Status</th><th>Staleness</th>${envs.map((e) => html`<th>${e.name}</th>`)}</tr>
    </thead>
    <tbody>
      ${features.map(
        (f) => html`<tr>
          <td><a href=${href("o", org, "p", project, "features", f.key)}>${f.name}</a><br /><small><code>${f.key}</code></small></td>
          <td>${f.type}</td>
          <td>${f.status}</td>
          <td data-staleness=${f.staleness?.stale ? f.staleness.reason : "fresh"}>${f.staleness?.stale ? html`<${Staleness} s=${f.staleness} />` : html`<small>no</small>`}</td>
          ${envs.map((e) => {
            const c = f.configurations.find((x) => x._environment === e._id);
            const on = c?.status === "active";
            return html`<td><${Badge} on=${on}>${on ? "on" : "off"}<//> ${on && c.targets.length > 0 ? html`<small>${c.targets.length} target${c.targets.length > 1 ? "s" : ""}</small>` : ""}</td>`;
          })}
        </tr>`,
      )}
    </tbody>
  </table>`;
}
