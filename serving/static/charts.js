// Small SVG charts for the analytics page: daily stacked bars and lines with an optional interval band.
// No library and nothing fetched: the page works offline and inside the self-contained HTML report.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 240, M = { top: 26, right: 16, bottom: 34, left: 58 };
  const svgEl = (tag, attrs = {}, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const finite = (x) => typeof x === "number" && Number.isFinite(x);

  function ticks(lo, hi, n = 5) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function frame(days, lo, hi, yFormat) {
    const t = ticks(lo, hi);
    lo = Math.min(lo, t[0]); hi = Math.max(hi, t[t.length - 1]);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const n = Math.max(days.length, 1), band = pw / n;
    const x = (i) => M.left + band * (i + 0.5);
    const y = (v) => M.top + ph - ((v - lo) / (hi - lo || 1)) * ph;
    const grid = svgEl("g", { class: "grid" }), axis = svgEl("g", { class: "axis" });
    for (const v of t) {
      grid.append(svgEl("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      axis.append(svgEl("text", { x: M.left - 8, y: y(v) + 4, "text-anchor": "end" }, yFormat(v)));
    }
    const every = Math.ceil(n / 8);
    days.forEach((d, i) => {
      if (i % every === 0 || i === n - 1) axis.append(svgEl("text", { x: x(i), y: H - 12, "text-anchor": "middle" }, d.slice(5)));
    });
    axis.append(svgEl("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph, stroke: "#c9d0dc" }));
    svg.append(grid, axis);
    return { svg, x, y, band, lo, hi };
  }

  function legend(svg, items) {
    const g = svgEl("g", { class: "legend" });
    let at = M.left;
    for (const it of items) {
      g.append(svgEl("rect", { x: at, y: 8, width: 10, height: 10, rx: 2, fill: it.color, opacity: it.opacity || 1 }));
      const label = svgEl("text", { x: at + 15, y: 17 }, it.name);
      g.append(label);
      at += 26 + it.name.length * 6.2;
    }
    svg.append(g);
  }

  // series: [{name, color, values}] stacked per day.
  function stackedBars(container, days, series, yFormat = (v) => v.toLocaleString("en-US")) {
    const totals = days.map((_, i) => series.reduce((s, se) => s + (se.values[i] || 0), 0));
    const f = frame(days, 0, Math.max(1, ...totals), yFormat);
    const width = Math.max(2, Math.min(28, f.band * 0.7));
    days.forEach((_, i) => {
      let base = 0;
      for (const se of series) {
        const v = se.values[i] || 0;
        if (v > 0) {
          const top = f.y(base + v), bottom = f.y(base);
          f.svg.append(svgEl("rect", { x: f.x(i) - width / 2, y: top, width, height: Math.max(0.5, bottom - top),
            fill: se.color }, undefined));
        }
        base += v;
      }
    });
    legend(f.svg, series);
    container.replaceChildren(f.svg);
  }

  // lines: [{name, color, values, dash}], band: {low: [], high: [], color}; zero: draw a y = 0 rule.
  function lines(container, days, lineSeries, opts = {}) {
    const yFormat = opts.yFormat || ((v) => v.toFixed(2));
    const all = lineSeries.flatMap((s) => s.values).concat(opts.band ? [...opts.band.low, ...opts.band.high] : [])
      .filter(finite).concat(opts.zero ? [0] : []);
    const lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
    const pad = (hi - lo) * 0.08 || 1;
    const f = frame(days, opts.zero && lo >= 0 ? 0 : lo - pad, hi + pad, yFormat);
    if (opts.band) {
      // One polygon per run of days where the interval is known.
      let run = [];
      const flush = () => {
        if (run.length) {
          const pts = run.map((i) => `${f.x(i)},${f.y(opts.band.high[i])}`)
            .concat(run.slice().reverse().map((i) => `${f.x(i)},${f.y(opts.band.low[i])}`));
          if (run.length === 1) {
            const i = run[0];
            f.svg.append(svgEl("line", { x1: f.x(i), x2: f.x(i), y1: f.y(opts.band.low[i]), y2: f.y(opts.band.high[i]),
              stroke: opts.band.color, "stroke-width": 6, "stroke-linecap": "round", opacity: 0.35 }));
          } else {
            f.svg.append(svgEl("polygon", { points: pts.join(" "), fill: opts.band.color, opacity: 0.18 }));
          }
        }
        run = [];
      };
      days.forEach((_, i) => (finite(opts.band.low[i]) && finite(opts.band.high[i]) ? run.push(i) : flush()));
      flush();
    }
    if (opts.zero && f.lo < 0 && f.hi > 0) {
      f.svg.append(svgEl("line", { x1: M.left, x2: W - M.right, y1: f.y(0), y2: f.y(0), stroke: "#5d6678",
        "stroke-dasharray": "3 3" }));
    }
    for (const s of lineSeries) {
      let d = "", pen = false;
      s.values.forEach((v, i) => {
        if (!finite(v)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${f.x(i).toFixed(1)},${f.y(v).toFixed(1)} `;
        pen = true;
      });
      if (d) f.svg.append(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2.2,
        "stroke-dasharray": s.dash || "none", "stroke-linejoin": "round" }));
      s.values.forEach((v, i) => {
        if (finite(v)) f.svg.append(svgEl("circle", { cx: f.x(i), cy: f.y(v), r: 3, fill: s.color }));
      });
    }
    legend(f.svg, lineSeries.concat(opts.band && opts.band.name ? [{ name: opts.band.name, color: opts.band.color, opacity: 0.3 }] : []));
    container.replaceChildren(f.svg);
  }

  return { stackedBars, lines };
})();
