import { assert } from "../lib/assert.ts";
import { page_common_script } from "./page_script.ts";

/**
 * The fleet page (GET /fleet): every replica this one knows, one row each
 * (name, last seen, events per day, lag, last event, conflicts; see
 * src/sync/fleet.ts for what each means), sortable by every column, and
 * usable with tens of thousands of rows: the rows are fetched from
 * GET /api/fleet in blocks of fleet_block_rows as they scroll into view
 * (a few blocks kept), and only the rows in view, plus a margin, are in the
 * DOM, placed absolutely inside a spacer as tall as all rows.
 *
 * Like the dashboard: self-contained (no CDN, no build step), served with
 * the dashboard's CSP, holds no data itself, asks for the bearer token once
 * and keeps it in localStorage under the dashboard's key. The inline script
 * avoids template literals so this file can hold it in one; the
 * constants above are put in where it says ${...}.
 */

/** Rows per GET /api/fleet request of the page (within fleet_page_rows_max). */
export const fleet_block_rows = 200;
/** Blocks of rows the page keeps; the ones farthest from the view go first. */
export const fleet_blocks_kept_max = 8;
/** Height of one row (px): the spacer is total rows times this. */
export const fleet_row_px = 28;
/** Rows drawn above and below the view. */
export const fleet_overscan_rows = 10;

assert(fleet_block_rows <= 1000, "a block fits one GET /api/fleet page");

export const fleet_html = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>InterLog fleet</title>
<style>
  :root { --bg:#f5f6f8; --card:#fff; --ink:#1d2430; --dim:#667085; --line:#d9dee7; --accent:#2f6fde; --bad:#c0392b; --ok:#1e8e4e; }
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; flex-wrap:wrap; align-items:baseline; gap:8px 24px; padding:14px 20px; background:var(--ink); color:#fff; }
  header h1 { margin:0; font-size:18px; font-weight:600; }
  header a { color:#aeb6c4; }
  header .dim { color:#aeb6c4; }
  code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  main { padding:16px 20px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
  .dim { color:var(--dim); }
  .bad { color:var(--bad); } .ok { color:var(--ok); }
  .grid { display:grid; grid-template-columns: 160px minmax(120px, 1fr) 110px 110px 100px 120px 90px; gap:0 8px; padding:0 6px; }
  .grid > * { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .num { text-align:right; font-variant-numeric: tabular-nums; }
  #fleet-head { border-bottom:1px solid var(--line); padding-bottom:4px; }
  #fleet-head button { font:inherit; font-size:12px; font-weight:600; color:var(--dim); background:none; border:0; padding:2px 0; cursor:pointer; text-align:left; width:100%; }
  #fleet-head button.num { text-align:right; }
  #fleet-head button[aria-sort] { color:var(--ink); }
  #viewport { position:relative; overflow-y:auto; height:calc(100vh - 170px); min-height:200px; }
  #spacer { position:relative; width:100%; }
  .frow { position:absolute; left:0; right:0; height:${fleet_row_px}px; line-height:${fleet_row_px}px; border-bottom:1px solid var(--line); }
  .frow.self { background:#eef3fc; }
  .frow.pending { color:var(--dim); }
  #login { max-width:420px; margin:48px auto; }
  #login input { width:100%; padding:8px; font:inherit; border:1px solid var(--line); border-radius:6px; margin:8px 0; }
  button.main { font:inherit; padding:6px 14px; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
  button.plain { font:inherit; padding:6px 14px; border-radius:6px; background:none; color:#aeb6c4; border:1px solid #59627a; cursor:pointer; }
</style>
</head>
<body>
<header>
  <h1>InterLog fleet</h1>
  <a id="to-dashboard" href="./">dashboard</a>
  <span class="dim"><span id="fleet-total">-</span> replicas</span>
  <span id="updated" class="dim"></span>
  <button id="forget" class="plain" type="button" hidden>forget token</button>
</header>

<section id="login" class="card" hidden>
  <form id="login-form">
    <label for="token-input">This replica's admin API needs its token (the value of the variable named by admin.token_env).</label>
    <input id="token-input" type="password" autocomplete="current-password" required>
    <button class="main" type="submit">Open fleet</button>
  </form>
  <p id="login-error" class="bad"></p>
</section>

<main id="data" hidden>
  <div class="card">
    <div id="fleet-head" class="grid" role="row">
      <button type="button" data-sort="id" title="replica id">replica</button>
      <button type="button" data-sort="name" title="its name from its vv messages">name</button>
      <button type="button" data-sort="last_seen" class="num" title="when this replica last received any message from it">last seen</button>
      <button type="button" data-sort="events_per_day" class="num" title="growth of its events held here over up to the last 24 h, per day">events/day</button>
      <button type="button" data-sort="lag" class="num" title="events of its own it holds that this replica lacks (its claimed seq minus the seq held here)">lag</button>
      <button type="button" data-sort="last_event" class="num" title="the time (its own clock) of its newest event held here">last event</button>
      <button type="button" data-sort="conflicts" class="num" title="events seen written by two devices with its key">conflicts</button>
    </div>
    <div id="viewport"><div id="spacer"><div id="rows"></div></div></div>
    <p id="fleet-empty" class="dim" hidden>No replica known yet.</p>
  </div>
</main>

<script>
"use strict";
(function () {
  ${page_common_script}
  var params = new URLSearchParams(location.search);
  var poll_ms = Math.max(200, Number(params.get("poll_ms")) || 5000);
  var row_h = ${fleet_row_px}, block_rows = ${fleet_block_rows}, blocks_kept_max = ${fleet_blocks_kept_max}, overscan = ${fleet_overscan_rows};
  var desc_first = { last_seen: true, events_per_day: true, lag: true, last_event: true, conflicts: true };
  var sort = params.get("sort") || "name";
  var order = params.get("order") || (desc_first[sort] ? "desc" : "asc");
  var gen = 0;
  var blocks = new Map();
  var loading = new Set();
  var total = null;
  var time_ms = 0;
  var frame = null;
  var timer = null;


  function get(path) {
    var headers = {};
    var t = token();
    if (t) headers.Authorization = "Bearer " + t;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.ok) return r.json();
      return r.json().catch(function () { return {}; }).then(function (body) {
        var code = body && body.error ? body.error.code : "";
        // 401, or the 400 of a malformed Authorization header (not a bad query, BAD_REQUEST): the token.
        if (r.status === 401 || (r.status === 400 && code !== "BAD_REQUEST")) throw new AuthError(t ? "That token was not accepted." : "");
        throw new Error(path + " answered " + r.status + (code ? " " + code + ": " + body.error.message : ""));
      });
    });
  }

  function fmt_int(n) { return Number(n).toLocaleString("en-US"); }
  function fmt_duration(ms) {
    var s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    var m = Math.round(s / 60);
    if (m < 120) return m + " min";
    var h = Math.round(m / 60);
    if (h < 72) return h + " h";
    return Math.round(h / 24) + " days";
  }
  function fmt_ago(ms) { return ms === null ? null : fmt_duration(Math.max(0, time_ms - ms)) + " ago"; }
  function fmt_time(ms) { return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }
  function fmt_rate(r) { return r === null ? "-" : r < 10 ? r.toFixed(1) : fmt_int(Math.round(r)); }

  function url(offset) {
    return "api/fleet?sort=" + encodeURIComponent(sort) + "&order=" + order + "&offset=" + offset + "&limit=" + block_rows;
  }

  /** Fetches block b (again when force) for the current sort. */
  function load(b, force) {
    var key = gen + ":" + b;
    if (loading.has(key) || (!force && blocks.has(b))) return;
    var g = gen;
    loading.add(key);
    get(url(b * block_rows)).then(function (page) {
      loading.delete(key);
      if (g !== gen) return;
      $("login").hidden = true;
      $("data").hidden = false;
      $("forget").hidden = !token();
      blocks.set(b, page.rows);
      total = page.total;
      time_ms = page.time_ms;
      text("fleet-total", fmt_int(total));
      text("updated", "updated " + new Date().toLocaleTimeString());
      trim();
      schedule();
    }).catch(function (e) {
      loading.delete(key);
      if (e instanceof AuthError) { stop(); forget_token(); show_login(e.message); return; }
      text("updated", "cannot reach the replica: " + e.message);
    });
  }

  function view() {
    var vp = $("viewport");
    var first = Math.max(0, Math.floor(vp.scrollTop / row_h) - overscan);
    var last = first + Math.ceil(vp.clientHeight / row_h) + 2 * overscan;
    if (total !== null) last = Math.min(last, total - 1);
    return { first: first, last: last };
  }

  /** Keeps at most blocks_kept_max blocks, dropping those farthest from the view. */
  function trim() {
    if (blocks.size <= blocks_kept_max) return;
    var centre = Math.floor(view().first / block_rows);
    var keys = Array.from(blocks.keys()).sort(function (a, b) { return Math.abs(b - centre) - Math.abs(a - centre); });
    for (var i = 0; blocks.size > blocks_kept_max; i++) blocks.delete(keys[i]);
  }

  function schedule() { if (frame === null) frame = requestAnimationFrame(render); }

  function cell(row, value, cls, title) {
    var d = document.createElement("div");
    d.textContent = value;
    if (cls) d.className = cls;
    if (title) d.title = title;
    row.appendChild(d);
  }

  function render() {
    frame = null;
    var n = total === null ? 0 : total;
    $("spacer").style.height = n * row_h + "px";
    $("fleet-empty").hidden = total !== 0;
    var v = view();
    var box = $("rows");
    box.textContent = "";
    if (total === null) { load(0, false); return; }
    for (var b = Math.floor(v.first / block_rows); b <= Math.floor(Math.max(v.first, v.last) / block_rows); b++) load(b, false);
    for (var i = v.first; i <= v.last; i++) {
      var rows = blocks.get(Math.floor(i / block_rows));
      var r = rows ? rows[i % block_rows] : undefined;
      var row = document.createElement("div");
      row.className = "frow grid";
      row.style.top = i * row_h + "px";
      row.dataset.index = String(i);
      if (!r) {
        row.className += " pending";
        cell(row, "...", "id");
        box.appendChild(row);
        continue;
      }
      row.dataset.id = r.id;
      if (r.self) row.className += " self";
      cell(row, r.id, "id");
      cell(row, (r.name || "-") + (r.self ? " (this replica)" : ""));
      cell(row, r.last_seen_ms === null ? (r.self ? "-" : "never") : fmt_ago(r.last_seen_ms), "num", r.last_seen_ms === null ? "" : fmt_time(r.last_seen_ms));
      cell(row, fmt_rate(r.events_per_day), "num", r.events_per_day === null ? "" : "over the last " + fmt_duration(r.rate_window_ms));
      cell(row, r.lag_events === null ? "-" : fmt_int(r.lag_events), "num" + (r.lag_events ? " bad" : ""), r.claimed_seq === null ? "" : "claims seq " + r.claimed_seq + ", " + r.held_seq + " held here");
      cell(row, r.last_event_time_ms === null ? "-" : fmt_ago(r.last_event_time_ms), "num", r.last_event_time_ms === null ? "" : fmt_time(r.last_event_time_ms) + " (its clock)");
      cell(row, fmt_int(r.conflicts), "num" + (r.conflicts > 0 ? " bad" : ""));
      box.appendChild(row);
    }
  }

  function show_sort() {
    var buttons = document.querySelectorAll("#fleet-head button");
    for (var i = 0; i < buttons.length; i++) {
      var btn = buttons[i];
      var on = btn.dataset.sort === sort;
      if (on) btn.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending");
      else btn.removeAttribute("aria-sort");
      btn.dataset.arrow = on ? (order === "asc" ? " \u25b2" : " \u25bc") : "";
      btn.textContent = btn.textContent.replace(/ [\u25b2\u25bc]$/, "") + btn.dataset.arrow;
    }
  }

  function resort(key) {
    if (key === sort) order = order === "asc" ? "desc" : "asc";
    else { sort = key; order = desc_first[key] ? "desc" : "asc"; }
    gen++;
    blocks.clear();
    $("viewport").scrollTop = 0;
    show_sort();
    schedule();
  }

  /** Refreshes the blocks in view (the others are dropped: they would be stale). */
  function poll() {
    timer = setTimeout(poll, poll_ms);
    if (total === null) { load(0, true); return; }
    var v = view();
    var from = Math.floor(v.first / block_rows), to = Math.floor(Math.max(v.first, v.last) / block_rows);
    Array.from(blocks.keys()).forEach(function (b) { if (b < from || b > to) blocks.delete(b); });
    for (var b = from; b <= to; b++) load(b, true);
  }

  function stop() { if (timer !== null) clearTimeout(timer); timer = null; }
  function start() {
    stop();
    gen++;
    blocks.clear();
    total = null;
    load(0, true);
    timer = setTimeout(poll, poll_ms);
  }

  function show_login(message) {
    $("data").hidden = true;
    $("forget").hidden = true;
    blocks.clear();
    total = null;
    $("rows").textContent = "";
    text("fleet-total", "-");
    text("updated", "");
    $("login").hidden = false;
    text("login-error", message || "");
    $("token-input").focus();
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    store_token($("token-input").value.trim());
    $("token-input").value = "";
    start();
  });
  $("forget").addEventListener("click", function () { forget_token(); stop(); show_login(""); });
  $("fleet-head").addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-sort]");
    if (btn) resort(btn.dataset.sort);
  });
  $("viewport").addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);
  show_sort();
  start();
})();
</script>
</body>
</html>
`;
