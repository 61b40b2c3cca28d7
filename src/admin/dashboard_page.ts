import { assert } from "../lib/assert.ts";
import { page_common_script } from "./page_script.ts";

/**
 * The dashboard: one self-contained page (no CDN, no build step) that polls
 * the admin API with the bearer token it asks for once and keeps in
 * localStorage. The page itself holds no data; without a valid token it
 * shows only the token form.
 *
 * The inline script avoids template literals so this file can hold it in one.
 */
export const dashboard_csp =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const dashboard_html = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>InterLog</title>
<style>
  :root { --bg:#f5f6f8; --card:#fff; --ink:#1d2430; --dim:#667085; --line:#d9dee7; --accent:#2f6fde; --bad:#c0392b; --ok:#1e8e4e; }
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; flex-wrap:wrap; align-items:baseline; gap:8px 24px; padding:14px 20px; background:var(--ink); color:#fff; }
  header h1 { margin:0; font-size:18px; font-weight:600; }
  header .dim { color:#aeb6c4; }
  code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  main { padding:16px 20px; display:grid; gap:16px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; }
  .card h2 { margin:0 0 8px; font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.04em; color:var(--dim); }
  .wide { grid-column: 1 / -1; }
  .big { font-size:26px; font-weight:600; }
  .row { display:flex; justify-content:space-between; gap:12px; }
  .row > span:first-child { white-space:nowrap; }
  .dim { color:var(--dim); }
  .bar { height:10px; background:#e8ebf0; border-radius:5px; overflow:hidden; margin:8px 0; }
  .bar > div { height:100%; background:var(--accent); width:0; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { font-size:12px; color:var(--dim); font-weight:600; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  canvas { width:100%; height:160px; display:block; }
  .ok { color:var(--ok); } .bad { color:var(--bad); }
  #login { max-width:420px; margin:48px auto; }
  #login input { width:100%; padding:8px; font:inherit; border:1px solid var(--line); border-radius:6px; margin:8px 0; }
  button { font:inherit; padding:6px 14px; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
  button.plain { background:none; color:#aeb6c4; border-color:#59627a; }
  .msg { word-break: break-word; }
  .notice { border-color:#e0b252; background:#fff8e6; }
</style>
</head>
<body>
<header>
  <h1>InterLog <span id="replica-name"></span></h1>
  <span class="dim">replica <code id="replica-id">-</code></span>
  <span id="sync-state" class="dim"></span>
  <span id="updated" class="dim"></span>
  <a id="to-fleet" href="fleet" class="dim">fleet</a>
  <button id="forget" class="plain" type="button" hidden>forget token</button>
</header>

<section id="login" class="card" hidden>
  <h2>Admin token</h2>
  <form id="login-form">
    <label for="token-input">This replica's admin API needs its token (the value of the variable named by admin.token_env).</label>
    <input id="token-input" type="password" autocomplete="current-password" required>
    <button type="submit">Open dashboard</button>
  </form>
  <p id="login-error" class="bad"></p>
</section>

<main id="data" hidden>
  <div id="no-token" class="card wide notice" hidden>
    <h2>No admin token is set</h2>
    Every program on this device can read and append through this API (web pages of other sites are refused).
    To require a token: put one in an environment variable of the service, e.g. <code>INTERLOG_ADMIN_TOKEN=$(openssl rand -base64 32)</code>,
    name that variable in the config as <code>admin.token_env: INTERLOG_ADMIN_TOKEN</code>, and restart <code>interlog serve</code>;
    this page then asks for the token once.
  </div>
  <div class="card">
    <h2>Events</h2>
    <div class="big" id="events-count">-</div>
    <div class="row"><span class="dim">append rate</span><span><span id="append-rate">-</span> events/s</span></div>
    <div class="row"><span class="dim">records</span><span id="log-bytes">-</span></div>
    <div class="row"><span class="dim">origins</span><span id="origins">-</span></div>
  </div>
  <div class="card">
    <h2>Disk</h2>
    <div class="row"><span class="dim">log files</span><span id="disk-used">-</span></div>
    <div class="row"><span class="dim">free</span><span id="disk-free">-</span></div>
    <div class="bar" title="share of the space the log can grow into that it already uses"><div id="disk-bar"></div></div>
    <div class="row"><span class="dim">log share of usable space</span><span id="disk-share">-</span></div>
    <div class="row"><span class="dim">full in</span><span id="time-to-full">-</span></div>
  </div>
  <div class="card" id="retention-card">
    <h2>Retention <span id="ret-policy"></span></h2>
    <div class="row"><span class="dim">budget used</span><span id="ret-used">-</span></div>
    <div class="bar" title="segment files (the spare included) against retention.max_bytes"><div id="ret-bar"></div></div>
    <div class="row"><span class="dim">share of budget</span><span id="ret-share">-</span></div>
    <div class="row"><span class="dim">pruned, acked</span><span id="ret-pruned-acked">-</span></div>
    <div class="row"><span class="dim">pruned, un-acked</span><span id="ret-pruned-unacked">-</span></div>
    <div class="row"><span class="dim">oldest event</span><span id="ret-oldest">-</span></div>
    <div class="row" title="when the records held fill the budget at the write rate of the last minutes; under drop-acked and drop-oldest pruning then makes room"><span class="dim">budget full in</span><span id="ret-full-in">-</span></div>
    <div class="row"><span class="dim">most un-acked</span><span id="ret-unacked">-</span></div>
    <div class="row"><span></span><span id="ret-unacked-by" class="dim"></span></div>
  </div>
  <div class="card">
    <h2>Sync</h2>
    <div class="big" id="sync-summary">-</div>
    <div class="row"><span class="dim">peers</span><span id="peer-count">-</span></div>
    <div class="row"><span class="dim">largest lag</span><span id="max-lag">-</span></div>
    <div class="row"><span class="dim">durability</span><span id="sync-mode">-</span></div>
  </div>
  <div class="card wide">
    <h2>Append rate (events/s, last <span id="chart-span">0 s</span>)</h2>
    <canvas id="rate-chart" width="800" height="160"></canvas>
  </div>
  <div class="card wide notice" id="retention-warning-card" hidden>
    <h2 class="bad">Pruning blocked</h2>
    <p id="retention-warning" class="bad msg"></p>
  </div>
  <div class="card wide" id="conflicts-card" hidden>
    <h2 class="bad">Replica-id conflicts (<span id="conflicts-total">0</span>)</h2>
    <p id="conflicts-line" class="bad"></p>
  </div>
  <div class="card wide">
    <h2>Peers</h2>
    <table>
      <thead><tr><th>peer</th><th>name</th><th class="num">lag (events)</th><th class="num">oldest un-acked</th><th class="num">last seen</th></tr></thead>
      <tbody id="peers"></tbody>
    </table>
    <p id="peers-empty" class="dim"></p>
  </div>
  <div class="card wide">
    <h2>Rejected events (<span id="rejected-total">0</span>)</h2>
    <table>
      <thead><tr><th>id</th><th>time</th><th>validator message</th></tr></thead>
      <tbody id="rejected"></tbody>
    </table>
    <p id="rejected-empty" class="dim"></p>
  </div>
</main>

<script>
"use strict";
(function () {
  ${page_common_script}
  var params = new URLSearchParams(location.search);
  var poll_ms = Math.max(100, Number(params.get("poll_ms")) || 1000);
  var samples_max = 300;
  var samples = [];
  var timer = null;

  function get(path) {
    var headers = {};
    var t = token();
    if (t) headers.Authorization = "Bearer " + t;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status === 401 || (r.status === 400 && t)) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          throw new AuthError(t ? "That token was not accepted." : "");
        });
      }
      if (!r.ok) throw new Error(path + " answered " + r.status);
      return r.json();
    });
  }

  function fmt_bytes(n) {
    if (n === null || n === undefined) return "unknown";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }
  function fmt_int(n) { return Number(n).toLocaleString("en-US"); }
  function fmt_duration(ms) {
    if (ms === null || ms === undefined) return "-";
    var s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    var m = Math.round(s / 60);
    if (m < 120) return m + " min";
    var h = Math.round(m / 60);
    if (h < 72) return h + " h";
    return Math.round(h / 24) + " days";
  }
  function fmt_time(ms) { return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }

  /** Rate of field per second over the samples of the last window_ms. */
  function rate(field, window_ms) {
    if (samples.length < 2) return null;
    var last = samples[samples.length - 1];
    var first = samples[0];
    for (var i = samples.length - 2; i >= 0; i--) {
      first = samples[i];
      if (last.t - samples[i].t >= window_ms) break;
    }
    var dt = (last.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, (last[field] - first[field]) / dt) : null;
  }

  function draw_chart() {
    var canvas = $("rate-chart");
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    var points = [];
    for (var i = 1; i < samples.length; i++) {
      var dt = (samples[i].t - samples[i - 1].t) / 1000;
      if (dt > 0) points.push({ t: samples[i].t, r: Math.max(0, (samples[i].events - samples[i - 1].events) / dt) });
    }
    var left = 56, right = 8, top = 8, bottom = 20;
    var max = 1;
    points.forEach(function (p) { if (p.r > max) max = p.r; });
    max = nice_ceiling(max);
    g.strokeStyle = "#d9dee7"; g.fillStyle = "#667085"; g.lineWidth = 1; g.font = "11px system-ui, sans-serif";
    for (var k = 0; k <= 4; k++) {
      var y = top + (h - top - bottom) * (1 - k / 4);
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(w - right, y + 0.5); g.stroke();
      g.fillText(fmt_int(Math.round(max * k / 4)), 4, y + 4);
    }
    var span_ms = samples.length > 1 ? samples[samples.length - 1].t - samples[0].t : 0;
    text("chart-span", fmt_duration(span_ms));
    if (points.length === 0) { g.fillText("collecting samples...", left + 8, top + 16); return; }
    var t0 = samples[0].t, t1 = samples[samples.length - 1].t;
    var x = function (t) { return left + (w - left - right) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1); };
    var yv = function (r) { return top + (h - top - bottom) * (1 - r / max); };
    g.strokeStyle = "#2f6fde"; g.lineWidth = 2; g.beginPath();
    points.forEach(function (p, i) { if (i === 0) g.moveTo(x(p.t), yv(p.r)); else g.lineTo(x(p.t), yv(p.r)); });
    g.stroke();
    g.fillStyle = "#667085";
    g.fillText("now", w - right - 24, h - 6);
  }
  function nice_ceiling(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function cell(tr, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function show_peers(status) {
    var body = $("peers");
    body.textContent = "";
    var peers = status.sync.peers;
    peers.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.dataset.peer = p.id;
      cell(tr, p.id); cell(tr, p.name || "-");
      cell(tr, fmt_int(p.lag_events), "num");
      cell(tr, p.oldest_unacked_age_ms === null ? "-" : fmt_duration(p.oldest_unacked_age_ms), "num");
      cell(tr, p.last_seen_ms === null ? "never" : fmt_duration(Math.max(0, status.time_ms - p.last_seen_ms)) + " ago", "num");
      body.appendChild(tr);
    });
    text("peers-empty", !status.sync.configured ? "Sync is off: no broker is configured." : peers.length === 0 ? "No peers seen yet." : "");
  }

  function show_conflicts(conflicts) {
    $("conflicts-card").hidden = conflicts.length === 0;
    text("conflicts-total", fmt_int(conflicts.length));
    text("conflicts-line", conflicts.length === 0 ? "" :
      "Two devices write events with the key of " + conflicts.map(function (c) { return c.origin + " (seq " + c.seq + ", from " + c.from + ")"; }).join(", ") +
      ": a copied data directory. Keep one device; give the other a new data directory (interlog init).");
  }

  function show_retention(r) {
    if (!r) return;
    text("ret-policy", r.configured ? "(" + r.policy + ")" : "(no budget)");
    text("ret-used", r.configured ? fmt_bytes(r.used_bytes) + " of " + fmt_bytes(r.max_bytes) : fmt_bytes(r.used_bytes) + ", the log only grows");
    text("ret-share", r.used_ratio === null ? "-" : (100 * r.used_ratio).toFixed(1) + " %");
    $("ret-bar").style.width = r.used_ratio === null ? "0" : Math.min(100, 100 * r.used_ratio).toFixed(1) + "%";
    var p = r.pruned;
    text("ret-pruned-acked", fmt_int(p.acked_events) + " events, " + fmt_bytes(p.acked_bytes));
    text("ret-pruned-unacked", fmt_int(p.unacked_events) + " events, " + fmt_bytes(p.unacked_bytes));
    $("ret-pruned-unacked").className = p.unacked_events > 0 ? "bad" : "";
    text("ret-oldest", r.oldest_event_age_ms === null ? "-" : fmt_duration(r.oldest_event_age_ms) + " old");
    text("ret-full-in", !r.configured ? "no budget" : r.fill_rate_bytes_per_s === null ? "-" : r.full_in_s === null ? "not filling" :
      r.full_in_s === 0 ? (r.policy === "reject" ? "full" : "full; pruning makes room") : fmt_duration(1000 * r.full_in_s));
    var most = null;
    Object.keys(r.unacked_bytes_by_upstream).forEach(function (u) {
      if (most === null || r.unacked_bytes_by_upstream[u] > r.unacked_bytes_by_upstream[most]) most = u;
    });
    text("ret-unacked", most === null ? "-" : fmt_bytes(r.unacked_bytes_by_upstream[most]));
    text("ret-unacked-by", most === null ? "" : "by upstream " + most);
    $("retention-warning-card").hidden = r.warning === null;
    text("retention-warning", r.warning || "");
  }

  function show_rejected(q) {
    var body = $("rejected");
    body.textContent = "";
    q.events.slice(0, 20).forEach(function (e) {
      var tr = document.createElement("tr");
      cell(tr, e.id); cell(tr, fmt_time(e.time)); cell(tr, e.message, "msg");
      body.appendChild(tr);
    });
    text("rejected-total", fmt_int(q.total) + (q.complete ? "" : "+"));
    text("rejected-empty", q.total === 0 ? "No event has failed the sync validators." : "");
  }

  function show(status, q) {
    samples.push({ t: status.time_ms, events: status.events, bytes: status.bytes });
    if (samples.length > samples_max) samples.shift();
    text("replica-id", status.id);
    text("replica-name", status.name);
    document.title = "InterLog " + (status.name || status.id);
    var sync = status.sync;
    var state = $("sync-state");
    state.textContent = !sync.configured ? "sync off" : sync.connected ? "broker connected" : "broker disconnected";
    state.className = !sync.configured ? "dim" : sync.connected ? "ok" : "bad";
    text("events-count", fmt_int(status.events));
    var r = rate("events", 10000);
    text("append-rate", r === null ? "-" : (r < 10 ? r.toFixed(1) : fmt_int(Math.round(r))));
    text("log-bytes", fmt_bytes(status.bytes));
    text("origins", String(Object.keys(status.vv).length));
    var disk = status.disk;
    text("disk-used", fmt_bytes(disk.used_bytes));
    text("disk-free", fmt_bytes(disk.free_bytes));
    var room = disk.free_bytes === null ? null : disk.free_bytes + Math.max(0, disk.used_bytes - status.bytes);
    var total = disk.free_bytes === null ? null : disk.free_bytes + disk.used_bytes;
    var share = total ? 100 * (total - room) / total : null;
    $("disk-bar").style.width = share === null ? "0" : share.toFixed(1) + "%";
    text("disk-share", share === null ? "unknown" : (share < 0.1 && share > 0 ? "<0.1" : share.toFixed(1)) + " %");
    var byte_rate = rate("bytes", 60000);
    text("time-to-full", room === null ? "unknown" : byte_rate === null ? "-" : byte_rate <= 0 ? "not filling" : fmt_duration(1000 * room / byte_rate));
    text("sync-summary", !sync.configured ? "off" : sync.connected ? "online" : "offline");
    $("sync-summary").className = "big " + (!sync.configured ? "dim" : sync.connected ? "ok" : "bad");
    text("peer-count", sync.configured ? String(sync.peers.length) : "-");
    var max_lag = null;
    sync.peers.forEach(function (p) { if (max_lag === null || p.lag_events > max_lag) max_lag = p.lag_events; });
    text("max-lag", max_lag === null ? "-" : fmt_int(max_lag) + " events");
    text("sync-mode", "fsync " + status.sync_mode + " (" + fmt_int(status.durable_events) + " durable)");
    show_peers(status);
    show_conflicts(status.conflicts || []);
    show_retention(status.retention);
    show_rejected(q);
    text("updated", "updated " + new Date().toLocaleTimeString());
    draw_chart();
  }

  function show_login(message) {
    // No data on screen without a valid token.
    $("data").hidden = true;
    $("forget").hidden = true;
    text("replica-id", "-"); text("replica-name", ""); text("sync-state", ""); text("updated", "");
    samples = [];
    $("login").hidden = false;
    text("login-error", message || "");
    $("token-input").focus();
  }

  function tick() {
    timer = null;
    Promise.all([get("api/status"), get("api/quarantine")]).then(function (res) {
      $("login").hidden = true;
      $("data").hidden = false;
      $("forget").hidden = !token();
      show(res[0], res[1]);
      timer = setTimeout(tick, poll_ms);
    }).catch(function (e) {
      if (e instanceof AuthError) { forget_token(); show_login(e.message); return; }
      text("updated", "cannot reach the replica: " + e.message);
      timer = setTimeout(tick, poll_ms);
    });
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    store_token($("token-input").value.trim());
    $("token-input").value = "";
    if (timer !== null) clearTimeout(timer);
    tick();
  });
  $("forget").addEventListener("click", function () {
    forget_token();
    if (timer !== null) clearTimeout(timer);
    timer = null;
    show_login("");
  });
  window.addEventListener("resize", function () { if (!$("data").hidden) draw_chart(); });
  tick();
})();
</script>
</body>
</html>
`;

const no_token_hidden = '<div id="no-token" class="card wide notice" hidden>';
assert(dashboard_html.includes(no_token_hidden), "the page holds the no-token notice, hidden");

/** The page as served: without a token it also says how to set one. */
export function dashboard_page(token_set: boolean): string {
  return token_set ? dashboard_html : dashboard_html.replace(no_token_hidden, '<div id="no-token" class="card wide notice">');
}
