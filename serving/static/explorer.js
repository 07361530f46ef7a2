// The decision explorer: POST explorer/lookup (the customer id travels in the body, never in the URL).
"use strict";

(() => {
  const { el, call, fmt, table, pill, show, clear } = NB;
  const $ = (id) => document.getElementById(id);
  let currency = "EUR";

  async function loadMeta() {
    try {
      const meta = await call("GET", "explorer/meta");
      currency = meta.currency || currency;
      const fill = (select, options) => {  // keep what the user chose when the list is loaded again
        const chosen = select.value;
        clear(select).append(...options);
        if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
      };
      fill($("channel"), meta.channels.map((c) => el("option", { value: c, text: c })));
      fill($("whatif-source"), [el("option", { value: "paste", text: "Paste YAML" }),
        ...meta.rule_files.map((f) => el("option", { value: f, text: `Server file: rules/${f}` }))]);
    } catch (e) { /* no key yet: the lookup will say so */ }
  }

  function summary(r) {
    const d = r.decision;
    const chosen = d.degraded ? "degraded fallback" : d.control ? "global control group" : d.explored ? "exploration" : "best net value";
    const flags = [
      d.control ? pill("control group", "warn") : null,
      d.explored ? pill("explored", "warn") : null,
      d.degraded ? pill("degraded", "stale") : null,
      pill("not recorded"),
    ];
    return [
      el("div", { class: "hero" },
        el("div", {}, el("div", { class: "notice", text: "Chosen action" }),
          el("div", { class: "action", "data-testid": "chosen-action", text: d.action })),
        el("div", {}, el("div", { class: "notice", text: "Policy's choice (greedy)" }),
          el("div", { class: "action", style: "font-size:18px", text: d.greedy_action })),
        el("dl", { class: "kv" },
          el("dt", { text: "customer" }), el("dd", { text: `${r.customer_id} · channel ${r.channel}` }),
          el("dt", { text: "why" }), el("dd", { text: chosen + (d.reason ? `: ${d.reason}` : "") }),
          el("dt", { text: "probability" }), el("dd", { text: fmt.num(d.probability, 3) }),
          el("dt", { text: "versions" }), el("dd", { text: `ruleset ${d.ruleset_version} · model ${d.model_version || "none"}` }),
          el("dt", { text: "as of" }), el("dd", { text: r.as_of })),
        el("div", {}, flags)),
    ];
  }

  function candidates(d, testid) {
    if (!d.candidates.length) return el("p", { class: "notice", text: "No model scores: the decision is a degraded fallback." });
    const blocked = Object.fromEntries(d.suppressed.map((s) => [s.action, s.rule_ids]));
    const rows = d.candidates.map((c) => ({
      action: c.action,
      class: c.action === d.action ? "chosen" : c.eligible ? null : "muted",
      cells: [String(c.rank), el("strong", { text: c.action }),
        c.eligible ? pill("eligible", "yes") : el("span", {}, (blocked[c.action] || ["ineligible"]).map((id) => pill(id, "rule"))),
        fmt.pct(c.propensity, 1), fmt.signedPct(c.uplift, 1), fmt.money(c.value, currency), fmt.money(c.cost, currency, 3),
        fmt.num(c.lever, 2), el("strong", { text: fmt.signed(c.net_value, 3) })],
    }));
    const H = (label, num) => ({ label, num });
    return table([H("#"), H("action"), H("eligibility"), H("P(convert)", 1), H("uplift", 1), H("order value", 1),
      H("cost", 1), H("lever", 1), H("net value", 1)], rows, { testid });
  }

  function suppressions(d) {
    const items = d.suppressed.flatMap((s) => s.rule_ids.map((id, i) =>
      el("div", { class: "suppression", "data-action": s.action, "data-rule": id },
        el("div", {}, el("strong", { text: s.action }), " ", pill(id, "rule")),
        el("div", { class: "message", text: s.messages[i] }))));
    const shadow = d.shadow.map((h) => el("div", { class: "suppression", style: "border-color:#9b7be0" },
      el("div", {}, el("strong", { text: h.action }), " ", pill(h.rule_id, "rule"), " ", pill("shadow: not applied")),
      el("div", { class: "message", text: h.message })));
    if (!items.length && !shadow.length) return el("p", { class: "notice", text: "No rule or contact policy suppressed anything." });
    return el("div", {}, items, shadow);
  }

  function features(f) {
    if (!f.available) return el("p", { class: "error", text: f.error });
    if (!f.found) return el("p", { class: "notice", text: "Unknown customer: the online store holds no features for this id." });
    return el("div", {}, f.views.map((v) => {
      const rows = Object.entries(v.features).map(([k, val]) => [k, val === null ? el("span", { class: "notice", text: "missing" }) : String(val)]);
      const cls = v.status === "computed" ? "" : v.status;
      return el("details", { class: "view", open: v.status !== "fresh" && v.status !== "computed" ? true : null },
        el("summary", {}, el("strong", { text: v.view }), pill(v.status, cls),
          el("span", { class: "age", text: v.status === "computed" ? "at request time" :
            `${fmt.age(v.age_s)} · limit ${fmt.days(v.freshness_limit_s)}` })),
        table(["feature", "value"], rows));
    }));
  }

  function history(h) {
    const entries = Object.entries(h || {});
    if (!entries.length) return el("p", { class: "notice", text: "No contacts in the history window." });
    const num = (x) => (typeof x === "number" && !Number.isInteger(x) ? x.toFixed(2) : String(x));
    const value = (v) => (v && typeof v === "object"
      ? Object.entries(v).filter(([, x]) => x).map(([k, x]) => `${k} ${num(x)}`).join(" · ") || "none" : num(v));
    return table(["measure", "value"], entries.map(([k, v]) => [k.replace(/_/g, " "), value(v)]));
  }

  function recent(list, error) {
    if (error) return el("p", { class: "error", text: error });
    if (!list.length) return el("p", { class: "notice", text: "No logged decisions for this customer." });
    const H = (label, num) => ({ label, num });
    return table([H("decided at"), H("channel"), H("action"), H("group"), H("outcome"), H("revenue", 1), H("suppressed by")],
      list.map((r) => [r.decided_at.replace("T", " ").replace("+00:00", " UTC"), r.action_channel || r.channel,
        el("span", {}, el("strong", { text: r.action }), r.greedy_action && r.greedy_action !== r.action ? ` (policy: ${r.greedy_action})` : ""),
        r.degraded ? pill("degraded", "stale") : r.control ? pill("control", "warn") : r.explored ? pill("explored", "warn") : pill("policy"),
        pill(r.outcome, r.outcome === "conversion" ? "up" : r.outcome === "dismissed" ? "down" : ""),
        r.revenue ? fmt.money(r.revenue, currency) : "–",
        el("span", {}, r.suppressed_by.map((id) => pill(id, "rule")))]), { testid: "recent" });
  }

  function whatif(w, live) {
    const box = $("whatif");
    clear(box);
    if (!w) { show(box, false); return; }
    show(box, true);
    const changed = w.changed;
    box.append(el("h2", { text: `What if: proposed ruleset ${w.ruleset_version}` }),
      el("div", { class: "hero" },
        el("div", {}, el("div", { class: "notice", text: "Live rules" }), el("div", { class: "action", text: live.greedy_action })),
        el("div", { class: "action", text: "→" }),
        el("div", {}, el("div", { class: "notice", text: "Proposed rules" }),
          el("div", { class: "action", "data-testid": "whatif-action", text: w.decision.greedy_action })),
        pill(changed ? "decision changes" : "no change", changed ? "warn" : "yes"),
        w.value_change ? el("div", { class: "meta" }, `Expected net value change: `,
          el("strong", { text: `${fmt.signed(w.value_change.value, 3)} ${currency}` }), ` (${w.value_change.basis})`) : null));
    if (w.note) box.append(el("p", { class: "notice", text: w.note }));
    if (w.rules.length) {
      box.append(el("h2", { text: "Rules that fire", style: "margin-top:14px" }),
        table(["rule", "mode (live → proposed)", "live", "proposed"], w.rules.map((r) => [pill(r.rule_id, "rule"),
          r.live_mode === r.proposed_mode ? r.live_mode : `${r.live_mode} → ${r.proposed_mode}`,
          r.live ? pill("fires", "warn") : "–", r.proposed ? pill("fires", "warn") : "–"])));
    }
    box.append(el("h2", { text: "Candidates under the proposed rules", style: "margin-top:14px" }), candidates(w.decision, "whatif-candidates"),
      el("h2", { text: "Suppressed under the proposed rules", style: "margin-top:14px" }), suppressions(w.decision));
  }

  async function lookup(ev) {
    if (ev) ev.preventDefault();
    const err = $("error");
    show(err, false);
    const body = { customer_id: $("customer").value.trim(), channel: $("channel").value };  // ids are opaque strings
    if ($("whatif-on").checked) {
      const src = $("whatif-source").value;
      body.whatif = src === "paste" ? { rules_yaml: $("whatif-yaml").value } : { rules_file: src };
    }
    $("go").disabled = true;
    try {
      const r = await call("POST", "explorer/lookup", body);
      clear($("summary")).append(...summary(r));
      clear($("candidates")).append(candidates(r.decision, "candidates"));
      clear($("suppressions")).append(suppressions(r.decision));
      clear($("features")).append(features(r.features));
      clear($("history")).append(history(r.contact_history));
      clear($("recent")).append(recent(r.recent, r.recent_error));
      whatif(r.whatif, r.decision);
      show($("result"), true);
      document.body.dataset.lookup = r.lookup_id;
    } catch (e) {
      err.textContent = e.message;
      show(err, true);
    } finally {
      $("go").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("lookup").addEventListener("submit", lookup);
    $("whatif-on").addEventListener("change", (e) => show($("whatif-form"), e.target.checked));
    $("whatif-source").addEventListener("change", (e) => show($("whatif-yaml"), e.target.value === "paste"));
    $("api-key").addEventListener("change", loadMeta);
    loadMeta();
  });
})();
