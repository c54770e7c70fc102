// Small DOM helpers. Every value from the API goes on the page as text, never as markup.
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A table row of these cells (elements), one per column. */
export function row(attrs, cells) {
  const tr = el("tr", attrs);
  for (const cell of cells) {
    const td = el("td");
    td.append(cell);
    tr.append(td);
  }
  return tr;
}

export function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** Re-render `root` without losing the keyboard's place: the element that had focus is found
 * again by its data-focus-key (the open <details> too). */
export function keepFocus(root, render) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? active.dataset.focusKey : undefined;
  const open = [...root.querySelectorAll("details[open] > summary")].map((s) => s.dataset.focusKey);
  render();
  for (const k of open) {
    const summary = root.querySelector(`summary[data-focus-key="${CSS.escape(k)}"]`);
    if (summary) summary.parentElement.open = true;
  }
  if (key) {
    const again = root.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
