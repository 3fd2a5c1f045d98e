// The viewer's page: the trace list and one trace as a waterfall, from the JSON API.
// Span data comes from whoever can send OTLP here: it is only ever set as text (textContent,
// createTextNode), never parsed as HTML, and the server forbids inline scripts (CSP).
"use strict";

const REFRESH_MS = 2000;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name === "className") node.className = value;
    else if (name === "href") node.href = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function formatMs(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 1) return ms.toFixed(1) + " ms";
  return (ms * 1000).toFixed(0) + " µs";
}

function formatValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function traceLink(traceId, spanId) {
  const query = new URLSearchParams({ trace: traceId });
  if (spanId) query.set("span", spanId);
  return "/?" + query.toString();
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showStats(stats) {
  const mib = (bytes) => (bytes / 1048576).toFixed(1) + " MiB";
  const parts = [`${stats.traces} of at most ${stats.max_traces} traces kept (${mib(stats.bytes)} of ${mib(stats.max_bytes)})`];
  if (stats.evicted_traces) parts.push(`${stats.evicted_traces} older traces evicted`);
  if (stats.spans_over_trace_cap)
    parts.push(`${stats.spans_over_trace_cap} spans over the ${stats.max_spans_per_trace}-span cap dropped`);
  if (stats.invalid_spans) parts.push(`${stats.invalid_spans} spans without valid ids dropped`);
  document.getElementById("stats").textContent = parts.join(" · ");
}

function done(main, ...nodes) {
  main.replaceChildren(...nodes);
  document.body.dataset.state = "ready";
}

// -- the list ---------------------------------------------------------------------------------

async function showList(main, params) {
  const service = params.get("service") || "";
  const errors = params.get("errors") === "1";
  const query = new URLSearchParams();
  if (service) query.set("service", service);
  if (errors) query.set("errors", "1");
  const [list, services] = await Promise.all([
    getJSON("/api/traces?" + query.toString()),
    getJSON("/api/services"),
  ]);
  showStats(list.stats);
  const key = JSON.stringify([list.traces, services.services, service, errors]);
  if (key === lastList && document.body.dataset.state === "ready") return; // nothing new: the
  lastList = key; // page (and an open service menu) stays as it is

  const select = el("select", { id: "service-filter" }, el("option", { value: "" }, "all services"));
  for (const name of services.services) {
    const option = el("option", { value: name }, name);
    if (name === service) option.selected = true;
    select.append(option);
  }
  const onlyErrors = el("input", { type: "checkbox", id: "errors-filter" });
  onlyErrors.checked = errors;
  const apply = () => {
    const next = new URLSearchParams();
    if (select.value) next.set("service", select.value);
    if (onlyErrors.checked) next.set("errors", "1");
    history.replaceState(null, "", "/" + (next.toString() ? "?" + next.toString() : ""));
    render();
  };
  select.addEventListener("change", apply);
  onlyErrors.addEventListener("change", apply);
  const filters = el(
    "div",
    { className: "filters" },
    el("label", {}, "Service ", select),
    el("label", {}, onlyErrors, " errors only"),
    el("span", { className: "muted" }, `${list.traces.length} traces, latest first; refreshes every ${REFRESH_MS / 1000} s`),
  );

  const table = el(
    "table",
    { id: "traces" },
    el("thead", {}, el("tr", {}, ...["Started", "Service", "Root span", "Duration", "Spans", "Errors"].map((h) => el("th", {}, h)))),
  );
  const body = el("tbody");
  for (const trace of list.traces) {
    const row = el(
      "tr",
      { className: trace.error_count ? "trace error" : "trace", "data-trace-id": trace.trace_id },
      el("td", {}, new Date(trace.start_ms).toLocaleTimeString()),
      el("td", { className: "service" }, trace.service),
      el("td", { className: "root" }, el("a", { href: traceLink(trace.trace_id) }, trace.root_name)),
      el("td", { className: "num duration" }, formatMs(trace.duration_ms)),
      el("td", { className: "num span-count" }, trace.span_count + (trace.dropped_spans ? ` (+${trace.dropped_spans} dropped)` : "")),
      el("td", { className: "num errors" }, trace.error_count ? `${trace.error_count} error${trace.error_count > 1 ? "s" : ""}` : ""),
    );
    body.append(row);
  }
  table.append(body);
  const empty = list.traces.length
    ? null
    : el("p", { className: "muted", id: "no-traces" }, "No traces yet: run an app under telemetry-run --view, or point its OTLP exporter here.");
  done(main, filters, table, empty || "");
}

// -- one trace --------------------------------------------------------------------------------

function kvTable(pairs) {
  if (!pairs.length) return el("p", { className: "muted" }, "none");
  return el("table", {}, el("tbody", {}, ...pairs.map(([key, value]) => el("tr", {}, el("td", {}, key), el("td", {}, formatValue(value))))));
}

function attribute(pairs, key) {
  const pair = pairs.find(([name]) => name === key);
  return pair ? formatValue(pair[1]) : "";
}

function spanDetails(span) {
  const exceptions = span.events.filter((event) => event.name === "exception");
  const events = span.events.filter((event) => event.name !== "exception");
  const summary = [
    ["name", span.name],
    ["service", span.service],
    ["kind", span.kind],
    ["status", span.status.code + (span.status.message ? ": " + span.status.message : "")],
    ["duration", formatMs(span.duration_ms)],
    ["starts at", "+" + formatMs(span.offset_ms)],
    ["span id", span.span_id],
    ["parent span id", span.parent_span_id ? span.parent_span_id + (span.parent_missing ? " (not in this trace: remote or not received)" : "") : "none (root)"],
    ["scope", span.scope.name + (span.scope.version ? " " + span.scope.version : "")],
  ];
  const section = el("section", { className: "details", id: "span-details", "data-span-id": span.span_id });
  section.append(el("h2", {}, span.name), kvTable(summary));
  if (span.trimmed)
    section.append(el("p", { className: "error-mark", id: "span-trimmed" }, "This span was too large to keep whole: long values were shortened, and events, links or attributes may be missing."));
  section.append(el("h3", {}, "Attributes"), kvTable(span.attributes));
  section.append(el("h3", {}, `Exceptions (${exceptions.length})`));
  for (const event of exceptions) {
    const box = el("div", { className: "exception" });
    box.append(
      el("p", {}, el("span", { className: "error-mark" }, attribute(event.attributes, "exception.type") || "exception"), " ", attribute(event.attributes, "exception.message"), el("span", { className: "muted" }, " at +" + formatMs(event.offset_ms))),
    );
    const stack = attribute(event.attributes, "exception.stacktrace");
    if (stack) box.append(el("pre", { className: "stack" }, stack));
    section.append(box);
  }
  section.append(el("h3", {}, `Events (${events.length})`));
  for (const event of events) {
    section.append(el("p", {}, el("strong", {}, event.name), el("span", { className: "muted" }, " at +" + formatMs(event.offset_ms))), kvTable(event.attributes));
  }
  section.append(el("h3", {}, `Links (${span.links.length})`));
  for (const link of span.links) {
    section.append(el("p", {}, el("a", { href: traceLink(link.trace_id, link.span_id) }, `trace ${link.trace_id} span ${link.span_id}`)), kvTable(link.attributes));
  }
  section.append(el("h3", {}, "Resource"), kvTable(span.resource));
  return section;
}

async function showTrace(main, traceId, spanId) {
  let trace;
  try {
    trace = await getJSON("/api/traces/" + encodeURIComponent(traceId));
  } catch (error) {
    done(main, el("p", { id: "trace-missing" }, `Trace ${traceId}: ${error.message}. `, el("a", { href: "/" }, "Back to the list")));
    return;
  }
  const total = Math.max(trace.duration_ms, 1e-6);
  const heading = el(
    "h2",
    {},
    `${trace.service}: ${trace.root_name} `,
    el("span", { className: "muted" }, `${formatMs(trace.duration_ms)} · ${trace.span_count} spans · ${trace.services.join(", ")} · trace ${trace.trace_id}`),
    trace.error_count ? el("span", { className: "error-mark" }, ` · ${trace.error_count} error${trace.error_count > 1 ? "s" : ""}`) : null,
    trace.dropped_spans ? el("span", { className: "error-mark" }, ` · ${trace.dropped_spans} spans dropped (per-trace cap)`) : null,
  );
  const waterfall = el("div", { className: "waterfall", id: "waterfall" });
  let details = null;
  const rows = [];
  const select = (span, row) => {
    for (const other of rows) other.classList.remove("selected");
    row.classList.add("selected");
    const next = spanDetails(span);
    if (details) details.replaceWith(next);
    details = next;
    history.replaceState(null, "", traceLink(trace.trace_id, span.span_id));
  };
  for (const span of trace.spans) {
    const error = span.status.code === "error";
    const label = el("div", { className: "span-label" });
    label.style.paddingLeft = 8 + span.depth * 16 + "px";
    if (span.parent_missing) label.append(el("span", { className: "remote", title: "parent not in this trace" }, "↳ remote parent"));
    label.append(el("span", { className: "service" }, span.service), el("span", { className: "name" }, span.name));
    if (error) label.append(el("span", { className: "error-mark" }, " ⚠ error"));
    const bar = el("div", { className: "span-bar" });
    bar.style.left = (100 * span.offset_ms) / total + "%";
    bar.style.width = (100 * span.duration_ms) / total + "%";
    const duration = el("div", { className: "span-duration" }, formatMs(span.duration_ms));
    const endPercent = (100 * (span.offset_ms + span.duration_ms)) / total;
    const widthPercent = (100 * span.duration_ms) / total;
    if (endPercent > 85 && widthPercent >= 12) {
      duration.classList.add("inside"); // no room after the bar: the label goes in it
      duration.style.right = 100 - endPercent + "%";
    } else if (endPercent > 85) {
      duration.classList.add("before"); // nor in it: before it
      duration.style.right = 100 - (100 * span.offset_ms) / total + "%";
    } else {
      duration.style.left = endPercent + "%";
    }
    const row = el(
      "div",
      {
        className: error ? "span-row error" : "span-row",
        "data-span-id": span.span_id,
        "data-parent-span-id": span.parent_span_id,
        "data-depth": span.depth,
        "data-status": span.status.code,
      },
      label,
      el("div", { className: "span-timeline" }, bar, duration),
    );
    row.addEventListener("click", () => select(span, row));
    rows.push(row);
    waterfall.append(row);
  }
  const chosen = trace.spans.findIndex((span) => span.span_id === spanId);
  const first = chosen >= 0 ? chosen : 0;
  rows[first].classList.add("selected");
  details = spanDetails(trace.spans[first]);
  done(main, el("p", {}, el("a", { href: "/" }, "← all traces")), heading, waterfall, details);
}

// -- routing ----------------------------------------------------------------------------------

let timer = null;
let lastList = null;

async function render() {
  clearTimeout(timer);
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const traceId = params.get("trace");
  try {
    if (traceId) {
      await showTrace(main, traceId, params.get("span"));
    } else {
      await showList(main, params);
      timer = setTimeout(render, REFRESH_MS);
    }
  } catch (error) {
    done(main, el("p", { id: "load-error" }, "Cannot reach the viewer: " + error.message));
    if (!traceId) timer = setTimeout(render, REFRESH_MS);
  }
}

render();
