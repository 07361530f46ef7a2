// The analytics page: GET analytics/data?since_days=N (no customer data), or the figures embedded by
// `nextbest report` (window.NEXTBEST_REPORT), drawn with the SVG charts of charts.js.
"use strict";

(() => {
  const { el, call, fmt, table, pill, show, clear, isNum } = NB;
  const $ = (id) => document.getElementById(id);
  const COLORS = { treated: "#2f5bea", control: "#8a94a6", degraded: "#e0a030", lift: "#12805c", ctr: "#7b4fd6" };

  function kpi(label, value, detail, opts = {}) {
    return el("div", { class: `kpi ${opts.lead ? "lead" : ""}`, "data-testid": opts.testid || null },
      el("div", { class: "label", text: label }),
      el("div", { class: `value ${opts.cls || ""}`, "data-testid": opts.testid ? `${opts.testid}-value` : null, text: value }),
      detail ? el("div", { class: "detail", text: detail }) : null);
  }

  const signCls = (l) => (l && isNum(l.ci_low) && l.ci_low > 0 ? "pos" : l && isNum(l.ci_high) && l.ci_high < 0 ? "neg" : "");
  const level = (d) => `${Math.round(100 * d.level)}% CI`;

  function kpis(d) {
    const t = d.totals, s = t.served, cur = d.currency, rev = d.lift.revenue, conv = d.lift.conversion;
    const inc = d.incremental_revenue;
    return [
      kpi("Revenue lift / decision", isNum(rev.value) ? `${fmt.signed(rev.value, 2)} ${cur}` : "n/a",
        isNum(rev.value) ? `${level(d)} ${fmt.ci(rev.ci_low, rev.ci_high)} · ${fmt.signedPct(rev.relative)} vs control` : rev.note,
        { lead: true, testid: "lift-revenue", cls: signCls(rev) }),
      kpi("Conversion lift", isNum(conv.value) ? `${fmt.signed(100 * conv.value, 2)} pp` : "n/a",
        isNum(conv.value) ? `${level(d)} ${fmt.ci(100 * conv.ci_low, 100 * conv.ci_high)} pp` : conv.note,
        { lead: true, testid: "lift-conversion", cls: signCls(conv) }),
      kpi("Incremental revenue", isNum(inc.value) ? fmt.money(inc.value, cur, 0) : "n/a",
        isNum(inc.value) ? `${level(d)} ${fmt.money(inc.ci_low, cur, 0)} … ${fmt.money(inc.ci_high, cur, 0)}` : "needs a control group",
        { lead: true, testid: "incremental" }),
      kpi("Decisions", fmt.int(t.decisions), `${fmt.int(t.treated)} policy · ${fmt.int(t.control)} control (${fmt.pct(t.control_share)})`,
        { testid: "decisions" }),
      kpi("Impressions", fmt.int(s.impressions), `${fmt.int(s.clicks)} clicks`),
      kpi("Click-through", fmt.pct(s.ctr), "clicks / impressions"),
      kpi("Conversion", fmt.pct(s.conversion_rate), `control group ${fmt.pct(t.control_group.conversion_rate)}`),
      kpi("Average order value", fmt.money(s.aov, cur), `${fmt.int(s.orders)} orders`),
      kpi("Revenue", fmt.money(s.revenue, cur, 0), `${fmt.money(s.revenue_per_decision, cur)} per decision`),
      kpi("Degraded decisions", fmt.pct(t.degraded_rate), `${fmt.int(t.degraded)} fallbacks · ${fmt.pct(t.explored_rate)} explored`,
        { cls: t.degraded_rate > 0.05 ? "neg" : "", testid: "degraded" }),
    ];
  }

  function charts(d) {
    const days = d.daily.map((x) => x.day);
    const lift = d.daily.map((x) => x.lift.revenue);
    Charts.lines($("chart-lift"), days, [{ name: "lift", color: COLORS.lift, values: lift.map((l) => l.value) }],
      { zero: true, band: { name: level(d), color: COLORS.lift, low: lift.map((l) => l.ci_low), high: lift.map((l) => l.ci_high) } });
    Charts.lines($("chart-revenue"), days, [
      { name: "policy", color: COLORS.treated, values: lift.map((l) => l.treated) },
      { name: "control group", color: COLORS.control, values: lift.map((l) => l.control), dash: "5 4" }], { zero: true });
    Charts.stackedBars($("chart-decisions"), days, [
      { name: "policy", color: COLORS.treated, values: d.daily.map((x) => x.served.decisions - x.degraded) },
      { name: "control group", color: COLORS.control, values: d.daily.map((x) => x.control.decisions) },
      { name: "degraded", color: COLORS.degraded, values: d.daily.map((x) => x.degraded) }]);
    Charts.lines($("chart-rates"), days, [
      { name: "click-through", color: COLORS.ctr, values: d.daily.map((x) => x.served.ctr) },
      { name: "conversion (policy)", color: COLORS.treated, values: d.daily.map((x) => x.served.conversion_rate) },
      { name: "conversion (control)", color: COLORS.control, values: d.daily.map((x) => x.control.conversion_rate), dash: "5 4" }],
      { zero: true, yFormat: (v) => `${Math.round(v * 100)}%` });
  }

  function actions(d) {
    const H = (label, num) => ({ label, num });
    const rows = d.actions.map((r) => {
      const l = r.lift.revenue;
      return { action: r.action, cells: [el("strong", { text: r.action }), r.channel || "–", fmt.int(r.decisions),
        fmt.int(r.impressions), fmt.pct(r.ctr), fmt.pct(r.conversion_rate), fmt.money(r.aov, d.currency), fmt.money(r.revenue, d.currency, 0),
        `${fmt.int(r.policy_decisions)} / ${fmt.int(r.control_decisions)}`,
        el("span", { class: signCls(l) }, isNum(l.value) ? fmt.signed(l.value, 2) : "n/a"),
        isNum(l.value) ? fmt.ci(l.ci_low, l.ci_high) : (l.note || "")] };
    });
    return table([H("action"), H("channel"), H("decisions", 1), H("impressions", 1), H("CTR", 1), H("conversion", 1), H("AOV", 1),
      H("revenue", 1), H("chosen: policy / control", 1), H(`lift / decision (${d.currency})`, 1), H(level(d), 1)], rows, { testid: "actions" });
  }

  function rules(d) {
    if (!d.rules.length) return el("p", { class: "notice", text: "No rule fired in this window." });
    const bar = (rate, cls) => el("div", { class: "bar-cell" }, el("div", { class: `bar ${cls}`, style: `width:${Math.min(100, 100 * (rate || 0))}%` }),
      el("span", { text: fmt.pct(rate) }));
    return table([{ label: "rule" }, { label: "suppressed on", num: 1 }, { label: "share of decisions" }, { label: "shadow hits", num: 1 }],
      d.rules.map((r) => [pill(r.rule_id, "rule"), fmt.int(r.suppressed), bar(r.suppressed_rate, ""),
        r.shadow ? `${fmt.int(r.shadow)} (${fmt.pct(r.shadow_rate)})` : "–"]), { testid: "rules" });
  }

  function method(d) {
    return el("div", { class: "notice" },
      el("p", { text: "Lift is the difference in revenue (or conversion) per decision between customers served by the policy and the " +
        "global control group, whose members are drawn by a hash of the customer id and always get no action. The interval is " +
        `a normal (Welch) ${level(d)} from both groups' variances; with fewer than two decisions in a group no lift is shown.` }),
      el("p", { text: "Click-through is clicks per impression; conversion is converted decisions per decision; average order value is " +
        "revenue per conversion event. Degraded decisions (features or model unavailable) are counted above and excluded from lift." }),
      el("p", { text: `Window ${d.window.since} → ${d.window.until} (UTC).` }));
  }

  function render(d) {
    clear($("kpis")).append(...kpis(d));
    charts(d);
    clear($("actions")).append(actions(d));
    clear($("rules")).append(rules(d));
    clear($("method")).append(method(d));
    $("window-text").textContent = `${fmt.int(d.totals.decisions)} decisions from ${d.window.since.slice(0, 16).replace("T", " ")} to ` +
      `${d.window.until.slice(0, 16).replace("T", " ")} UTC: engagement and revenue per action and channel, and the incremental lift over the global control group.`;
    show($("result"), true);
    document.body.dataset.loaded = "true";
  }

  async function load(ev) {
    if (ev) ev.preventDefault();
    show($("error"), false);
    $("refresh").disabled = true;
    try {
      const d = await call("GET", `analytics/data?since_days=${encodeURIComponent($("since").value)}`);
      $("took").textContent = `computed in ${d.seconds} s`;
      render(d);
    } catch (e) {
      $("error").textContent = e.message;
      show($("error"), true);
    } finally {
      $("refresh").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (window.NEXTBEST_REPORT) {  // the self-contained report of `nextbest report`
      document.querySelectorAll(".live-only").forEach((n) => n.classList.add("hidden"));
      render(window.NEXTBEST_REPORT);
      return;
    }
    $("controls").addEventListener("submit", load);
    $("since").addEventListener("change", load);
    $("api-key").addEventListener("change", load);
    load();
  });
})();
