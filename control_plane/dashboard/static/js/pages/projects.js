// Projects (/v1/projects) and a project's environments with their SDK keys: rotate (a new key
// beside the old), invalidate (immediately refused by every edge), and copyable SDK snippets.
import { useState } from "preact/hooks";
import { get, post, put, seg } from "../api.js";
import { html } from "../html.js";
import { href } from "../router.js";
import { can } from "../session.js";
import { snippets } from "../snippets.js";
import { ActionState, Badge, CopyButton, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

const ENV_TYPES = ["development", "staging", "production", "disaster_recovery"];

export function Projects({ params }) {
  const { org } = params;
  const load = useLoad(() => get("/v1/projects", { org, query: { perPage: 1000 } }), [org]);
  const [run, state] = useAction();
  const create = (e) => {
    const f = formData(e);
    run(() => post("/v1/projects", { name: f.name, key: f.key, description: f.description }, { org }).then(load.reload), `Project ${f.key} created.`);
  };
  return html`<h1>Projects in ${org}</h1>
    ${!load.data
      ? html`<${Pending} load=${load} what="projects" />`
      : load.data.length === 0
        ? html`<${Empty}>No projects yet.<//>`
        : html`<table>
            <thead><tr><th>Project</th><th>Key</th><th>Description</th><th>Created</th></tr></thead>
            <tbody>
              ${load.data.map(
                (p) => html`<tr>
                  <td><a href=${href("o", org, "p", p.key, "features")}>${p.name}</a></td>
                  <td><code>${p.key}</code></td><td>${p.description}</td><td>${when(p.createdAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table>`}
    ${can(org, "admin") &&
    html`<h2>New project</h2>
      <form onSubmit=${create} aria-label="New project">
        <div class="row">
          <label>Name <input name="name" required /></label>
          <label>Key <input name="key" required pattern="[a-z0-9_.\\-]+" aria-describedby="key-help" /></label>
        </div>
        <small id="key-help">Lowercase letters, digits, <code>-</code>, <code>_</code> and <code>.</code>; SDKs and URLs use it.</small>
        <label>Description <input name="description" /></label>
        <button type="submit" aria-busy=${state.busy}>Create project</button>
      </form>`}
    <${ActionState} state=${state} />`;
}

export function Environments({ params }) {
  const { org, project } = params;
  const base = `/v1/projects/${seg(project)}`;
  const load = useLoad(() => Promise.all([get(`${base}/environments`, { org }), get("/live/edges")]), [org, project]);
  const [run, state] = useAction();
  // Full keys are shown once, in the answer that created them: kept here until the page changes.
  const [fresh, setFresh] = useState({});
  const admin = can(org, "admin");
  const remember = (env) => {
    const shown = {};
    for (const list of Object.values(env.sdkKeys)) for (const k of list) if (k.key) shown[k.prefix] = k.key;
    setFresh((f) => ({ ...f, ...shown }));
  };
  const create = (e) => {
    const f = formData(e);
    run(() => post(`${base}/environments`, { name: f.name, key: f.key, type: f.type }, { org }).then((env) => (remember(env), load.reload())), `Environment ${f.key} created; its keys are shown below once.`);
  };
  const rotate = (env, kind) =>
    run(() => post(`${base}/environments/${seg(env.key)}/keys`, { [kind]: true }, { org }).then((x) => (remember(x), load.reload())), `New ${kind} key for ${env.key} (the old one keeps working until you invalidate it).`);
  const invalidate = (env, k) => {
    if (confirm(`Invalidate ${k.prefix}…? SDKs using it are refused at once.`))
      run(() => put(`${base}/environments/${seg(env.key)}/keys/${seg(k.prefix)}/invalidate`, {}, { org }).then(load.reload), `Key ${k.prefix}… invalidated.`);
  };
  if (!load.data) return html`<${Pending} load=${load} what="environments" />`;
  const [envs, live] = load.data;
  const edge = live.edges[0]?.url || null;
  return html`<h1>Environments and SDK keys</h1>
    <${ActionState} state=${state} />
    ${envs.length === 0 && html`<${Empty}>No environments yet: SDKs need one to read flags.<//>`}
    ${envs.map(
      (env) => html`<section aria-labelledby=${`env-${env.key}`}>
        <h2 id=${`env-${env.key}`}>${env.name} <small><code>${env.key}</code> · ${env.type}</small></h2>
        <table>
          <thead><tr><th>Kind</th><th>Key</th><th>Created</th><th>State</th>${admin && html`<th>Actions</th>`}</tr></thead>
          <tbody>
            ${["client", "server", "mobile"].flatMap((kind) =>
              env.sdkKeys[kind].map(
                (k) => html`<tr>
                  <td>${kind}</td>
                  <td>
                    ${fresh[k.prefix]
                      ? html`<code class="secret" data-sdk-key=${kind}>${fresh[k.prefix]}</code> <${CopyButton} text=${fresh[k.prefix]} />`
                      : html`<code>${k.prefix}…</code>`}
                  </td>
                  <td>${when(k.createdAt)}</td>
                  <td>${k.compromised ? html`<${Badge} on=${false}>invalidated<//>` : html`<${Badge} on=${true}>active<//>`}</td>
                  ${admin && html`<td>${!k.compromised && html`<button class="secondary outline" onClick=${() => invalidate(env, k)}>Invalidate</button>`}</td>`}
                </tr>`,
              ),
            )}
          </tbody>
        </table>
        ${admin &&
        html`<div class="row">
          ${["client", "server", "mobile"].map((kind) => html`<button class="secondary" onClick=${() => rotate(env, kind)}>Rotate ${kind} key</button>`)}
        </div>`}
        <details>
          <summary>SDK snippets for ${env.key}</summary>
          ${snippets({ edge, env, fresh }).map(
            (s) => html`<h3>${s.title}</h3><pre class="snippet"><code>${s.code}</code></pre><${CopyButton} text=${s.code} label=${`Copy ${s.title}`} />`,
          )}
        </details>
      </section>`,
    )}
    ${admin &&
    html`<h2>New environment</h2>
      <form onSubmit=${create} class="row" aria-label="New environment">
        <label>Name <input name="name" required /></label>
        <label>Key <input name="key" required pattern="[a-z0-9_.\\-]+" /></label>
        <label>Type <select name="type">${ENV_TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
        <button type="submit">Create environment</button>
      </form>`}`;
}
