// A feature's evaluation counts (GET .../features/{f}/results/total-evaluations): per day of the
// last week, per variation served, in one environment or all; counted from SDK events and from
// the edges' own counters (README "DevCycle self-targeting, metrics and evaluation counts").
import { useState } from "preact/hooks";
import { get, seg } from "../api.js";
import { html } from "../html.js";
import { Empty, Pending, useLoad } from "../ui.js";

const DAY = 864e5;

export function EvaluationCounts({ f, envs, base, org }) {
  const [environment, setEnvironment] = useState("");
  const load = useLoad(
    () =>
      get(`${base}/features/${seg(f.key)}/results/total-evaluations`, {
        org,
        query: { environment, period: "day", startDate: Date.now() - 7 * DAY, endDate: Date.now() },
      }),
    [org, base, f.key, environment],
  );
  const series = load.data?.result?.evaluations || [];
  const variations = [...new Set(series.flatMap((d) => Object.keys(d.values)))];
  const total = series.reduce((n, d) => n + Object.values(d.values).reduce((a, b) => a + b, 0), 0);
  return html`<section aria-labelledby="evaluations-title">
    <h2 id="evaluations-title">Evaluations, last 7 days</h2>
    <label>Environment
      <select value=${environment} onChange=${(e) => setEnvironment(e.target.value)} aria-label="Environment of the evaluation counts">
        <option value="">all</option>${envs.map((e) => html`<option value=${e.key}>${e.name}</option>`)}
      </select>
    </label>
    ${!load.data
      ? html`<${Pending} load=${load} what="evaluation counts" />`
      : series.length === 0
        ? html`<${Empty}>No evaluations counted in this period (SDK events and edge counters arrive within a minute or so).<//>`
        : html`<p>Total: <strong data-evaluations-total>${total}</strong></p>
            <table>
              <thead><tr><th>Day (UTC)</th>${variations.map((v) => html`<th><code>${v}</code></th>`)}</tr></thead>
              <tbody>
                ${series.map((d) => html`<tr><td>${d.date.slice(0, 10)}</td>${variations.map((v) => html`<td>${d.values[v] || 0}</td>`)}</tr>`)}
              </tbody>
            </table>`}
  </section>`;
}
