/**
 * /docs/api (docs/web.md): the API reference, rendered here from the CPS's own `/openapi.json`
 * (src/routes/openapi.ts). A small renderer of the OpenAPI 3.1 subset that document uses (paths,
 * parameters, request bodies, responses, `$ref` to components, security schemes) instead of a
 * general viewer: the big ones weigh megabytes and need inline styles or eval, which this page's
 * Content-Security-Policy refuses. Everything is text nodes: nothing in the document becomes markup.
 */
import "../common/base.css";
import "./style.css";
import { append, byId, h, replace } from "../common/dom.js";

type Json = Record<string, unknown>;

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"] as const;

interface Operation {
  method: string;
  path: string;
  op: Json;
  shared: Json[];
  anchor: string;
}

let doc: Json = {};

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Follows a local `$ref` (`#/components/...`); anything else is returned as it is. */
function deref(v: unknown, depth = 0): unknown {
  if (!isObject(v) || typeof v.$ref !== "string" || depth > 8) return v;
  const ref = v.$ref;
  if (!ref.startsWith("#/")) return v;
  let at: unknown = doc;
  for (const part of ref.slice(2).split("/")) {
    at = isObject(at) ? at[part.replaceAll("~1", "/").replaceAll("~0", "~")] : undefined;
  }
  return at === undefined ? v : deref(at, depth + 1);
}

function refName(v: unknown): string | undefined {
  return isObject(v) && typeof v.$ref === "string" ? v.$ref.split("/").pop() : undefined;
}

/** Text with `code` spans (the document's descriptions use backticks), as nodes. */
function prose(text: unknown): Node[] {
  if (typeof text !== "string") return [];
  return text
    .split(/(`[^`]+`)/)
    .map((part) =>
      part.startsWith("`") && part.endsWith("`") && part.length > 2
        ? h("code", {}, part.slice(1, -1))
        : document.createTextNode(part),
    );
}

/** A one-line summary of a schema: `string (pattern …)`, `integer 60..34560000`, `const "OKP"`. */
function schemaSummary(raw: unknown): string {
  const s = deref(raw);
  if (!isObject(s)) return "";
  const name = refName(raw);
  const bits: string[] = [];
  if ("const" in s) bits.push(`const ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum)) bits.push(`one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  const type = Array.isArray(s.type) ? s.type.join(" | ") : typeof s.type === "string" ? s.type : "";
  if (type === "array" && s.items !== undefined) bits.push(`array of ${schemaSummary(s.items) || "items"}`);
  else if (type) bits.push(type);
  if (typeof s.format === "string") bits.push(`(${s.format})`);
  if (typeof s.minimum === "number" || typeof s.maximum === "number") {
    bits.push(`${s.minimum ?? ""}..${s.maximum ?? ""}`);
  }
  if (typeof s.maxLength === "number") bits.push(`≤ ${s.maxLength} chars`);
  if (typeof s.pattern === "string") bits.push(`pattern ${s.pattern}`);
  if ("default" in s) bits.push(`default ${JSON.stringify(s.default)}`);
  if (Array.isArray(s.examples) && s.examples.length > 0) {
    bits.push(`e.g. ${s.examples.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  const text = bits.join(" ");
  return name ? `${name}${text ? `: ${text}` : ""}` : text;
}

/** An object schema's properties as a nested list (depth-limited). */
function schemaTree(raw: unknown, depth = 0): HTMLElement | null {
  const s = deref(raw);
  if (!isObject(s) || depth > 4) return null;
  const target = s.type === "array" && isObject(deref(s.items)) ? (deref(s.items) as Json) : s;
  if (!isObject(target.properties)) return null;
  const required = new Set(Array.isArray(target.required) ? target.required : []);
  const list = h("ul", { class: "props" });
  for (const [name, prop] of Object.entries(target.properties)) {
    const p = deref(prop);
    list.appendChild(
      h(
        "li",
        {},
        h("code", { class: "prop" }, name),
        required.has(name) ? h("span", { class: "req" }, " required") : null,
        " ",
        h("span", { class: "type" }, schemaSummary(prop)),
        isObject(p) && typeof p.description === "string"
          ? h("span", { class: "desc" }, " — ", ...prose(p.description))
          : null,
        schemaTree(prop, depth + 1),
      ),
    );
  }
  return list;
}

function parameters(list: unknown[]): HTMLElement | null {
  const params = list.map((p) => deref(p)).filter(isObject);
  if (params.length === 0) return null;
  const table = h(
    "table",
    { class: "params" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "name"),
        h("th", { scope: "col" }, "in"),
        h("th", { scope: "col" }, "schema"),
      ),
    ),
  );
  const body = h("tbody");
  for (const p of params) {
    body.appendChild(
      h(
        "tr",
        {},
        h(
          "td",
          {},
          h("code", {}, String(p.name)),
          p.required ? h("span", { class: "req" }, " required") : null,
        ),
        h("td", {}, String(p.in)),
        h(
          "td",
          {},
          h("span", { class: "type" }, schemaSummary(p.schema)),
          typeof p.description === "string" ? h("div", { class: "desc" }, ...prose(p.description)) : null,
        ),
      ),
    );
  }
  table.appendChild(body);
  return h("div", { class: "table-scroll" }, table);
}

function content(c: unknown): HTMLElement | null {
  if (!isObject(c)) return null;
  const box = h("div", { class: "content" });
  for (const [type, media] of Object.entries(c)) {
    const m = isObject(media) ? media : {};
    const summary = schemaSummary(m.schema);
    append(
      box,
      h("p", {}, h("code", { class: "media" }, type), summary ? ` ${summary}` : ""),
      schemaTree(m.schema),
    );
  }
  return box;
}

function responses(r: unknown): HTMLElement | null {
  if (!isObject(r)) return null;
  const list = h("dl", { class: "responses" });
  for (const [status, raw] of Object.entries(r)) {
    const res = deref(raw);
    const name = refName(raw);
    const cls = status.startsWith("2") ? "ok" : status.startsWith("3") ? "redirect" : "error";
    append(
      list,
      h("dt", {}, h("span", { class: `status ${cls}` }, status)),
      h(
        "dd",
        {},
        ...(isObject(res) ? prose(res.description) : []),
        name ? h("span", { class: "muted" }, ` (${name})`) : null,
        isObject(res) && name === undefined ? content(res.content) : null,
      ),
    );
  }
  return list;
}

function security(op: Json): HTMLElement | null {
  if (!Array.isArray(op.security) || op.security.length === 0) return null;
  const schemes =
    isObject(doc.components) && isObject(doc.components.securitySchemes)
      ? doc.components.securitySchemes
      : {};
  const names = op.security.flatMap((s) => (isObject(s) ? Object.keys(s) : []));
  return h(
    "p",
    { class: "security" },
    h("strong", {}, "Authorization: "),
    ...names.flatMap((n, i) => {
      const s = schemes[n];
      const what = isObject(s)
        ? `${s.scheme === "bearer" ? "Bearer" : String(s.type)} ${typeof s.bearerFormat === "string" ? `(${s.bearerFormat})` : ""}`
        : "";
      return [
        i > 0 ? " or " : "",
        h("code", {}, n),
        ` ${what}`,
        isObject(s) && typeof s.description === "string"
          ? h("span", { class: "desc" }, ...prose(` — ${s.description}`))
          : "",
      ];
    }),
  );
}

function anchorFor(method: string, path: string, op: Json): string {
  const id = typeof op.operationId === "string" ? op.operationId : `${method}-${path}`;
  return `op-${id.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

function operations(): Operation[] {
  const out: Operation[] = [];
  const paths = isObject(doc.paths) ? doc.paths : {};
  for (const [path, rawItem] of Object.entries(paths)) {
    const item = deref(rawItem);
    if (!isObject(item)) continue;
    const shared = Array.isArray(item.parameters) ? (item.parameters as Json[]) : [];
    for (const method of METHODS) {
      const op = item[method];
      if (isObject(op)) out.push({ method, path, op, shared, anchor: anchorFor(method, path, op) });
    }
  }
  return out;
}

function section(o: Operation): HTMLElement {
  const params = [...o.shared, ...(Array.isArray(o.op.parameters) ? o.op.parameters : [])];
  const body = deref(o.op.requestBody);
  const titleId = `${o.anchor}-title`;
  return h(
    "section",
    {
      class: "card operation",
      id: o.anchor,
      "aria-labelledby": titleId,
      "data-method": o.method,
      "data-path": o.path,
    },
    h(
      "h3",
      { id: titleId },
      h("span", { class: `method ${o.method}` }, o.method.toUpperCase()),
      " ",
      h("code", { class: "path" }, o.path),
    ),
    h("p", { class: "summary" }, ...prose(o.op.summary)),
    typeof o.op.description === "string" ? h("p", {}, ...prose(o.op.description)) : null,
    security(o.op),
    params.length > 0 ? h("h4", {}, "Parameters") : null,
    parameters(params),
    isObject(body) ? h("h4", {}, `Request body${body.required ? " (required)" : ""}`) : null,
    isObject(body) ? content(body.content) : null,
    h("h4", {}, "Responses"),
    responses(o.op.responses),
  );
}

/** Groups by the first path segment: `/cps/...`, `/keys/...`, `/.well-known/...`. */
function groupOf(path: string): string {
  return `/${path.split("/")[1] ?? ""}`;
}

function render() {
  const info = isObject(doc.info) ? doc.info : {};
  replace(byId("title"), typeof info.title === "string" ? info.title : "API reference");
  const intro = byId("intro");
  replace(
    intro,
    ...prose(info.description),
    " ",
    h(
      "span",
      { class: "muted" },
      `OpenAPI ${String(doc.openapi)}, API version ${String(info.version)}. Source: `,
    ),
    h("a", { href: "/openapi.json" }, h("code", {}, "/openapi.json")),
    ".",
  );
  const ops = operations();
  const list = byId("toc-list");
  const container = byId("operations");
  let group = "";
  for (const o of ops) {
    const g = groupOf(o.path);
    if (g !== group) {
      group = g;
      container.appendChild(h("h2", { class: "group", "data-group": g }, g));
    }
    container.appendChild(section(o));
    list.appendChild(
      h(
        "li",
        { "data-anchor": o.anchor },
        h(
          "a",
          { href: `#${o.anchor}` },
          h("span", { class: `method ${o.method}` }, o.method.toUpperCase()),
          " ",
          h("code", {}, o.path),
        ),
      ),
    );
  }
  byId("toc").hidden = false;
  const filter = byId<HTMLInputElement>("filter");
  const count = byId("filter-count");
  const apply = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const o of ops) {
      const text =
        `${o.method} ${o.path} ${String(o.op.summary ?? "")} ${Object.keys(isObject(o.op.responses) ? o.op.responses : {}).join(" ")}`.toLowerCase();
      const match = q === "" || text.includes(q);
      if (match) shown++;
      byId(o.anchor).hidden = !match;
      const li = list.querySelector<HTMLElement>(`li[data-anchor="${o.anchor}"]`);
      if (li) li.hidden = !match;
    }
    for (const heading of container.querySelectorAll<HTMLElement>("h2.group")) {
      heading.hidden = !ops.some((o) => groupOf(o.path) === heading.dataset.group && !byId(o.anchor).hidden);
    }
    replace(count, `${shown} of ${ops.length} operations`);
  };
  filter.addEventListener("input", apply);
  apply();
  const status = byId("status");
  replace(status, `${ops.length} operations.`);
  status.classList.add("visually-hidden");
  document.body.dataset.ready = "true";
  // A link to an operation opened before the page rendered it.
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

async function start() {
  try {
    const res = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}`);
    doc = (await res.json()) as Json;
    render();
  } catch (err) {
    replace(
      byId("status"),
      `The API description could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

void start();
