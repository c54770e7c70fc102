// Line charts in SVG: a time axis in the site's zone, one or two series, optional sun markers.
import { svg } from "./dom.js";
import { day, hhmm, number, t } from "./i18n.js";

export function lineChart(chart, points, { from, to, labelA, labelB, maxA, markers = [] }) {
  const width = chart.clientWidth || 500;
  const height = chart.clientHeight || 210;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const [left, right, top, bottom] = [36, 10, 16, 22];
  const t0 = from.getTime();
  const t1 = to.getTime();
  const x = (at) => left + ((at.getTime() - t0) / (t1 - t0)) * (width - left - right);
  const nodes = [
    svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" }),
    svg("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }),
  ];
  const series = (key, cls, max) => {
    const vals = points.map((p) => p[key]).filter((v) => typeof v === "number");
    if (!vals.length) return null;
    const topValue = max ?? Math.max(...vals, 1e-9);
    const y = (v) => height - bottom - (v / topValue) * (height - top - bottom);
    const d = points
      .filter((p) => typeof p[key] === "number")
      .map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`)
      .join(" ");
    nodes.push(svg("path", { d, class: cls }));
    return topValue;
  };
  const topA = series("a", "line", maxA);
  const topB = labelB ? series("b", "line2") : null;
  nodes.push(svg("text", { x: left + 4, y: 11 }, topA !== null ? t("chart.max", { name: labelA, max: number(topA, 0) }) : labelA));
  if (labelB && topB !== null) nodes.push(svg("text", { x: width - right - 4, y: 11, "text-anchor": "end" }, t("chart.max", { name: labelB, max: number(topB, 0) })));
  for (let i = 0; i <= 4; i += 1) {
    const at = new Date(t0 + (i / 4) * (t1 - t0));
    // a span of days is read by its days, a day by its hours
    nodes.push(svg("text", { x: x(at), y: height - 6, "text-anchor": "middle" }, t1 - t0 > 2 * 86400000 ? day(at) : hhmm(at)));
  }
  for (const m of markers) {
    const mx = x(new Date(m.at));
    nodes.push(svg("line", { x1: mx, y1: top, x2: mx, y2: height - bottom, class: "sun", "data-sun": m.event }));
    nodes.push(svg("text", { x: mx + 3, y: top + 10 }, `${t(`sun.${m.event}`)} ${hhmm(m.at)}`));
  }
  chart.replaceChildren(...nodes);
}

/** Bars per window: what was used (filled) against the baseline (outlined), with the day below. */
export function barChart(chart, windows) {
  const width = chart.clientWidth || 500;
  const height = chart.clientHeight || 150;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const [left, right, top, bottom] = [36, 10, 16, 22];
  const top_ = Math.max(...windows.map((w) => Math.max(w.kwh, w.baseline_kwh)), 1e-9);
  const step = (width - left - right) / Math.max(windows.length, 1);
  const y = (v) => height - bottom - (v / top_) * (height - top - bottom);
  const nodes = [svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" })];
  windows.forEach((w, i) => {
    const x = left + i * step + step * 0.15;
    const barWidth = step * 0.7;
    const group = svg("g", { "data-window": w.start });
    group.append(svg("title", {}, t("energy.bar", { day: day(w.start), kwh: number(w.kwh), baseline: number(w.baseline_kwh) })));
    group.append(svg("rect", { x, y: y(w.baseline_kwh), width: barWidth, height: height - bottom - y(w.baseline_kwh), class: "baseline" }));
    group.append(svg("rect", { x: x + barWidth * 0.2, y: y(w.kwh), width: barWidth * 0.6, height: height - bottom - y(w.kwh), class: "used" }));
    group.append(svg("text", { x: x + barWidth / 2, y: height - 6, "text-anchor": "middle" }, day(w.start)));
    nodes.push(group);
  });
  nodes.push(svg("text", { x: left + 4, y: 11 }, t("energy.axis", { max: number(top_) })));
  chart.replaceChildren(...nodes);
}
