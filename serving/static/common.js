// Shared by the nextbest pages: the API key (typed once, kept in this tab's session storage and sent as a
// header, never in a URL), JSON calls, safe DOM building (text only: rule messages and pasted YAML are data)
// and number formatting.
"use strict";

const NB = (() => {
  const KEY = "nextbest.apiKey";
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  };

  function keyInput() {
    const input = document.getElementById("api-key");
    if (!input) return;
    input.value = sessionStorage.getItem(KEY) || "";
    input.addEventListener("change", () => sessionStorage.setItem(KEY, input.value.trim()));
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY) || (document.getElementById("api-key") || {}).value || "";
    if (key) headers["X-API-Key"] = key.trim();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit" });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const message = (data && data.error) || `${response.status} ${response.statusText}`;
      const hint = response.status === 401 ? " Enter the service's API key at the top right." : "";
      throw new Error(message + hint);
    }
    return data;
  }

  const isNum = (x) => typeof x === "number" && Number.isFinite(x);
  const fmt = {
    int: (x) => (isNum(x) ? Math.round(x).toLocaleString("en-US") : "–"),
    num: (x, d = 3) => (isNum(x) ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "–"),
    signed: (x, d = 2) => (isNum(x) ? (x > 0 ? "+" : x < 0 ? "−" : "") + Math.abs(x).toFixed(d) : "–"),
    pct: (x, d = 1) => (isNum(x) ? (100 * x).toFixed(d) + "%" : "–"),
    signedPct: (x, d = 1) => (isNum(x) ? (x > 0 ? "+" : x < 0 ? "−" : "") + Math.abs(100 * x).toFixed(d) + "%" : "–"),
    money: (x, cur = "EUR", d = 2) => (isNum(x) ? x.toLocaleString("en-US", { style: "currency", currency: cur,
      minimumFractionDigits: d, maximumFractionDigits: d }) : "–"),
    age: (s) => {
      if (!isNum(s)) return "–";
      if (s < 90) return `${Math.round(s)} s ago`;
      if (s < 5400) return `${Math.round(s / 60)} min ago`;
      if (s < 2 * 86400) return `${(s / 3600).toFixed(1)} h ago`;
      return `${(s / 86400).toFixed(1)} days ago`;
    },
    days: (s) => (isNum(s) ? `${+(s / 86400).toFixed(1)} days` : "none"),
    ci: (lo, hi, d = 2) => (isNum(lo) && isNum(hi) ? `${fmt.signed(lo, d)} … ${fmt.signed(hi, d)}` : "n/a"),
  };

  function table(headers, rows, opts = {}) {
    const head = el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null, text: h.label || h })));
    const body = rows.map((r) => {
      const cells = r.cells || r;
      return el("tr", { class: r.class || null, "data-action": r.action || null },
        cells.map((c, i) => el("td", { class: headers[i] && headers[i].num ? "num" : null }, c)));
    });
    return el("table", { "data-testid": opts.testid || null }, el("thead", {}, head), el("tbody", {}, body));
  }

  const pill = (text, cls = "") => el("span", { class: `pill ${cls}`, text });
  const show = (node, on) => node.classList.toggle("hidden", !on);
  const clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); return node; };
  document.addEventListener("DOMContentLoaded", keyInput);
  return { el, call, fmt, table, pill, show, clear, isNum };
})();
