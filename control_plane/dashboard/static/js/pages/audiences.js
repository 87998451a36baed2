// Audiences: reusable filter trees that targets reference (audienceMatch), and the project's
// custom properties (typed context fields).
import { useState } from "preact/hooks";
import { del, get, patch, post, seg } from "../api.js";
import { ConditionsEditor, conditionsOf, describe, newCondition, treeOf } from "../filters.js";
import { html } from "../html.js";
import { can } from "../session.js";
import { ActionState, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

export function Audiences({ params }) {
  const { org, project } = params;
  const base = `/v1/projects/${seg(project)}`;
  const load = useLoad(
    () => Promise.all([get(`${base}/audiences`, { org, query: { perPage: 1000, includeUsage: true } }), get(`${base}/customProperties`, { org, query: { perPage: 1000 } })]),
    [org, project],
  );
  const [run, state] = useAction();
  const [conditions, setConditions] = useState([newCondition()]);
  const [json, setJson] = useState("");
  const write = can(org, "write");
  // The audience being edited (its key), shown in a form below its row.
  const [editing, setEditing] = useState(null);
  const create = (e) => {
    const f = formData(e);
    run(async () => {
      const filters = json.trim() ? JSON.parse(json) : treeOf(conditions);
      await post(`${base}/audiences`, { name: f.name, key: f.key, description: f.description, filters }, { org });
      setConditions([newCondition()]);
      setJson("");
      load.reload();
    }, `Audience ${f.key} created.`);
  };
  const remove = (a) => {
    if (confirm(`Delete audience ${a.key}?`)) run(() => del(`${base}/audiences/${seg(a.key)}`, { org }).then(load.reload), `Audience ${a.key} deleted.`);
  };
  const addProperty = (e) => {
    const f = formData(e);
    run(() => post(`${base}/customProperties`, { name: f.name, key: f.key, type: f.type, propertyKey: f.propertyKey }, { org }).then(load.reload), `Custom property ${f.key} added.`);
  };
  if (!load.data) return html`<${Pending} load=${load} what="audiences" />`;
  const [audiences, properties] = load.data;
  return html`<h1>Audiences</h1>
    <${ActionState} state=${state} />
    ${audiences.length === 0
      ? html`<${Empty}>No audiences yet. A target can also name its users directly.<//>`
      : html`<table>
          <thead><tr><th>Audience</th><th>Key</th><th>Matches</th><th>Updated</th>${write && html`<th></th>`}</tr></thead>
          <tbody>
            ${audiences.map(
              (a) => html`<tr>
                <td>${a.name}<br /><small>${a.description}</small></td><td><code>${a.key}</code></td>
                <td>${describe(a.filters, audiences)}</td><td>${when(a.updatedAt)}</td>
                ${write &&
                html`<td>
                  <button class="secondary outline" onClick=${() => setEditing(editing === a.key ? null : a.key)} aria-expanded=${editing === a.key} aria-label=${`Edit audience ${a.key}`}>Edit</button>
                  <button class="secondary outline" onClick=${() => remove(a)} aria-label=${`Delete audience ${a.key}`}>Delete</button>
                </td>`}
              </tr>
              ${editing === a.key &&
              html`<tr><td colspan="5"><${EditAudience} a=${a} base=${base} org=${org} onDone=${() => (setEditing(null), load.reload())} /></td></tr>`}`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<h2>New audience</h2>
      <form onSubmit=${create} aria-label="New audience">
        <div class="row">
          <label>Name <input name="name" required /></label>
          <label>Key <input name="key" required pattern="[a-z0-9_.\\-]+" /></label>
          <label>Description <input name="description" /></label>
        </div>
        <${ConditionsEditor} conditions=${conditions} onChange=${setConditions} idPrefix="new-audience" />
        <details>
          <summary>Or write the filter as JSON (nested groups, audienceMatch, Reflag nodes)</summary>
          <label>Filter JSON (used instead of the conditions when filled)
            <textarea rows="5" value=${json} onInput=${(e) => setJson(e.target.value)} placeholder=${JSON.stringify(treeOf(conditions))} />
          </label>
        </details>
        <button type="submit" aria-busy=${state.busy}>Create audience</button>
      </form>`}
    <h2>Custom properties</h2>
    ${properties.length === 0
      ? html`<${Empty}>No custom properties declared (undeclared custom data still works, untyped).<//>`
      : html`<table>
          <thead><tr><th>Name</th><th>Key</th><th>Type</th><th>Context field</th></tr></thead>
          <tbody>${properties.map((p) => html`<tr><td>${p.name}</td><td><code>${p.key}</code></td><td>${p.type}</td><td><code>${p.propertyKey}</code></td></tr>`)}</tbody>
        </table>`}
    ${write &&
    html`<form class="row" onSubmit=${addProperty} aria-label="New custom property">
      <label>Name <input name="name" required /></label>
      <label>Key <input name="key" required pattern="[a-z0-9_.\\-]+" /></label>
      <label>Type <select name="type">${["String", "Number", "Boolean"].map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
      <label>Context field <input name="propertyKey" required /></label>
      <button type="submit">Add property</button>
    </form>`}`;
}

// Editing an audience (PATCH .../audiences/{key}): name, description, and its filter as
// conditions when it is a list of "and"-ed user conditions, else as JSON. Every target that
// references it follows at once (the API republishes the features that use it).
function EditAudience({ a, base, org, onDone }) {
  const simple = conditionsOf(a.filters);
  const [conditions, setConditions] = useState(simple || [newCondition()]);
  const [json, setJson] = useState(simple ? "" : JSON.stringify(a.filters, null, 2));
  const [run, state] = useAction();
  const save = (e) => {
    const f = formData(e);
    run(async () => {
      const filters = json.trim() ? JSON.parse(json) : treeOf(conditions);
      await patch(`${base}/audiences/${seg(a.key)}`, { name: f.name, description: f.description, filters }, { org });
      onDone();
    });
  };
  const usage = a.usage?.features?.length ? `Used by ${a.usage.features.length} feature(s): they follow the change at once.` : "";
  return html`<form onSubmit=${save} aria-label=${`Edit audience ${a.key}`}>
    <div class="row">
      <label>Name <input name="name" defaultValue=${a.name} required /></label>
      <label>Description <input name="description" defaultValue=${a.description || ""} /></label>
    </div>
    ${!json.trim() && html`<${ConditionsEditor} conditions=${conditions} onChange=${setConditions} idPrefix=${`edit-${a.key}`} />`}
    <details open=${!simple}>
      <summary>Filter as JSON (used instead of the conditions when filled)</summary>
      <label>Filter JSON <textarea rows="6" value=${json} onInput=${(e) => setJson(e.target.value)} placeholder=${JSON.stringify(treeOf(conditions))} /></label>
    </details>
    ${usage && html`<p><small>${usage}</small></p>`}
    <button type="submit" aria-busy=${state.busy}>Save audience</button>
    <${ActionState} state=${state} />
  </form>`;
}
