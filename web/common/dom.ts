/** Small DOM helpers shared by the pages: no framework, nothing fetched from elsewhere. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined>;

/**
 * `h("p", { class: "x" }, "text", child)`: an element with attributes and children. Text always goes
 * in as text nodes (never as HTML), so server or PASSporT content can never inject markup.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** The element with this id, or an error naming it (a page and its script out of step). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** `1.2 ms`, `35 ms`, `1.4 s`. */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** `+1 111 555 1111` for `11115551111` (NANP-shaped numbers grouped, others left as digits). */
export function showTn(tn: string): string {
  const m = /^(\d)(\d{3})(\d{3})(\d{4})$/.exec(tn);
  return m ? `+${m[1]} ${m[2]} ${m[3]} ${m[4]}` : `+${tn}`;
}

/** Whether the visitor asked for less motion (then nothing is paced for show). */
export function reducedMotion(): boolean {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

export const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
