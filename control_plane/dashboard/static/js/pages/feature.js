// One feature: its variations and variables, and per environment its targeting — on/off, ordered
// targets (audience, rollout with its current percentage, distribution over variations,
// bucketingKey) — and a "try a context" panel that asks the control plane what the edge would
// answer for a context (POST .../evaluate: the saved configuration through the evaluator).
import { useEffect, useState } from "preact/hooks";
import { get, patch, post, seg } from "../api.js";
import { ALL, ConditionsEditor, audienceMatch, audienceOnly, conditionsOf, describe, isAll, newCondition, treeOf } from "../filters.js";
import { html } from "../html.js";
import { href } from "../router.js";
import { can } from "../session.js";
import { ActionState, Badge, Empty, ErrorBox, Notice, Pending, formData, pct, useAction, useLoad } from "../ui.js";
import { FeatureChangeRequests, ProposeChange, needsApproval } from "./changes.js";
import { EvaluationCounts } from "./evaluations.js";
import { STATUSES, TYPES, Staleness } from "./features.js";

const ROLLOUTS = ["none", "schedule", "gradual", "stepped"];

// ISO instant <-> the value of an <input type="datetime-local"> (the browser's time zone).
function toLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
const toIso = (local) => new Date(local).toISOString();

function editable(t, variations) {
  const ids = audienceOnly(t.audience.filters);
  const conditions = conditionsOf(t.audience.filters);
  const mode = isAll(t.audience.filters) ? "all" : ids ? "audience" : conditions ? "conditions" : "json";
  const shares = Object.fromEntries(variations.map((v) => [v._id, 0]));
  for (const d of t.distribution) shares[d._variation] = Math.round(d.percentage * 10000) / 100;
  const r = t.rollout;
  return {
    _id: t._id,
    name: t.name || t.audience.name || "",
    mode,
    audienceId: ids?.[0] || "",
    conditions: conditions || [newCondition()],
    json: JSON.stringify(t.audience.filters, null, 2),
    rollout: {
      type: r?.type || "none",
      startPercentage: r?.startPercentage !== undefined ? r.startPercentage * 100 : 0,
      startDate: toLocal(r?.startDate || new Date().toISOString()),
      stages: (r?.stages || []).map((s) => ({ type: s.type, date: toLocal(s.date), percentage: s.percentage * 100 })),
    },
    shares,
    bucketingKey: t.bucketingKey || "",
  };
}

// A new target: everyone, all of it to the first variation.
function fresh(variations) {
  const t = editable({ audience: { filters: ALL }, distribution: [] }, variations);
  t.shares = Object.fromEntries(variations.map((v, i) => [v._id, i === 0 ? 100 : 0]));
  return t;
}

function toApi(t) {
  let filters;
  if (t.mode === "all") filters = ALL;
  else if (t.mode === "audience") filters = audienceMatch([t.audienceId]);
  else if (t.mode === "conditions") filters = treeOf(t.conditions);
  else filters = JSON.parse(t.json);
  const out = { audience: { name: t.name || undefined, filters }, distribution: [] };
  if (t._id) out._id = t._id;
  if (t.name) out.name = t.name;
  for (const [id, share] of Object.entries(t.shares)) if (Number(share) > 0) out.distribution.push({ _variation: id, percentage: Number(share) / 100 });
  const r = t.rollout;
  if (r.type !== "none") {
    out.rollout = { type: r.type, startDate: toIso(r.startDate) };
    if (r.type !== "schedule") out.rollout.startPercentage = Number(r.startPercentage) / 100;
    if (r.type !== "schedule" && r.stages.length)
      out.rollout.stages = r.stages.map((s) => ({ type: s.type, date: toIso(s.date), percentage: Number(s.percentage) / 100 }));
  }
  if (t.bucketingKey) out.bucketingKey = t.bucketingKey;
  return out;
}

export function Feature({ params, query }) {
  const { org, project, feature } = params;
  const base = `/v1/projects/${seg(project)}`;
  const load = useLoad(
    () =>
      Promise.all([
        get(`${base}/features/${seg(feature)}`, { org }),
        get(`${base}/environments`, { org }),
        get(`${base}/audiences`, { org, query: { perPage: 1000 } }),
        get(base, { org }),
      ]),
    [org, project, feature],
  );
  const [envKey, setEnvKey] = useState(query.env || null);
  // Bumped when a change request is created here, so the list below shows it.
  const [proposals, setProposals] = useState(0);
  if (!load.data) return html`<${Pending} load=${load} what="the feature" />`;
  const [f, envs, audiences, p] = load.data;
  const workflow = p.settings?.featureApprovalWorkflow || {};
  const env = envs.find((e) => e.key === envKey) || envs[0];
  const write = can(org, "write");
  return html`<h1>${f.name} <small><code>${f.key}</code></small></h1>
    <p>
      <${Badge}>${f.type}<//> <${Badge} warn=${f.status !== "active"}>${f.status}<//>
      ${f.tags.map((t) => html` <${Badge}>${t}<//>`)} <${Staleness} s=${f.staleness} /> ${f.description}
    </p>
    <p><a href=${href("o", org, "p", project, "audit") + `?feature=${encodeURIComponent(f.key)}`}>Audit log of this feature</a></p>
    <${FeatureStatus} f=${f} base=${base} org=${org} write=${write} reload=${load.reload} />
    <${Variations} f=${f} base=${base} org=${org} write=${write} reload=${load.reload} />
    <h2>Targeting</h2>
    ${envs.length === 0
      ? html`<${Empty}>This project has no environments yet.<//>`
      : html`<div role="group" aria-label="Environment">
            ${envs.map(
              (e) => html`<button type="button" class=${e.key === env.key ? "" : "secondary outline"} aria-pressed=${e.key === env.key} onClick=${() => setEnvKey(e.key)}>
                ${e.name}
              </button>`,
            )}
          </div>
          <${EnvironmentTargeting}
            key=${env.key}
            f=${f}
            env=${env}
            config=${f.configurations.find((c) => c._environment === env._id)}
            audiences=${audiences}
            base=${base}
            org=${org}
            project=${project}
            workflow=${workflow}
            onProposed=${() => setProposals((n) => n + 1)}
            write=${write}
            reload=${load.reload}
          />`}
    ${(workflow.enabled || f.changeRequests?.length > 0 || proposals > 0) &&
    html`<${FeatureChangeRequests} f=${f} envs=${envs} org=${org} project=${project} workflow=${workflow} reload=${load.reload} version=${proposals} />`}
    <${EvaluationCounts} f=${f} envs=${envs} base=${base} org=${org} />`;
}

function FeatureStatus({ f, base, org, write, reload }) {
  const [run, state] = useAction();
  if (!write) return null;
  const submit = (e) => {
    const v = formData(e);
    const body = { status: v.status };
    if (v.status === "complete") body.staticVariation = v.staticVariation;
    run(() => patch(`${base}/features/${seg(f.key)}/status`, body, { org }).then(reload), `Status set to ${v.status}.`);
  };
  const edit = (e) => {
    const v = formData(e);
    const tags = v.tags.split(",").map((t) => t.trim()).filter(Boolean);
    run(() => patch(`${base}/features/${seg(f.key)}`, { name: v.name, description: v.description, type: v.type, tags }, { org }).then(reload), "Feature saved.");
  };
  return html`<details>
    <summary>Edit the feature and its status</summary>
    <form onSubmit=${edit} aria-label="Edit feature">
      <div class="row">
        <label>Name <input name="name" value=${f.name} required /></label>
        <label>Type <select name="type" value=${f.type}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
        <label>Tags (comma-separated) <input name="tags" value=${f.tags.join(", ")} /></label>
      </div>
      <label>Description <input name="description" value=${f.description} /></label>
      <button type="submit">Save feature</button>
    </form>
    <form class="row" onSubmit=${submit} aria-label="Feature status">
      <label>Status <select name="status" value=${f.status}>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Variation everyone gets when complete
        <select name="staticVariation" value=${f.staticVariation || ""}>${f.variations.map((v) => html`<option value=${v.key}>${v.name}</option>`)}</select>
      </label>
      <button type="submit">Set status</button>
    </form>
    <${ActionState} state=${state} />
  </details>`;
}

function Variations({ f, base, org, write, reload }) {
  const [run, state] = useAction();
  const addVariation = (e) => {
    const v = formData(e);
    let variables;
    try {
      variables = JSON.parse(v.variables || "{}");
    } catch (err) {
      run(() => Promise.reject(new Error(`variable values are not JSON: ${err.message}`)));
      return;
    }
    run(() => post(`${base}/features/${seg(f.key)}/variations`, { key: v.key, name: v.name, variables }, { org }).then(reload), `Variation ${v.key} added.`);
  };
  const addVariable = (e) => {
    const v = formData(e);
    run(() => post(`${base}/variables`, { key: v.key, type: v.type, _feature: f.key }, { org }).then(reload), `Variable ${v.key} added.`);
  };
  return html`<h2>Variations</h2>
    ${f.variations.length === 0
      ? html`<${Empty}>No variations: targets serve the feature as simply on.<//>`
      : html`<table>
          <thead><tr><th>Variation</th><th>Key</th>${f.variables.map((x) => html`<th>${x.key} <small>(${x.type})</small></th>`)}</tr></thead>
          <tbody>
            ${f.variations.map(
              (v) => html`<tr>
                <td>${v.name}${f.controlVariation === v.key ? html` <${Badge}>control<//>` : ""}</td><td><code>${v.key}</code></td>
                ${f.variables.map((x) => html`<td><code>${JSON.stringify(v.variables[x.key] ?? null)}</code></td>`)}
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details>
      <summary>Add a variation or variable</summary>
      <form class="row" onSubmit=${addVariation} aria-label="New variation">
        <label>Variation key <input name="key" required /></label>
        <label>Name <input name="name" required /></label>
        <label>Variable values (JSON) <input name="variables" placeholder=${`{"${f.variables[0]?.key || "my-variable"}": true}`} /></label>
        <button type="submit">Add variation</button>
      </form>
      <form class="row" onSubmit=${addVariable} aria-label="New variable">
        <label>Variable key <input name="key" required /></label>
        <label>Type <select name="type">${["Boolean", "String", "Number", "JSON"].map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
        <button type="submit">Add variable</button>
      </form>
    </details>`}
    <${ActionState} state=${state} />`;
}

function EnvironmentTargeting({ f, env, config, audiences, base, org, project, workflow, onProposed, write, reload }) {
  const url = `${base}/features/${seg(f.key)}/configurations`;
  const on = config?.status === "active";
  const reflag = config?.targeting !== undefined;
  const [targets, setTargets] = useState(() => (config?.targets || []).map((t) => editable(t, f.variations)));
  const [dirty, setDirty] = useState(false);
  const [reason, setReason] = useState("");
  const [run, state] = useAction();
  const [tried, setTried] = useState(null);
  // The body of a write the approval workflow refused (412): offered as a change request.
  const [proposal, setProposal] = useState(null);
  // Once proposed, the refusal above is answered: say so instead.
  const [proposed, setProposed] = useState(null);
  const change = (next) => (setTargets(next), setDirty(true));
  const send = async (body) => {
    setProposal(null);
    setProposed(null);
    try {
      return await patch(url, body, { org, query: { environment: env.key } });
    } catch (e) {
      if (needsApproval(e)) setProposal(body);
      throw e;
    }
  };
  // A saved change comes back with the ids the server gave new targets (DevCycle buckets by
  // target id, so a later save must send them back): take the saved targets unless editing.
  useEffect(() => {
    if (!dirty) setTargets((config?.targets || []).map((t) => editable(t, f.variations)));
  }, [config?.targetingVersion]);
  // The switch shows the state asked for while the write is under way, then the saved state.
  const [wanted, setWanted] = useState(null);
  useEffect(() => setWanted(null), [config?.status]);
  const toggle = async () => {
    setWanted(!on);
    const done = await run(
      () => send({ status: on ? "inactive" : "active", change_reason: reason || undefined }).then(reload).then(() => true),
      `${f.key} turned ${on ? "off" : "on"} in ${env.name}.`,
    );
    if (!done) setWanted(null);
  };
  const save = () =>
    run(async () => {
      await send({ targets: targets.map(toApi), change_reason: reason || undefined });
      setDirty(false);
      reload();
    }, `Targeting saved in ${env.name}; edges serve it within a moment.`);
  const move = (i, d) => {
    const next = [...targets];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    change(next);
  };
  return html`<section aria-label=${`Targeting in ${env.name}`}>
    <div class="row">
      <p class="shrink">
        In <strong>${env.name}</strong>: <${Badge} on=${on}>${on ? "on" : "off"}<//>
        <small> targeting version ${config?.targetingVersion ?? 0}</small>
      </p>
      ${write &&
      html`<div class="shrink">
        <label><input type="checkbox" role="switch" checked=${wanted ?? on} onChange=${toggle} aria-describedby="toggle-help" /> Serve ${f.key} in ${env.name}</label>
        <small id="toggle-help">Off: every context gets the default.</small>
      </div>`}
    </div>
    ${write &&
    workflow.enabled &&
    env.type === "production" &&
    !(workflow.allowPublisherBypass && can(org, "admin")) &&
    html`<p><small>Protected by the approval workflow: a change here is proposed as a change request for a publisher to approve.</small></p>`}
    ${reflag
      ? html`<p>This environment uses Reflag-style rules (edit them through the API):</p><pre>${JSON.stringify(config.targeting.rules, null, 2)}</pre>`
      : html`${targets.length === 0 && html`<${Empty}>No targets: ${on ? "nobody" : "nobody (and the feature is off)"} is served a variation here.<//>`}
          ${targets.map(
            (t, i) => html`<${TargetEditor}
              key=${t._id || i}
              index=${i}
              count=${targets.length}
              t=${t}
              f=${f}
              audiences=${audiences}
              write=${write}
              now=${tried?.targets?.[i]}
              onChange=${(nt) => change(targets.map((x, j) => (j === i ? nt : x)))}
              onMove=${(d) => move(i, d)}
              onRemove=${() => change(targets.filter((_, j) => j !== i))}
            />`,
          )}
          ${write &&
          html`<div class="row">
            <button type="button" class="secondary" onClick=${() => change([...targets, fresh(f.variations)])}>Add target</button>
            <label>Change reason (optional, goes to the audit log) <input value=${reason} onInput=${(e) => setReason(e.target.value)} /></label>
            <button type="button" onClick=${save} disabled=${!dirty || state.busy} aria-busy=${state.busy}>Save targeting</button>
          </div>`}`}
    ${proposed ? html`<${Notice}>${proposed}<//>` : html`<${ActionState} state=${state} />`}
    ${proposal &&
    html`<${ProposeChange}
      org=${org}
      project=${project}
      feature=${f.key}
      path=${`/v1/projects/${seg(project)}/features/${seg(f.key)}/configurations?environment=${encodeURIComponent(env.key)}`}
      body=${proposal}
      workflow=${workflow}
      onDone=${(notice) => {
        setProposed(notice);
        setProposal(null);
        setDirty(false);
        setTargets((config?.targets || []).map((t) => editable(t, f.variations)));
        onProposed();
      }}
      onCancel=${() => setProposal(null)}
    />`}
    <${TryContext} f=${f} env=${env} base=${base} org=${org} version=${config?.targetingVersion} status=${config?.status} onResult=${setTried} draft=${dirty && !reflag ? () => ({ targets: targets.map(toApi) }) : null} />
  </section>`;
}

function TargetEditor({ index, count, t, f, audiences, write, now, onChange, onMove, onRemove }) {
  const id = `t${index}`;
  const set = (patch) => onChange({ ...t, ...patch });
  const setRollout = (patch) => set({ rollout: { ...t.rollout, ...patch } });
  const total = Object.values(t.shares).reduce((a, b) => a + Number(b || 0), 0);
  let summary;
  try {
    summary = describe(toApi(t).audience.filters, audiences);
  } catch {
    summary = "(filter JSON does not parse)";
  }
  return html`<fieldset class="target" disabled=${!write} aria-labelledby=${`${id}-title`}>
    <header>
      <strong id=${`${id}-title`}>Target ${index + 1}${t.name ? `: ${t.name}` : ""}</strong>
      ${write &&
      html`<span class="buttons">
        <button type="button" class="secondary outline" disabled=${index === 0} onClick=${() => onMove(-1)} aria-label=${`Move target ${index + 1} up`}>↑</button>
        <button type="button" class="secondary outline" disabled=${index === count - 1} onClick=${() => onMove(1)} aria-label=${`Move target ${index + 1} down`}>↓</button>
        <button type="button" class="secondary outline" onClick=${onRemove} aria-label=${`Remove target ${index + 1}`}>Remove</button>
      </span>`}
    </header>
    <small>Matches: ${summary}</small>
    <div class="row">
      <label>Target name <input value=${t.name} onInput=${(e) => set({ name: e.target.value })} /></label>
      <label>Who
        <select value=${t.mode} onChange=${(e) => set({ mode: e.target.value })} aria-label=${`Audience of target ${index + 1}`}>
          <option value="all">Everyone</option>
          <option value="audience">A saved audience</option>
          <option value="conditions">Users matching conditions</option>
          <option value="json">Filter JSON</option>
        </select>
      </label>
      ${t.mode === "audience" &&
      html`<label>Audience
        <select value=${t.audienceId} onChange=${(e) => set({ audienceId: e.target.value })} aria-label=${`Saved audience of target ${index + 1}`} required>
          <option value="">Choose…</option>
          ${audiences.map((a) => html`<option value=${a._id}>${a.name} (${a.key})</option>`)}
        </select>
      </label>`}
    </div>
    ${t.mode === "conditions" && html`<${ConditionsEditor} conditions=${t.conditions} onChange=${(c) => set({ conditions: c })} idPrefix=${id} readOnly=${!write} />`}
    ${t.mode === "json" && html`<label>Filter JSON <textarea rows="6" value=${t.json} onInput=${(e) => set({ json: e.target.value })} /></label>`}
    <div class="row">
      <label>Rollout
        <select value=${t.rollout.type} onChange=${(e) => setRollout({ type: e.target.value })} aria-label=${`Rollout of target ${index + 1}`}>
          ${ROLLOUTS.map((r) => html`<option value=${r}>${r === "none" ? "everyone at once" : r}</option>`)}
        </select>
      </label>
      ${t.rollout.type !== "none" &&
      html`<label>Starts <input type="datetime-local" value=${t.rollout.startDate} onInput=${(e) => setRollout({ startDate: e.target.value })} /></label>`}
      ${["gradual", "stepped"].includes(t.rollout.type) &&
      html`<label>Start percentage
        <input type="number" min="0" max="100" step="0.01" value=${t.rollout.startPercentage} onInput=${(e) => setRollout({ startPercentage: e.target.value })} aria-label=${`Start percentage of target ${index + 1}`} />
      </label>`}
      ${now?.rolloutPercentage !== undefined && now?.rolloutPercentage !== null && html`<p class="shrink">Now: <strong data-current-percentage>${pct(now.rolloutPercentage)}</strong></p>`}
    </div>
    ${["gradual", "stepped"].includes(t.rollout.type) &&
    html`<fieldset>
      <legend>Stages</legend>
      ${t.rollout.stages.length === 0 && html`<${Empty}>No stages: the rollout stays at its start percentage.<//>`}
      ${t.rollout.stages.map(
        (s, j) => html`<div class="row">
          <label>Kind <select value=${s.type} onChange=${(e) => setRollout({ stages: t.rollout.stages.map((x, k) => (k === j ? { ...x, type: e.target.value } : x)) })}>
            <option value="linear">linear (ramps to it)</option><option value="discrete">discrete (jumps)</option></select></label>
          <label>At <input type="datetime-local" value=${s.date} onInput=${(e) => setRollout({ stages: t.rollout.stages.map((x, k) => (k === j ? { ...x, date: e.target.value } : x)) })} /></label>
          <label>Percentage <input type="number" min="0" max="100" value=${s.percentage} onInput=${(e) => setRollout({ stages: t.rollout.stages.map((x, k) => (k === j ? { ...x, percentage: e.target.value } : x)) })} /></label>
          ${write && html`<button type="button" class="secondary outline shrink" onClick=${() => setRollout({ stages: t.rollout.stages.filter((_, k) => k !== j) })}>Remove</button>`}
        </div>`,
      )}
      ${write && html`<button type="button" class="secondary" onClick=${() => setRollout({ stages: [...t.rollout.stages, { type: "linear", date: toLocal(new Date(Date.now() + 7 * 864e5).toISOString()), percentage: 100 }] })}>Add stage</button>`}
    </fieldset>`}
    <fieldset>
      <legend>Distribution <small>(${total}% of 100%)</small></legend>
      <div class="row">
        ${f.variations.map(
          (v) => html`<label>${v.name} %
            <input type="number" min="0" max="100" step="0.01" value=${t.shares[v._id] ?? 0} onInput=${(e) => set({ shares: { ...t.shares, [v._id]: e.target.value } })} aria-label=${`Share of ${v.key} in target ${index + 1}`} />
          </label>`,
        )}
        <label>Bucketing key <input value=${t.bucketingKey} placeholder="user_id" onInput=${(e) => set({ bucketingKey: e.target.value })} aria-describedby=${`${id}-bk`} />
          <small id=${`${id}-bk`}>What rollouts and distributions hash: user_id unless a custom property is named.</small>
        </label>
      </div>
    </fieldset>
  </fieldset>`;
}

const SAMPLE = JSON.stringify({ user: { id: "user-1", email: "ada@example.com", customData: { plan: "pro" } } }, null, 2);

// `draft`: while targets are edited and not saved, a function giving them as the API takes them;
// the control plane then evaluates them as they would be saved (and saves nothing).
function TryContext({ f, env, base, org, version, status, onResult, draft }) {
  const [text, setText] = useState(SAMPLE);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const evaluate = async () => {
    let context;
    try {
      context = JSON.parse(text);
    } catch (e) {
      setError(new Error(`The context is not JSON: ${e.message}`));
      return;
    }
    try {
      const url = `${base}/features/${seg(f.key)}/evaluate`;
      const r = draft
        ? await post(url, { context, configuration: draft() }, { org, query: { environment: env.key } })
        : await get(url, { org, query: { environment: env.key, context: JSON.stringify(context) } });
      setResult(r);
      setError(null);
      onResult(r);
    } catch (e) {
      setError(e);
    }
  };
  // Re-evaluated whenever the saved configuration changes (and on first show, for the
  // rollouts' current percentages).
  useEffect(() => void evaluate(), [env.key, version, status]);
  return html`<article aria-labelledby="try-title">
    <header><h3 id="try-title">Try a context in ${env.name}</h3></header>
    <p><small>${draft
      ? "Evaluates your unsaved targeting with the evaluator, as the edge would answer once it is saved (nothing is saved)."
      : "Evaluates the saved configuration with the evaluator, as the edge answers it now."}</small></p>
    <label>Context (JSON: user.id, user.email, user.customData…)
      <textarea rows="5" value=${text} onInput=${(e) => setText(e.target.value)} name="context" />
    </label>
    <button type="button" onClick=${evaluate}>Evaluate</button>
    <${ErrorBox} error=${error} />
    ${result &&
    html`<div role="status" aria-live="polite" data-try-result>
      <p>
        <${Badge} on=${result.enabled}>${result.enabled ? "enabled" : "not enabled"}<//>
        ${result.variation && html` variation <code data-variation>${result.variation}</code>`}
        <small> reason ${result.reason}${result.draft ? " · unsaved draft" : ""}</small>
      </p>
      <p data-explanation>${result.explanation}</p>
      ${result.targets.length > 0 &&
      html`<table>
        <thead><tr><th>Target</th><th>In audience</th><th>Rollout now</th><th>Qualified</th></tr></thead>
        <tbody>
          ${result.targets.map(
            (t) => html`<tr class=${result.target?.index === t.index ? "ok" : ""}>
              <td>${t.index + 1}${t.name ? `: ${t.name}` : ""}${result.target?.index === t.index ? " (served)" : ""}</td>
              <td>${t.audienceMatch === null ? "?" : t.audienceMatch ? "yes" : "no"}</td>
              <td>${t.rolloutPercentage === null ? "everyone" : pct(t.rolloutPercentage)}</td>
              <td>${t.qualified ? "yes" : "no"}</td>
            </tr>`,
          )}
        </tbody>
      </table>`}
      ${result.missingContextFields.length > 0 && html`<p>Missing in the context: ${result.missingContextFields.join(", ")}</p>`}
    </div>`}
  </article>`;
}
