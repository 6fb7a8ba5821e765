// parkcast dashboard: plain ES module, no framework, no build step. Three views routed by the
// URL hash (#/, #/lot/<id>, #/status); every view re-renders from the API on a timer, so new
// readings and forecasts appear without a reload (polling works the same behind API Gateway).

const API = document.querySelector('meta[name="parkcast-api"]')?.content.replace(/\/$/, "") ?? "";
const POLL_MS = Number(new URLSearchParams(location.search).get("poll") || 5000);
const main = document.getElementById("main");
const live = document.getElementById("live");
let timer = null;
let firstRender = true;

async function api(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const error = new Error(body?.error?.message || `${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// -- formatting --------------------------------------------------------------------------

const escapeHtml = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const pct = (rate) => `${Math.round(rate * 100)}%`;
const timeIn = (iso, zone, opts = { dateStyle: "medium", timeStyle: "short" }) =>
  new Intl.DateTimeFormat(undefined, { ...opts, timeZone: zone }).format(new Date(iso));
const hourIn = (iso, zone) => timeIn(iso, zone, { hour: "2-digit", minute: "2-digit" });

// A forecast whose source is "baseline:<name>" comes from a baseline, not the trained model:
// a lot with too little history, or a package whose model did not beat the weekly
// level-adjusted baseline on its rolling-origin folds. The label says so.
function isBaseline(forecast) {
  return Boolean(forecast && forecast.source && forecast.source.startsWith("baseline:"));
}

function modelLabel(forecast) {
  if (!forecast) return "model";
  if (isBaseline(forecast)) return `baseline forecast (${escapeHtml(forecast.source.slice(9).replace("_", " "))}), not the model`;
  return forecast.source !== "model" ? `model (${escapeHtml(forecast.source)})` : "model";
}

function age(iso) {
  const minutes = Math.max(0, (Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 90) return `${Math.round(minutes)} min ago`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h ago`;
  return `${Math.round(minutes / 1440)} days ago`;
}

// Minutes since local midnight, now, in the lot's timezone.
function localMinutes(zone) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .formatToParts(new Date());
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return get("hour") * 60 + get("minute");
}
const clockMinutes = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

// Outside its opening hours (local time) a car park sends nothing: closed, not stale.
function isClosed(lot) {
  if (!lot.opens_at || !lot.closes_at) return false;
  const now = localMinutes(lot.timezone), opens = clockMinutes(lot.opens_at), closes = clockMinutes(lot.closes_at);
  return opens <= closes ? now < opens || now >= closes : now < opens && now >= closes;
}

// A lot is stale when its last reading is older than two grid steps (at least an hour) while it is
// open and has been open that long; a closed lot only when its last reading is older than a day.
function isStale(lot) {
  if (!lot.latest) return true;
  const age = Date.now() - new Date(lot.latest.observed_at).getTime();
  const limit = Math.max(2 * lot.grid_step_minutes, 60) * 60000;
  if (isClosed(lot)) return age > 86400000;
  if (lot.opens_at && (localMinutes(lot.timezone) - clockMinutes(lot.opens_at) + 1440) % 1440 * 60000 < limit) {
    return age > 86400000;  // just opened: the first reading of the day is on its way
  }
  return age > limit;
}

function stateBadge(lot) {
  if (isStale(lot)) return '<span class="badge stale">stale</span>';
  if (isClosed(lot)) return `<span class="badge closed" title="opens ${escapeHtml(lot.opens_at)}, closes ${escapeHtml(lot.closes_at)} local time">closed</span>`;
  return "";
}

// The overview's forecast cell: the first step ahead of the latest forecast, and who made it.
function nextCell(lot) {
  const f = lot.forecast;
  if (!f) return '<td class="num forecast muted">–</td>';
  const model = f.source === "model" ? `model ${f.model_version}` : `${f.source} (model ${f.model_version})`;
  return `<td class="num forecast" data-model="${escapeHtml(f.model_version)}" data-source="${escapeHtml(f.source)}"
    title="${escapeHtml(model)}, issued ${timeIn(f.issued_at, lot.timezone)}">${pct(f.next.p50)}
    <span class="muted small">at ${hourIn(f.next.target_time, lot.timezone)}</span></td>`;
}

// -- charts (inline SVG) -------------------------------------------------------------------

function sparkline(points) {
  if (!points || points.length < 2) return '<span class="muted">–</span>';
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const d = points.map(([t, r], i) =>
    `${i ? "L" : "M"}${(((t - t0) / (t1 - t0 || 1)) * 108 + 1).toFixed(1)},${(25 - r * 24).toFixed(1)}`).join("");
  return `<svg class="spark" viewBox="0 0 110 26" role="img" aria-label="occupancy over the last day"><path d="${d}"/></svg>`;
}

function chart({ actual = [], forecast = [], zone, label, width = 760, height = 260 }) {
  const pad = { l: 40, r: 12, t: 12, b: 28 };
  const times = [...actual.map((p) => p.t), ...forecast.map((p) => p.t)];
  if (!times.length) return `<p class="muted">No data for this chart yet.</p>`;
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (width - pad.l - pad.r);
  const y = (r) => pad.t + (1 - r) * (height - pad.t - pad.b);
  const line = (pts, key) => pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join("");
  let svg = `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}">`;
  for (const r of [0, 0.25, 0.5, 0.75, 1]) {
    svg += `<line class="axis" x1="${pad.l}" x2="${width - pad.r}" y1="${y(r)}" y2="${y(r)}"/>` +
      `<text x="4" y="${y(r) + 4}">${pct(r)}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    svg += `<text x="${x(t) - 18}" y="${height - 8}">${hourIn(new Date(t).toISOString(), zone)}</text>`;
  }
  if (forecast.length) {
    const band = forecast.map((p) => `${x(p.t).toFixed(1)},${y(p.p90).toFixed(1)}`)
      .concat([...forecast].reverse().map((p) => `${x(p.t).toFixed(1)},${y(p.p10).toFixed(1)}`));
    svg += `<polygon class="band" points="${band.join(" ")}"><title>P10-P90 band</title></polygon>`;
    svg += `<path class="p50" d="${line(forecast, "p50")}"><title>forecast (median)</title></path>`;
    const now = forecast[0].t;
    svg += `<line class="now" x1="${x(now)}" x2="${x(now)}" y1="${pad.t}" y2="${height - pad.b}"/>`;
  }
  if (actual.length) svg += `<path class="actual" d="${line(actual, "r")}"><title>actual occupancy</title></path>`;
  return svg + "</svg>";
}

// -- views ---------------------------------------------------------------------------------

async function overview() {
  const lots = await api("/v1/lots?trend_hours=24");
  const occupied = lots.reduce((s, l) => s + (l.latest?.occupied ?? 0), 0);
  const capacity = lots.reduce((s, l) => s + (l.latest ? l.capacity : 0), 0);
  const stale = lots.filter(isStale).length;
  const closed = lots.filter((l) => !isStale(l) && isClosed(l)).length;
  const rows = lots.map((lot) => {
    const latest = lot.latest;
    const rate = latest ? latest.occupancy_rate : null;
    return `<tr data-lot="${escapeHtml(lot.lot_id)}">
      <td><a href="#/lot/${encodeURIComponent(lot.lot_id)}">${escapeHtml(lot.name)}</a></td>
      <td class="num"><span class="occupied">${latest ? latest.occupied : "–"}</span> / <span class="capacity">${lot.capacity}</span></td>
      <td class="num pct">${rate === null ? "–" : pct(rate)}</td>
      <td class="hide-narrow">${rate === null ? "" : `<span class="bar" aria-hidden="true"><span style="width:${pct(rate)}"></span></span>`}</td>
      <td class="age">${latest ? `<time datetime="${latest.observed_at}" title="${timeIn(latest.observed_at, lot.timezone)}">${age(latest.observed_at)}</time>` : "no reading"}
        ${stateBadge(lot)}</td>
      ${nextCell(lot)}
      <td class="hide-narrow">${sparkline(lot.trend)}</td></tr>`;
  }).join("");
  main.innerHTML = `<h1>Car parks now</h1>
    <div class="cards">
      <div class="card"><div class="value" id="total-occupied">${occupied} / ${capacity}</div><div class="label">spaces taken, all car parks</div></div>
      <div class="card"><div class="value">${lots.length}</div><div class="label">car parks</div></div>
      <div class="card"><div class="value" id="stale-count">${stale}</div><div class="label">stale (no recent reading)</div></div>
      <div class="card"><div class="value" id="closed-count">${closed}</div><div class="label">closed now (opening hours)</div></div>
    </div>
    <table aria-label="Occupancy per car park">
      <thead><tr><th scope="col">Car park</th><th scope="col" class="num">Taken / spaces</th><th scope="col" class="num">Occupancy</th>
      <th scope="col" class="hide-narrow"><span class="visually-hidden">bar</span></th><th scope="col">Last reading</th><th scope="col" class="num">Next (forecast)</th><th scope="col" class="hide-narrow">Last 24 h</th></tr></thead>
      <tbody>${rows}</tbody></table>`;
}

async function lotPage(lotId) {
  const lot = await api(`/v1/lots/${encodeURIComponent(lotId)}`);
  let forecast = null;
  try {
    forecast = await api(`/v1/lots/${encodeURIComponent(lotId)}/forecast`);
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  const end = lot.latest ? new Date(new Date(lot.latest.observed_at).getTime() + 60000) : new Date();
  const since = (days) => new Date(end.getTime() - days * 86400000).toISOString();
  const week = await api(`/v1/lots/${encodeURIComponent(lotId)}/readings?start=${encodeURIComponent(since(7))}&end=${encodeURIComponent(end.toISOString())}`);
  const points = week.readings.map((r) => ({ t: new Date(r.observed_at).getTime(), r: r.occupied / r.capacity }));
  const dayStart = end.getTime() - 86400000;
  const steps = forecast ? forecast.steps.map((s) => ({ ...s, t: new Date(s.target_time).getTime() })) : [];
  const zone = lot.timezone;
  const stepRows = steps.map((s) => `<tr>
      <td>${hourIn(s.target_time, zone)}</td><td class="num">${pct(s.p50)}</td>
      <td class="num">${pct(s.p10)}–${pct(s.p90)}</td>
      <td class="num prob-free">${pct(s.prob_free)}</td></tr>`).join("");
  const latest = lot.latest;
  main.innerHTML = `<p><a href="#/">← all car parks</a></p>
    <h1 id="lot-name">${escapeHtml(lot.name)}</h1>
    <div class="cards">
      <div class="card"><div class="value" id="lot-occupied">${latest ? `${latest.occupied} / ${lot.capacity}` : "–"}</div><div class="label">spaces taken</div></div>
      <div class="card"><div class="value">${latest ? pct(latest.occupancy_rate) : "–"}</div><div class="label">occupancy</div></div>
      <div class="card"><div class="value">${latest ? age(latest.observed_at) : "–"}</div><div class="label">last reading${latest ? ` (${timeIn(latest.observed_at, zone)})` : ""} ${stateBadge(lot)}</div></div>
      <div class="card"><div class="value" id="model-version">${forecast ? escapeHtml(forecast.model_version) : "–"}</div><div class="label" id="model-label">${modelLabel(forecast)}</div></div>
    </div>
    <h2>Last day and the next hours</h2>
    <div class="legend"><span><i style="background:var(--ink)"></i>actual</span><span><i style="background:var(--accent)"></i>forecast (median)</span><span><i style="background:var(--band)"></i>P10–P90</span></div>
    <div id="forecast-chart">${chart({ actual: points.filter((p) => p.t >= dayStart), forecast: steps, zone, label: `occupancy of ${lot.name}, last day and forecast` })}</div>
    ${forecast ? `<p class="muted">Forecast issued ${timeIn(forecast.issued_at, zone)} by ${isBaseline(forecast) ? "a baseline in model package" : "model"} ${escapeHtml(forecast.model_version)}.</p>
    <table aria-label="Forecast per step"><thead><tr><th scope="col">Time</th><th scope="col" class="num">Expected occupancy</th>
      <th scope="col" class="num">P10–P90</th><th scope="col" class="num">Chance of a free space</th></tr></thead><tbody id="forecast-steps">${stepRows}</tbody></table>`
      : '<p class="muted" id="no-forecast">No forecast yet for this car park.</p>'}
    <h2>Last week</h2>
    <div id="week-chart">${chart({ actual: points, zone, label: `occupancy of ${lot.name}, last week` })}</div>`;
}

async function statusPage() {
  const s = await api("/v1/status");
  const dagster = s.dagster_url;
  const run = s.pipeline;
  const drift = s.drift;
  const rows = s.models.versions.map((v) => `<tr data-version="${v.version}">
      <td>${v.version}${v.in_production ? ' <span class="badge ok">in production</span>' : ""}</td>
      <td class="model-status">${escapeHtml(v.status)}</td>
      <td class="num">${v.metrics.val_intraday_mae?.toFixed(4) ?? "–"}</td>
      <td class="num">${v.evaluation ? `${v.evaluation.candidate_mae?.toFixed(4)}${v.evaluation.production_mae !== undefined ? ` vs ${v.evaluation.production_mae.toFixed(4)}` : ""}` : "–"}</td>
      <td class="hide-narrow">${escapeHtml(v.promotion?.reason ?? v.note ?? "")}</td></tr>`).join("");
  const count = (name) => s.models.counts[name] ?? 0;
  main.innerHTML = `<h1>Pipeline and models</h1>
    <div class="cards">
      <div class="card"><div class="value" id="production-version">${s.models.production ?? "none"}</div><div class="label">version in production</div></div>
      <div class="card"><div class="value">${count("PendingManualApproval")}</div><div class="label">pending approval</div></div>
      <div class="card"><div class="value">${count("Approved")}</div><div class="label">approved</div></div>
      <div class="card"><div class="value">${drift ? (drift.drift ? '<span class="badge bad">drift</span>' : '<span class="badge ok">no drift</span>') : "–"}</div><div class="label">last drift decision</div></div>
    </div>
    <h2>Last pipeline run</h2>
    ${run ? `<p id="last-run">${timeIn(run.at, undefined)}: ${escapeHtml(run.decision)}
      ${dagster ? ` · <a href="${escapeHtml(dagster)}/runs/${encodeURIComponent(run.run_id)}">run in Dagster</a>` : ""}</p>`
      : '<p class="muted" id="last-run">The pipeline has not run yet.</p>'}
    ${drift ? `<p>Drift test on ${escapeHtml((drift.new_days || []).join(", "))}: ${escapeHtml(drift.reason)}</p>` : ""}
    ${dagster ? `<p><a href="${escapeHtml(dagster)}">Open the Dagster UI</a> (asset graph, runs, checks)</p>` : ""}
    <h2>Model versions (${escapeHtml(s.models.group)})</h2>
    <table aria-label="Model versions"><thead><tr><th scope="col">Version</th><th scope="col">Status</th><th scope="col" class="num">Validation MAE</th>
      <th scope="col" class="num">Evaluation MAE (vs production)</th><th scope="col" class="hide-narrow">Decision</th></tr></thead><tbody>${rows}</tbody></table>`;
}

// -- routing and refresh -----------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const lot = hash.match(/^\/lot\/(.+)$/);
  if (lot) return { name: "lot", render: () => lotPage(decodeURIComponent(lot[1])) };
  if (hash === "/status") return { name: "status", render: statusPage };
  return { name: "overview", render: overview };
}

async function refresh() {
  const current = route();
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.nav === current.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  try {
    await current.render();
    live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    main.innerHTML = `<p class="error" role="alert">${escapeHtml(error.message)}</p>`;
    live.textContent = "update failed";
  }
  if (firstRender) {
    firstRender = false;
    performance.mark("parkcast-rendered");
  }
  clearTimeout(timer);
  timer = setTimeout(refresh, POLL_MS);
}

window.addEventListener("hashchange", () => {
  refresh().then(() => main.focus({ preventScroll: true }));
});
refresh();
