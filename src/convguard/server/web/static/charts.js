// Charts drawn in the page as SVG from the server's numbers: stacked bars over time, and lines.
// Each chart carries a text description and its data as a table, so it reads without sight too.

import { el } from "/static/api.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 380;
const H = 200;
const PAD = { left: 34, right: 8, top: 10, bottom: 26 };

// Colours with at least 3:1 contrast on white (WCAG non-text contrast).
export const ACTION_COLOURS = {
  allow: "#5f6b7a",
  guide: "#00758f",
  redirect: "#2b4f7e",
  warn: "#b86e00",
  support: "#0b6148",
  confirm_end: "#7a3e9d",
  end: "#b3261e",
};
const PALETTE = ["#1f5fbf", "#b3261e", "#0b6148", "#b86e00", "#7a3e9d", "#00758f", "#a4336c", "#5a6b00", "#2b4f7e", "#8a4b00", "#4f5966", "#c2185b"];

export function colourFor(name, index) {
  return ACTION_COLOURS[name] || PALETTE[index % PALETTE.length];
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function label(iso, bucket) {
  const d = new Date(iso);
  return bucket === "hour"
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

function niceMax(value) {
  if (value <= 4) return Math.max(1, value);
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function frame(id, title, description) {
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    "data-chart": id,
  });
  root.append(svg("title", { id: `${id}-t` }, title), svg("desc", { id: `${id}-d` }, description));
  return root;
}

function axes(root, buckets, max, bucket) {
  const innerH = H - PAD.top - PAD.bottom;
  for (const frac of [0, 0.5, 1]) {
    const y = PAD.top + innerH * (1 - frac);
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#d3d9e0" }));
    root.append(svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, String(Math.round(max * frac))));
  }
  const innerW = W - PAD.left - PAD.right;
  const every = Math.max(1, Math.ceil(buckets.length / 4));
  buckets.forEach((b, i) => {
    if (i % every) return;
    const x = PAD.left + innerW * ((i + 0.5) / buckets.length);
    root.append(svg("text", { x, y: H - 8, "text-anchor": "middle" }, label(b, bucket)));
  });
}

function legend(names) {
  return el(
    "ul",
    { class: "legend" },
    names.map((name, i) =>
      el("li", {}, swatch(colourFor(name, i)), name.replaceAll("_", " ")),
    ),
  );
}

function swatch(colour) {
  const node = el("span", { class: "swatch", "aria-hidden": "true" });
  node.style.background = colour; // CSSOM, not an inline style attribute: allowed by the CSP
  return node;
}

function table(buckets, series, bucket) {
  const names = Object.keys(series);
  return el(
    "details",
    {},
    el("summary", { text: "Show the numbers" }),
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: bucket === "hour" ? "Hour" : "Day" }), names.map((n) => el("th", { scope: "col", text: n.replaceAll("_", " ") })))),
      el(
        "tbody",
        {},
        buckets.map((b, i) =>
          el("tr", {}, el("th", { scope: "row", text: label(b, bucket) }), names.map((n) => el("td", { text: String(series[n][i]) }))),
        ),
      ),
    ),
  );
}

function describe(series) {
  const parts = Object.entries(series).map(
    ([name, counts]) => `${name.replaceAll("_", " ")} ${counts.reduce((a, b) => a + b, 0)}`,
  );
  return parts.length ? `Totals: ${parts.join(", ")}.` : "No data in this window.";
}

export function stackedBars(id, title, buckets, series, bucket) {
  const names = Object.keys(series);
  const totals = buckets.map((_, i) => names.reduce((sum, n) => sum + series[n][i], 0));
  const max = niceMax(Math.max(0, ...totals));
  const root = frame(id, title, describe(series));
  axes(root, buckets, max, bucket);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const slot = innerW / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  buckets.forEach((b, i) => {
    let base = 0;
    names.forEach((name, k) => {
      const value = series[name][i];
      if (!value) return;
      const h = (value / max) * innerH;
      const rect = svg("rect", {
        x: PAD.left + slot * i + (slot - barW) / 2,
        y: PAD.top + innerH - base - h,
        width: barW,
        height: h,
        fill: colourFor(name, k),
      });
      rect.append(svg("title", {}, `${label(b, bucket)} · ${name.replaceAll("_", " ")}: ${value}`));
      root.append(rect);
      base += h;
    });
  });
  return chartCard(title, root, names, buckets, series, bucket);
}

export function lines(id, title, buckets, series, bucket) {
  const names = Object.keys(series);
  const max = niceMax(Math.max(0, ...names.flatMap((n) => series[n])));
  const root = frame(id, title, describe(series));
  axes(root, buckets, max, bucket);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  names.forEach((name, k) => {
    const points = series[name].map((v, i) => [
      PAD.left + innerW * ((i + 0.5) / buckets.length),
      PAD.top + innerH * (1 - v / max),
    ]);
    const colour = colourFor(name, k);
    root.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2.5 }));
    points.forEach(([x, y], i) => {
      const dot = svg("circle", { cx: x, cy: y, r: 3.5, fill: colour });
      dot.append(svg("title", {}, `${label(buckets[i], bucket)} · ${name.replaceAll("_", " ")}: ${series[name][i]}`));
      root.append(dot);
    });
  });
  return chartCard(title, root, names, buckets, series, bucket);
}

function chartCard(title, root, names, buckets, series, bucket) {
  return el(
    "figure",
    { class: "chart" },
    el("h3", { text: title }),
    buckets.length ? root : el("p", { class: "empty-note", text: "No decisions in this window." }),
    legend(names),
    table(buckets, series, bucket),
  );
}
