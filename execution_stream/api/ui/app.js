/* The executions page: reads GET {api}/executions with a bearer token and shows one page of it.
   The API's data is untrusted: the DOM is built with createElement/textContent only. */
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const STORAGE = { api: "execution-stream.api", token: "execution-stream.token" };
  const CORS_HINT = "(is it running, and does EXECUTION_STREAM_API_CORS_ORIGINS list this page's origin?)";

  const state = {
    api: "",
    token: "",
    filters: { status: "", planItem: "", limit: "20" },
    cursors: [null], // the `after` cursor of each page visited; page 1 has none
    page: 0, // index into cursors
    nextCursor: null,
    requestId: 0, // answers to an older request are ignored
    controller: null, // set while a request is in flight
    unauthorized: false,
    retryAt: 0,
  };

  const $ = (id) => document.getElementById(id);

  // Storage may be unavailable (privacy settings): the values then only live in the form.
  function storageGet(key) {
    try { return sessionStorage.getItem(key) || ""; } catch { return ""; }
  }

  function storageSet(key, value) {
    try { sessionStorage.setItem(key, value); } catch { /* see storageGet */ }
  }

  function init() {
    const query = new URLSearchParams(location.search);
    const fragmentToken = new URLSearchParams(location.hash.slice(1)).get("token") || "";
    $("api").value = query.get("api") || storageGet(STORAGE.api) || location.origin;
    $("token").value = fragmentToken || storageGet(STORAGE.token);
    readFilters();
    bindEvents();
    updatePaging();
    document.body.dataset.state = "idle";
    setInterval(tick, REFRESH_MS);
    if (fragmentToken) {
      history.replaceState(null, "", location.pathname + location.search);
      storageSet(STORAGE.token, fragmentToken);
      explicitLoad();
    }
  }

  function bindEvents() {
    $("connect").addEventListener("submit", onSubmit);
    $("status").addEventListener("change", applyFilters);
    $("limit").addEventListener("change", applyFilters);
    $("plan-item").addEventListener("change", onPlanItemChange);
    $("plan-item").addEventListener("keydown", onPlanItemKey);
    $("first").addEventListener("click", () => goToPage(0));
    $("previous").addEventListener("click", () => goToPage(state.page - 1));
    $("next").addEventListener("click", goToNextPage);
  }

  function onSubmit(event) {
    event.preventDefault();
    readConnection();
    storageSet(STORAGE.api, state.api);
    storageSet(STORAGE.token, state.token);
    resetPaging();
    explicitLoad();
  }

  function onPlanItemChange() {
    if ($("plan-item").value.trim() !== state.filters.planItem) applyFilters();
  }

  function onPlanItemKey(event) {
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    applyFilters();
  }

  function applyFilters() {
    readFilters();
    resetPaging();
    explicitLoad();
  }

  function readConnection() {
    state.api = $("api").value.trim() || location.origin;
    state.token = $("token").value.trim();
  }

  function readFilters() {
    state.filters = {
      status: $("status").value,
      planItem: $("plan-item").value.trim(),
      limit: $("limit").value,
    };
  }

  function resetPaging() {
    state.cursors = [null];
    state.page = 0;
  }

  function goToPage(index) {
    state.page = Math.max(0, Math.min(index, state.cursors.length - 1));
    explicitLoad();
  }

  function goToNextPage() {
    if (!state.nextCursor) return;
    state.cursors = state.cursors.slice(0, state.page + 1).concat(state.nextCursor);
    state.page += 1;
    explicitLoad();
  }

  function updatePaging() {
    $("page").textContent = `page ${state.page + 1}`;
    $("first").disabled = state.page === 0;
    $("previous").disabled = state.page === 0;
    $("next").disabled = !state.nextCursor;
  }

  /* A load the user asked for: takes the form's connection and supersedes one in flight. */
  function explicitLoad() {
    readConnection();
    state.nextCursor = null; // it belonged to the page shown before
    updatePaging();
    load();
  }

  /* Auto refresh: the current page again, unless a load is in flight or it cannot succeed. */
  function tick() {
    if (!$("auto-refresh").checked || !state.token || state.unauthorized) return;
    if (state.controller || Date.now() < state.retryAt) return;
    load();
  }

  async function load() {
    const id = ++state.requestId;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    document.body.dataset.state = "loading";
    let outcome;
    try {
      outcome = await fetchPage(controller.signal);
    } catch (error) {
      outcome = { failure: `could not reach the API at ${state.api}: ${error.message} ${CORS_HINT}` };
    }
    if (id !== state.requestId) return; // superseded by a newer load
    state.controller = null;
    if (outcome.failure) showFailure(outcome);
    else showPage(outcome.body);
  }

  async function fetchPage(signal) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const response = await fetch(pageUrl(), { headers, signal, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body?.error?.message || response.statusText || "request failed";
      const retryAfter = response.headers.get("Retry-After");
      return { failure: `${response.status}: ${message}`, status: response.status, retryAfter };
    }
    if (!Array.isArray(body?.data)) {
      return { failure: `${response.status}: unexpected answer from the API`, status: response.status };
    }
    return { body };
  }

  function pageUrl() {
    const url = new URL(`${state.api.replace(/\/+$/, "")}/executions`, location.href);
    const params = {
      status: state.filters.status,
      plan_item_slug: state.filters.planItem,
      limit: state.filters.limit,
      after: state.cursors[state.page],
    };
    for (const [name, value] of Object.entries(params)) {
      if (value) url.searchParams.set(name, value);
    }
    return url.toString();
  }

  function retryTime(value) {
    if (!value) return 0;
    const seconds = Number(value);
    if (Number.isFinite(seconds)) return Date.now() + seconds * 1000;
    const date = Date.parse(value);
    return Number.isNaN(date) ? 0 : date;
  }

  function showFailure(outcome) {
    state.unauthorized = outcome.status === 401;
    state.retryAt = retryTime(outcome.retryAfter);
    state.nextCursor = null;
    renderRows([]);
    $("empty").hidden = true;
    $("count").textContent = "";
    setError(outcome.failure);
    updatePaging();
    document.body.dataset.state = "error";
  }

  function showPage(body) {
    const after = body.metadata?.after;
    state.unauthorized = false;
    state.retryAt = 0;
    state.nextCursor = typeof after === "string" && after ? after : null;
    renderRows(body.data);
    $("empty").hidden = body.data.length > 0;
    $("count").textContent = `${body.data.length} executions on this page`;
    $("updated").textContent = `updated ${clock(new Date())}`;
    setError("");
    updatePaging();
    document.body.dataset.state = "loaded";
  }

  function setError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function renderRows(items) {
    const rows = items.filter((item) => item && typeof item === "object").map(buildRow);
    $("executions").tBodies[0].replaceChildren(...rows);
  }

  function buildRow(item) {
    const row = document.createElement("tr");
    row.className = "execution";
    row.dataset.executionId = text(item.execution_id);
    row.dataset.status = text(item.status);
    row.title = text(item.execution_id);
    row.append(
      cell("created", formatTime(item.created_at)),
      statusCell(item),
      cell("plan-item", text(item.plan_item_slug)),
      cell("job", text(item.job_name)),
      cell("asset", text(item.asset_name) || "—"),
      cell("runner", text(item.job_runner)),
      cell("waiting", waitingText(item)),
      runCell(item),
      cell("error", errorText(item)),
    );
    return row;
  }

  function cell(className, content) {
    const td = document.createElement("td");
    td.className = className;
    td.textContent = content;
    return td;
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function statusCell(item) {
    const td = cell("status", "");
    const status = text(item.status);
    const badge = document.createElement("span");
    badge.className = `badge status-${/^[a-z_]+$/.test(status) ? status : "unknown"}`;
    badge.textContent = status;
    td.append(badge);
    if (Number.isInteger(item.attempt) && item.attempt > 1) td.append(` (attempt ${item.attempt})`);
    return td;
  }

  function waitingText(item) {
    if (item.status !== "pending") return "";
    if (item.waiting_reason === "asset") return "waits for its asset";
    if (item.waiting_reason !== "capacity") return "";
    if (!Number.isInteger(item.queue_position)) return "waits for capacity";
    let waiting = `queue position ${item.queue_position}`;
    if (Number.isInteger(item.limit)) waiting += `, limit ${item.limit}`;
    if (Number.isInteger(item.in_use)) waiting += `, in use ${item.in_use}`;
    return waiting;
  }

  function runCell(item) {
    const td = cell("run", "");
    const url = text(item.html_url);
    if (!url.startsWith("https://") && !url.startsWith("http://")) return td;
    const runId = item.workflow_run_id;
    const link = document.createElement("a");
    link.className = "run-link";
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = typeof runId === "number" || (typeof runId === "string" && runId) ? `run #${runId}` : "run";
    td.append(link);
    return td;
  }

  function errorText(item) {
    const parts = [text(item.error)];
    if (text(item.cancel_reason)) parts.push(`canceled: ${text(item.cancel_reason)}`);
    return parts.filter(Boolean).join("; ");
  }

  /* "2022-04-24T11:30:18.143407" (UTC without a zone) -> "2022-04-24 11:30:18 UTC". */
  function formatTime(value) {
    const raw = text(value);
    const match = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(raw);
    if (match) return `${match[1]} ${match[2]} UTC`;
    const parsed = new Date(raw);
    if (!raw || Number.isNaN(parsed.getTime())) return raw;
    return `${parsed.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }

  function clock(date) {
    const pad = (number) => String(number).padStart(2, "0");
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  init();
})();
