// The admin page: one self-contained HTML document (inline CSS and JS, graphs in inline SVG,
// nothing fetched from elsewhere) that polls api/status every two seconds. Names that come
// from users (buckets) are only ever set as text, never as markup.

export const ADMIN_PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

export const ADMIN_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>s3g admin</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #6b7280; --line: #e3e6eb; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; --in: #2563eb; --out: #9333ea; --req: #0f766e; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: center; gap: 12px; padding: 12px 20px; background: var(--ink); color: #fff; }
  header h1 { font-size: 18px; margin: 0; font-weight: 600; }
  header .meta { margin-left: auto; color: #c7cbd3; font-size: 12px; }
  main { padding: 16px 20px; display: grid; gap: 16px; max-width: 1200px; }
  .badge { padding: 2px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e5e7eb; color: var(--ink); }
  .badge.ok { background: #dcfce7; color: var(--ok); } .badge.bad { background: #fee2e2; color: var(--bad); } .badge.warn { background: #fef3c7; color: var(--warn); }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 12px; }
  .card, section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
  .card { padding: 10px 12px; } .card .label { color: var(--muted); font-size: 12px; } .card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  section { padding: 12px 14px; } section h2 { font-size: 15px; margin: 0 0 8px; }
  .graphs { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 16px; }
  .graph svg { width: 100%; height: 140px; display: block; }
  .legend { font-size: 12px; color: var(--muted); display: flex; gap: 14px; } .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); } th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; }
  .bar { height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden; min-width: 80px; } .bar > div { height: 100%; background: var(--in); }
  .empty { color: var(--muted); }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header><h1>s3g</h1><span id="ready" class="badge">loading</span><span id="error"></span><span class="meta" id="meta"></span></header>
<main>
  <div class="cards">
    <div class="card"><div class="label">Buckets</div><div class="value" id="bucket-count">–</div></div>
    <div class="card"><div class="label">Objects</div><div class="value" id="object-count">–</div></div>
    <div class="card"><div class="label">Stored</div><div class="value" id="stored-bytes">–</div></div>
    <div class="card"><div class="label">Datanodes live</div><div class="value" id="datanode-count">–</div></div>
    <div class="card"><div class="label">Replication</div><div class="value" id="replication-health">–</div></div>
    <div class="card"><div class="label">Requests/s</div><div class="value" id="request-rate">–</div></div>
    <div class="card"><div class="label">In/s</div><div class="value" id="in-rate">–</div></div>
    <div class="card"><div class="label">Out/s</div><div class="value" id="out-rate">–</div></div>
  </div>
  <div class="graphs">
    <section class="graph"><h2>Requests per second</h2><svg id="graph-requests" viewBox="0 0 600 140" preserveAspectRatio="none"></svg>
      <div class="legend"><span><i style="background:var(--req)"></i>requests</span><span><i style="background:var(--bad)"></i>5xx</span><span id="graph-requests-max"></span></div></section>
    <section class="graph"><h2>Throughput</h2><svg id="graph-bytes" viewBox="0 0 600 140" preserveAspectRatio="none"></svg>
      <div class="legend"><span><i style="background:var(--in)"></i>in</span><span><i style="background:var(--out)"></i>out</span><span id="graph-bytes-max"></span></div></section>
  </div>
  <section><h2>Gateways</h2><table id="gateways"><thead><tr><th>Gateway</th><th>S3</th><th class="num">Up</th><th class="num">Req/s</th><th class="num">In/s</th><th class="num">Out/s</th><th class="num">In flight</th><th class="num">Hash queue</th><th class="num">Hash busy</th><th class="num">Loop p99</th><th class="num">RSS</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Datanodes</h2><table id="datanodes"><thead><tr><th>ID</th><th>Address</th><th>State</th><th class="num">Used</th><th class="num">Capacity</th><th>Use</th><th class="num">Heartbeat</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Background work</h2><table id="background"><thead><tr><th>Service</th><th class="num">Waiting</th><th class="num">Done</th><th>Progress</th><th class="num">Rate</th><th class="num">ETA</th><th>Last pass here</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Buckets <span class="empty" id="buckets-note"></span></h2><table id="buckets"><thead><tr><th>Bucket</th><th>Volume</th><th class="num">Objects</th><th class="num">Bytes</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(n) { let v = n, u = 0; while (Math.abs(v) >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; } return u === 0 ? Math.round(v) + " B" : v.toFixed(v < 10 ? 2 : 1) + " " + UNITS[u]; }
function num(n) { return Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }); }
function duration(s) {
  if (s === undefined || s === null || !isFinite(s)) return "?";
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
}
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
function badge(text, kind) { const td = document.createElement("td"); const b = document.createElement("span"); b.className = "badge " + kind; b.textContent = text; td.appendChild(b); return td; }
function bar(fraction) { const td = document.createElement("td"); const outer = document.createElement("div"); outer.className = "bar"; const inner = document.createElement("div"); inner.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + "%"; outer.appendChild(inner); td.appendChild(outer); return td; }
function fill(tableId, rows, emptyText, columns) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) { const tr = document.createElement("tr"); const td = cell(emptyText, "empty"); td.colSpan = columns; tr.appendChild(td); body.appendChild(tr); }
}
const SVG = "http://www.w3.org/2000/svg";
function graph(svgId, samples, series, format) {
  const svg = $(svgId), W = 600, H = 140, pad = 4;
  const max = Math.max(1, ...samples.flatMap((s) => series.map((x) => x.pick(s))));
  const n = Math.max(samples.length, 2);
  const nodes = [];
  for (const frac of [0.25, 0.5, 0.75]) { const l = document.createElementNS(SVG, "line"); l.setAttribute("x1", 0); l.setAttribute("x2", W); l.setAttribute("y1", H * frac); l.setAttribute("y2", H * frac); l.setAttribute("stroke", "#eef0f3"); nodes.push(l); }
  for (const x of series) {
    const pts = samples.map((s, i) => ((W * (i + n - samples.length)) / (n - 1)).toFixed(1) + "," + (H - pad - ((H - 2 * pad) * x.pick(s)) / max).toFixed(1));
    if (pts.length === 0) continue;
    const p = document.createElementNS(SVG, "polyline");
    p.setAttribute("points", pts.join(" ")); p.setAttribute("fill", "none"); p.setAttribute("stroke", x.color); p.setAttribute("stroke-width", "2");
    p.setAttribute("vector-effect", "non-scaling-stroke"); p.dataset.series = x.name;
    nodes.push(p);
  }
  svg.replaceChildren(...nodes);
  $(svgId + "-max").textContent = "peak " + format(max) + " over " + duration(samples.length);
}
function render(s) {
  const ready = s.readiness.ready;
  $("ready").className = "badge " + (ready ? "ok" : "bad");
  $("ready").textContent = ready ? "ready" : "not ready: " + s.readiness.reasons.join("; ");
  const g = s.gateways[0];
  $("meta").textContent = "s3g " + (g ? g.version : "") + " · stats " + (s.statsAt ? duration((s.generatedAt - s.statsAt) / 1000) + " old" : "pending") + " · updated " + new Date(s.generatedAt).toLocaleTimeString();
  $("bucket-count").textContent = num(s.totals.buckets);
  $("object-count").textContent = num(s.totals.objects);
  $("stored-bytes").textContent = bytes(s.totals.bytes);
  const live = s.datanodes.filter((d) => d.state === "live").length;
  $("datanode-count").textContent = live + " / " + s.datanodes.length;
  const r = s.replication;
  $("replication-health").textContent = !r ? "–" : r.underReplicated === 0 ? "healthy" : num(r.underReplicated) + " under";
  $("request-rate").textContent = g ? num(g.requestsPerSecond) : "–";
  $("in-rate").textContent = g ? bytes(g.bytesInPerSecond) : "–";
  $("out-rate").textContent = g ? bytes(g.bytesOutPerSecond) : "–";

  graph("graph-requests", s.history, [{ name: "requests", color: "#0f766e", pick: (x) => x.requests }, { name: "errors", color: "#b91c1c", pick: (x) => x.errors }], (v) => num(v) + "/s");
  graph("graph-bytes", s.history, [{ name: "in", color: "#2563eb", pick: (x) => x.bytesIn }, { name: "out", color: "#9333ea", pick: (x) => x.bytesOut }], (v) => bytes(v) + "/s");

  fill("gateways", s.gateways.map((x) => {
    const tr = document.createElement("tr"); tr.dataset.gateway = x.id;
    tr.append(cell(x.id), cell(x.s3Url), cell(duration(x.uptimeSeconds), "num"), cell(num(x.requestsPerSecond), "num"), cell(bytes(x.bytesInPerSecond), "num"), cell(bytes(x.bytesOutPerSecond), "num"),
      cell(String(x.inFlight), "num"), cell(String(x.hashPool.queueSize), "num"), cell(Math.round(x.hashPool.utilization * 100) + "%", "num"), cell(x.eventLoopDelayP99Ms + " ms", "num"), cell(bytes(x.rssBytes), "num"));
    return tr;
  }), "no gateway", 11);
  fill("datanodes", s.datanodes.map((d) => {
    const tr = document.createElement("tr"); tr.dataset.datanode = d.id;
    tr.append(cell(d.id), cell(d.address), badge(d.state, d.state === "live" ? "ok" : "bad"), cell(bytes(d.usedBytes), "num"), cell(bytes(d.capacityBytes), "num"),
      bar(d.capacityBytes > 0 ? d.usedBytes / d.capacityBytes : 0), cell(duration((s.generatedAt - d.lastHeartbeat) / 1000) + " ago", "num"));
    return tr;
  }), "no datanodes registered", 7);
  const work = [];
  if (r) work.push(["re-replication (blocks below " + r.factor + " live replicas)", r]);
  if (s.purge) work.push(["block-purge (deleted-block log" + (s.purge.running ? ", running" : "") + ")", s.purge]);
  fill("background", work.map(([name, v]) => {
    const tr = document.createElement("tr"); tr.dataset.service = name.split(" ")[0];
    const svc = (s.services || []).find((x) => x.name === tr.dataset.service);
    const last = !svc ? "–" : !svc.leader ? "another gateway holds the lease" : !svc.lastPassAt ? "none yet"
      : duration((s.generatedAt - svc.lastPassAt) / 1000) + " ago: " + Object.entries(svc.lastPass).map(([k, n]) => k + " " + num(n)).join(", ");
    tr.append(cell(name), cell(num(v.backlog), "num"), cell(num(v.done), "num"), bar(v.total > 0 ? v.done / v.total : 1),
      cell(v.rate === undefined || v.rate === null ? "–" : num(v.rate) + "/s", "num"), cell(v.backlog === 0 ? "idle" : duration(v.etaSeconds), "num"), cell(last));
    return tr;
  }), "stats pending", 7);
  fill("buckets", s.buckets.map((b) => {
    const tr = document.createElement("tr"); tr.dataset.bucket = b.name;
    tr.append(cell(b.name), cell(b.volume), cell(num(b.objects), "num"), cell(bytes(b.bytes), "num"));
    return tr;
  }), "no buckets", 4);
  $("buckets-note").textContent = s.totals.buckets > s.buckets.length ? "(largest " + s.buckets.length + " of " + num(s.totals.buckets) + ")" : "";
}
async function poll() {
  try {
    const res = await fetch("api/status", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
    $("error").textContent = "";
  } catch (e) {
    $("error").textContent = "cannot reach the gateway: " + e.message;
  } finally {
    setTimeout(poll, 2000);
  }
}
poll();
</script>
</body>
</html>
`;
