// Audience filter trees (DevCycle's shape: {"operator", "filters": [...]}) for people: a
// sentence that says what a tree matches, and an editor of "and"-ed user conditions for the
// common case (anything else is edited as JSON; the API checks both the same way).
import { html } from "./html.js";

export const ALL = { operator: "and", filters: [{ type: "all" }] };
export const SUB_TYPES = ["user_id", "email", "country", "platform", "platformVersion", "appVersion", "deviceModel", "customData"];
export const COMPARATORS = ["=", "!=", ">", ">=", "<", "<=", "exist", "!exist", "contain", "!contain", "startWith", "!startWith", "endWith", "!endWith"];

export function isAll(filters) {
  return JSON.stringify(filters) === JSON.stringify(ALL);
}

// The audience ids of a tree that is exactly one audienceMatch "=" node, else null.
export function audienceOnly(filters) {
  const f = filters?.filters;
  if (filters?.operator === "and" && f?.length === 1 && f[0].type === "audienceMatch" && (f[0].comparator || "=") === "=") return f[0]._audiences;
  return null;
}

export const audienceMatch = (ids) => ({ operator: "and", filters: [{ type: "audienceMatch", comparator: "=", _audiences: ids }] });

function nodeText(n, audienceName) {
  if (!n || typeof n !== "object") return String(n);
  if (n.type === "all") return "everyone";
  if (n.type === "user") {
    const field = n.subType === "customData" ? `customData.${n.dataKey}` : n.subType;
    const values = (n.values || []).map((v) => JSON.stringify(v)).join(" or ");
    return `${field} ${n.comparator}${values ? " " + values : ""}`;
  }
  if (n.type === "audienceMatch") return `${n.comparator === "!=" ? "not in" : "in"} audience ${(n._audiences || []).map(audienceName).join(" or ")}`;
  if (n.type === "optIn") return "opted in";
  if (n.type === "context") return `${n.field} ${n.operator} ${(n.values || []).join(", ")}`;
  if (n.filters) return "(" + n.filters.map((c) => nodeText(c, audienceName)).join(` ${(n.operator || "and").toUpperCase()} `) + ")";
  return JSON.stringify(n);
}

export function describe(filters, audiences = []) {
  const name = (id) => audiences.find((a) => a._id === id || a.key === id)?.name || id;
  const text = nodeText(filters, name);
  return text.startsWith("(") && text.endsWith(")") ? text.slice(1, -1) : text;
}

// Conditions <-> tree, for trees of "and"-ed user nodes (null when the tree is anything else).
export function conditionsOf(filters) {
  if (filters?.operator !== "and" || !Array.isArray(filters.filters)) return null;
  if (!filters.filters.every((n) => n.type === "user")) return null;
  return filters.filters.map((n) => ({
    subType: n.subType,
    comparator: n.comparator,
    values: (n.values || []).join(", "),
    dataKey: n.dataKey || "",
    dataKeyType: n.dataKeyType || "String",
  }));
}

export function treeOf(conditions) {
  return {
    operator: "and",
    filters: conditions.map((c) => {
      const node = { type: "user", subType: c.subType, comparator: c.comparator };
      if (!["exist", "!exist"].includes(c.comparator)) {
        let values = c.values.split(",").map((v) => v.trim()).filter((v) => v !== "");
        if (c.subType === "customData" && c.dataKeyType === "Number") values = values.map(Number);
        if (c.subType === "customData" && c.dataKeyType === "Boolean") values = values.map((v) => v === "true");
        node.values = values;
      }
      if (c.subType === "customData") Object.assign(node, { dataKey: c.dataKey, dataKeyType: c.dataKeyType });
      return node;
    }),
  };
}

export const newCondition = () => ({ subType: "email", comparator: "endWith", values: "", dataKey: "", dataKeyType: "String" });

// Rows of conditions; `onChange` gets the new list.
export function ConditionsEditor({ conditions, onChange, idPrefix, readOnly = false }) {
  const set = (i, patch) => onChange(conditions.map((c, j) => (i === j ? { ...c, ...patch } : c)));
  return html`<fieldset>
    <legend>Users for whom all of these hold</legend>
    ${conditions.map(
      (c, i) => html`<div class="row" key=${i}>
        <label>Property
          <select value=${c.subType} onChange=${(e) => set(i, { subType: e.target.value })} id=${`${idPrefix}-sub-${i}`}>
            ${SUB_TYPES.map((s) => html`<option value=${s}>${s}</option>`)}
          </select>
        </label>
        ${c.subType === "customData" &&
        html`<label>Custom property key <input value=${c.dataKey} onInput=${(e) => set(i, { dataKey: e.target.value })} required /></label>
          <label>Type
            <select value=${c.dataKeyType} onChange=${(e) => set(i, { dataKeyType: e.target.value })}>
              ${["String", "Number", "Boolean"].map((t) => html`<option value=${t}>${t}</option>`)}
            </select>
          </label>`}
        <label>Comparator
          <select value=${c.comparator} onChange=${(e) => set(i, { comparator: e.target.value })}>
            ${COMPARATORS.map((s) => html`<option value=${s}>${s}</option>`)}
          </select>
        </label>
        <label>Values (comma-separated) <input value=${c.values} onInput=${(e) => set(i, { values: e.target.value })} /></label>
        ${!readOnly && html`<button type="button" class="secondary outline shrink" onClick=${() => onChange(conditions.filter((_, j) => j !== i))} aria-label=${`Remove condition ${i + 1}`}>Remove</button>`}
      </div>`,
    )}
    ${!readOnly && html`<button type="button" class="secondary" onClick=${() => onChange([...conditions, newCondition()])}>Add condition</button>`}
  </fieldset>`;
}
