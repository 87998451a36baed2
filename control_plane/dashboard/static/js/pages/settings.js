// Project settings: the approval workflow (owners: PATCH .../settings/protected), webhooks with
// their delivery history (publishers), and the signed-in member's self-targeting (anyone: the SDK
// user id they test as, and per feature the variation that user id is served).
import { useState } from "preact/hooks";
import { del, get, patch, post, put, seg } from "../api.js";
import { html } from "../html.js";
import { REVIEWER_ROLES, useMembers } from "../members.js";
import { can } from "../session.js";
import { ActionState, Badge, CopyButton, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

export const WEBHOOK_EVENTS = [
  "createdFeature",
  "modifiedFeature",
  "deletedFeature",
  "modifiedFeatureStatus",
  "modifiedTargeting",
  "addedVariation",
  "modifiedVariation",
  "deletedVariation",
  "addedVariable",
  "modifiedVariable",
  "deletedVariable",
];

export function Settings({ params }) {
  const { org, project } = params;
  const base = `/v1/projects/${seg(project)}`;
  const load = useLoad(() => Promise.all([get(base, { org }), get(`${base}/environments`, { org })]), [org, project]);
  if (!load.data) return html`<${Pending} load=${load} what="the project's settings" />`;
  const [p, envs] = load.data;
  return html`<h1>Settings of ${p.name}</h1>
    <${Workflow} p=${p} base=${base} org=${org} reload=${load.reload} />
    ${can(org, "admin") && html`<${Webhooks} base=${base} org=${org} envs=${envs} />`}
    <${SelfTargeting} base=${base} org=${org} envs=${envs} />`;
}

function Workflow({ p, base, org, reload }) {
  const wf = p.settings.featureApprovalWorkflow || {};
  const owner = can(org, "owner");
  const members = useMembers(org);
  const [run, state] = useAction();
  const save = (e) => {
    const form = e.currentTarget;
    const v = formData(e);
    const defaultReviewers = [...form.querySelectorAll('input[name="defaultReviewers"]:checked')].map((i) => i.value);
    const featureApprovalWorkflow = { enabled: v.enabled === "on", allowPublisherBypass: v.allowPublisherBypass === "on", defaultReviewers };
    run(() => patch(`${base}/settings/protected`, { settings: { featureApprovalWorkflow } }, { org }).then(reload), "Approval workflow saved.");
  };
  const reviewers = members.list.filter((m) => REVIEWER_ROLES.includes(m.roles[0]));
  return html`<section aria-labelledby="workflow-title">
    <h2 id="workflow-title">Approval workflow</h2>
    <p>
      When on, a change of a feature's targeting or status in a <strong>production</strong> environment needs a change request
      approved by a publisher (admin) or owner. Now: <${Badge} on=${wf.enabled}>${wf.enabled ? "on" : "off"}<//>
      ${wf.enabled && html`<small> · publishers ${wf.allowPublisherBypass ? "may" : "may not"} write directly</small>`}
    </p>
    ${owner
      ? html`<form onSubmit=${save} aria-label="Approval workflow">
          <label><input type="checkbox" role="switch" name="enabled" defaultChecked=${wf.enabled} /> Require approval for production changes</label>
          <label><input type="checkbox" name="allowPublisherBypass" defaultChecked=${wf.allowPublisherBypass} /> Publishers and owners may write directly (and review their own requests)</label>
          <fieldset>
            <legend>Default reviewers</legend>
            ${reviewers.length === 0
              ? html`<${Empty}>No publisher or owner yet.<//>`
              : reviewers.map(
                  (m) => html`<label><input type="checkbox" name="defaultReviewers" value=${m.user_id} defaultChecked=${(wf.defaultReviewers || []).includes(m.user_id)} /> ${m.username} (${m.email})</label>`,
                )}
          </fieldset>
          <button type="submit" aria-busy=${state.busy}>Save workflow</button>
          <${ActionState} state=${state} />
        </form>`
      : html`<p><small>Only owners change the approval workflow.</small></p>`}
  </section>`;
}

function Webhooks({ base, org, envs }) {
  const load = useLoad(() => get(`${base}/webhooks`, { org, query: { perPage: 1000 } }), [org, base]);
  const [run, state] = useAction();
  const [open, setOpen] = useState(null);
  const create = (e) => {
    const form = e.currentTarget;
    const v = formData(e);
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
    const body = { name: v.name, description: v.description, url: v.url, events };
    if (v.environment) body._environments = [v.environment];
    run(
      () => post(`${base}/webhooks`, body, { org }).then((w) => (load.reload(), w)),
      (w) => html`Webhook ${w.name} created. Its signing secret (shown once): <code class="secret">${w.secret}</code> <${CopyButton} text=${w.secret} />`,
    );
  };
  const remove = (w) => confirm(`Delete webhook ${w.name}?`) && run(() => del(`${base}/webhooks/${seg(w._id)}`, { org }).then(load.reload), `Webhook ${w.name} deleted.`);
  return html`<section aria-labelledby="webhooks-title">
    <h2 id="webhooks-title">Webhooks</h2>
    <p>Each event is POSTed signed (<code>X-FlagEdge-Signature</code>), at least once, retried with backoff until a 2xx.</p>
    <${ActionState} state=${state} />
    ${!load.data
      ? html`<${Pending} load=${load} what="webhooks" />`
      : load.data.length === 0
        ? html`<${Empty}>No webhooks.<//>`
        : html`<table>
            <thead><tr><th>Webhook</th><th>URL</th><th>Events</th><th></th></tr></thead>
            <tbody>
              ${load.data.map(
                (w) => html`<tr data-webhook=${w._id}>
                    <td>${w.name}<br /><small>${w.description}</small></td><td><code>${w.url}</code></td><td>${w.events.join(", ")}</td>
                    <td>
                      <button type="button" class="secondary outline" aria-expanded=${open === w._id} onClick=${() => setOpen(open === w._id ? null : w._id)}>Deliveries</button>
                      <button type="button" class="secondary outline" onClick=${() => remove(w)} aria-label=${`Delete webhook ${w.name}`}>Delete</button>
                    </td>
                  </tr>
                  ${open === w._id && html`<tr><td colspan="4"><${Deliveries} url=${`${base}/webhooks/${seg(w._id)}/deliveries`} org=${org} /></td></tr>`}`,
              )}
            </tbody>
          </table>`}
    <details>
      <summary>New webhook</summary>
      <form onSubmit=${create} aria-label="New webhook">
        <div class="row">
          <label>Name <input name="name" required /></label>
          <label>URL <input name="url" type="url" required placeholder="https://hooks.example.com/flags" /></label>
          <label>Only environment
            <select name="environment"><option value="">every environment</option>${envs.map((e) => html`<option value=${e.key}>${e.name}</option>`)}</select>
          </label>
        </div>
        <label>Description <input name="description" /></label>
        <fieldset class="row">
          <legend>Events</legend>
          ${WEBHOOK_EVENTS.map((ev) => html`<label class="shrink"><input type="checkbox" name="events" value=${ev} defaultChecked=${ev === "modifiedTargeting"} /> ${ev}</label>`)}
        </fieldset>
        <button type="submit">Create webhook</button>
      </form>
    </details>
  </section>`;
}

function Deliveries({ url, org }) {
  const load = useLoad(() => get(url, { org, query: { perPage: 50 } }), [url]);
  if (!load.data) return html`<${Pending} load=${load} what="deliveries" />`;
  if (load.data.length === 0) return html`<${Empty}>Nothing delivered yet.<//>`;
  return html`<table aria-label="Deliveries">
    <thead><tr><th>Event</th><th>Status</th><th>Attempts</th><th>Created</th></tr></thead>
    <tbody>
      ${load.data.map(
        (d) => html`<tr>
          <td>${d.events.join(", ")}<br /><small><code>${d.eventId}</code></small></td>
          <td><${Badge} on=${d.status === "delivered"} warn=${d.status === "pending"}>${d.status}<//>${d.lastError ? html`<br /><small>${d.lastError}</small>` : ""}</td>
          <td>${d.history.map((a) => html`<div><small>#${a.attempt} ${when(a.at)}: ${a.statusCode ?? a.error} (${a.durationMs} ms)</small></div>`)}</td>
          <td>${when(d.createdAt)}${d.nextAttemptAt ? html`<br /><small>next try ${when(d.nextAttemptAt)}</small>` : ""}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

function SelfTargeting({ base, org, envs }) {
  const load = useLoad(
    () => Promise.all([get(`${base}/userProfile/current`, { org }), get(`${base}/overrides/current`, { org }), get(`${base}/features`, { org, query: { perPage: 1000 } })]),
    [org, base],
  );
  const [run, state] = useAction();
  const [featureKey, setFeatureKey] = useState("");
  if (!load.data) return html`<${Pending} load=${load} what="your self-targeting" />`;
  const [profile, overrides, features] = load.data;
  const chosen = features.find((f) => f.key === featureKey) || features[0];
  const saveProfile = (e) => {
    const v = formData(e);
    run(() => patch(`${base}/userProfile/current`, { dvcUserId: v.dvcUserId || null }, { org }).then(load.reload), "Your SDK user id is saved.");
  };
  const override = (e) => {
    const v = formData(e);
    run(
      () => put(`${base}/features/${seg(chosen.key)}/overrides/current`, { environment: v.environment, variation: v.variation }, { org }).then(load.reload),
      `You are served ${v.variation} of ${chosen.key}.`,
    );
  };
  const remove = (o) =>
    run(() => del(`${base}/features/${seg(o._feature)}/overrides/current`, { org, query: { environment: o._environment } }).then(load.reload), "Override removed.");
  return html`<section aria-labelledby="self-title">
    <h2 id="self-title">Self-targeting</h2>
    <p>Test a feature as yourself: the edge serves the variation you choose to the SDK user id you name here (reason <code>OVERRIDE</code>).</p>
    <${ActionState} state=${state} />
    <form class="row" onSubmit=${saveProfile} aria-label="Your SDK user id">
      <label>Your SDK user id (user.id in the app) <input name="dvcUserId" defaultValue=${profile.dvcUserId || ""} /></label>
      <button type="submit">Save user id</button>
    </form>
    ${overrides.length === 0
      ? html`<${Empty}>No overrides.<//>`
      : html`<table>
          <thead><tr><th>Feature</th><th>Environment</th><th>You get</th><th></th></tr></thead>
          <tbody>
            ${overrides.map(
              (o) => html`<tr><td>${o.featureName}</td><td>${o.environmentName}</td><td>${o.variationName}</td>
                <td><button type="button" class="secondary outline" onClick=${() => remove(o)}>Remove override</button></td></tr>`,
            )}
          </tbody>
        </table>`}
    ${profile.dvcUserId && chosen
      ? html`<form class="row" onSubmit=${override} aria-label="New override">
          <label>Feature <select value=${chosen.key} onChange=${(e) => setFeatureKey(e.target.value)}>${features.map((f) => html`<option value=${f.key}>${f.name}</option>`)}</select></label>
          <label>Environment <select name="environment">${envs.map((e) => html`<option value=${e.key}>${e.name}</option>`)}</select></label>
          <label>Variation <select name="variation">${chosen.variations.map((v) => html`<option value=${v.key}>${v.name}</option>`)}</select></label>
          <button type="submit">Override</button>
        </form>`
      : html`<p><small>${chosen ? "Name your SDK user id first." : "No features yet."}</small></p>`}
  </section>`;
}
