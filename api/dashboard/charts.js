// Line charts in SVG: a time axis in the site's zone, one or two series, optional sun markers.
import { svg } from "./dom.js";
import { hhmm, number, t } from "./i18n.js";

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
    nodes.push(svg("text", { x: x(at), y: height - 6, "text-anchor": "middle" }, hhmm(at)));
  }
  for (const m of markers) {
    const mx = x(new Date(m.at));
    nodes.push(svg("line", { x1: mx, y1: top, x2: mx, y2: height - bottom, class: "sun", "data-sun": m.event }));
    nodes.push(svg("text", { x: mx + 3, y: top + 10 }, `${t(`sun.${m.event}`)} ${hhmm(m.at)}`));
  }
  chart.replaceChildren(...nodes);
}
