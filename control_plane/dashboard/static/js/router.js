// Hash routes (#/o/acme/p/shop/features): the server serves one page and needs no route table,
// and the browser's back/forward and bookmarks work. Patterns use :name segments.
import { useEffect, useState } from "preact/hooks";

function current() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(query)) };
}

export function useLocation() {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const on = () => setLoc(current());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return loc;
}

export function match(pattern, path) {
  const p = pattern.split("/").filter(Boolean);
  const s = path.split("/").filter(Boolean);
  if (p.length !== s.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

// "#/o/acme/p/shop" from ("o", "acme", "p", "shop"), each segment encoded.
export const href = (...segments) => "#/" + segments.map((x) => encodeURIComponent(x)).join("/");

export function navigate(to) {
  location.hash = to.replace(/^#/, "");
}
