// Shared pieces of every page: loading a resource, running an action, and honest states
// (loading, empty, error) announced to assistive technology.
import { useCallback, useEffect, useState } from "preact/hooks";
import { html } from "./html.js";

// Loads `fn()` when `deps` change; `reload()` loads again (after a write).
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    fn().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => (live = false);
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

// An action (a write): `run(fn, done?)` shows busy, then the error or `done`'s notice.
export function useAction() {
  const [state, setState] = useState({ busy: false, error: null, notice: null });
  const run = useCallback(async (fn, notice) => {
    setState({ busy: true, error: null, notice: null });
    try {
      const result = await fn();
      setState({ busy: false, error: null, notice: typeof notice === "function" ? notice(result) : notice || null });
      return result;
    } catch (error) {
      setState({ busy: false, error, notice: null });
      return undefined;
    }
  }, []);
  return [run, state];
}

export function ErrorBox({ error, title }) {
  if (!error) return null;
  const details = error.details || [];
  return html`<div class="error-box" role="alert">
    <strong>${title || (error.status ? `Refused (${error.status})` : "Failed")}:</strong> ${error.message}
    ${details.length > 0 &&
    html`<ul>
      ${details.map((d) => html`<li><code>${d.field}</code>: ${d.message}</li>`)}
    </ul>`}
    ${error.requestId && html`<small> request ${error.requestId}</small>`}
  </div>`;
}

export function Notice({ children }) {
  return children ? html`<p class="notice" role="status">${children}</p>` : null;
}

export function ActionState({ state }) {
  return html`<${ErrorBox} error=${state.error} /><${Notice}>${state.notice}<//>`;
}

export function Loading({ what }) {
  return html`<p aria-busy="true">Loading ${what || ""}…</p>`;
}

export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

// What a useLoad result shows while it is not data: loading, or its error.
export function Pending({ load, what }) {
  if (load.error) return html`<${ErrorBox} error=${load.error} title=${`Could not load ${what}`} />`;
  return html`<${Loading} what=${what} />`;
}

export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      setDone(false);
    }
  };
  return html`<button type="button" class="secondary outline" onClick=${copy} aria-label=${`${label}: ${text.slice(0, 40)}`}>
    ${done ? "Copied" : label}
  </button>`;
}

export function Badge({ on, children, warn }) {
  return html`<span class=${`badge ${warn ? "warn" : on === undefined ? "" : on ? "on" : "off"}`}>${children}</span>`;
}

// Form values by input name, for onSubmit handlers.
export function formData(event) {
  event.preventDefault();
  return Object.fromEntries(new FormData(event.currentTarget));
}

export const pct = (x) => (x === null || x === undefined ? "" : `${Math.round(x * 10000) / 100}%`);

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}
