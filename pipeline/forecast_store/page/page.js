// velocast page: draws the ensemble mean/spread map of the store's domain on a canvas from /v1/grid (lat/lon
// axes, coastlines from /v1/coastlines, a marker on the chosen point) and the plume at a clicked point from
// /v1/point. No external libraries. A token may be given as #token=... in the URL.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
let info = null, grid = null;

// viridis-like colour stops
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(t) {
  if (!isFinite(t)) return [200, 200, 200];
  t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t)), f = t - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

async function getJSON(url) {
  const r = await fetch(url, { headers });
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

function fill(select, values, labels) {
  select.innerHTML = "";
  values.forEach((v, i) => {
    const o = document.createElement("option");
    o.value = v; o.textContent = labels ? labels[i] : v;
    select.appendChild(o);
  });
}

function query() {
  const v = $("variable").value, p = new URLSearchParams({ variable: v });
  if (info.variables[v].has_level) p.set("level", $("level").value);
  return p;
}

// The map is drawn over the store's own domain (a region or the globe) inside margins that hold the
// lat/lon axes; coastlines come from /v1/coastlines (empty for the embedded atmosphere).
const MARGIN = { left: 44, right: 8, top: 8, bottom: 26 };
let coast = null, chosen = null;

function frame() {
  const d = info.domain, cv = $("map");
  const west = d.lon_west, east = d.lon_west + d.lon_span;
  return { west, east, south: d.lat_min, north: d.lat_max, x0: MARGIN.left, y0: MARGIN.top,
           w: cv.width - MARGIN.left - MARGIN.right, h: cv.height - MARGIN.top - MARGIN.bottom };
}
const toX = (f, lon) => f.x0 + f.w * (lon - f.west) / (f.east - f.west);
const toY = (f, lat) => f.y0 + f.h * (f.north - lat) / (f.north - f.south);

function sizeMap() {
  // height from the domain's shape (equirectangular, scaled by cos of the mid latitude), within limits
  const d = info.domain, cv = $("map");
  const mid = (d.lat_min + d.lat_max) / 2 * Math.PI / 180;
  const inner = (cv.width - MARGIN.left - MARGIN.right) * (d.lat_max - d.lat_min) / (d.lon_span * Math.max(Math.cos(mid), 0.3));
  cv.height = Math.round(Math.min(560, Math.max(200, inner)) + MARGIN.top + MARGIN.bottom);
}

function niceStep(span) {
  const raw = span / 6, p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

function drawAxes(ctx, f) {
  ctx.strokeStyle = "#444"; ctx.lineWidth = 1; ctx.strokeRect(f.x0, f.y0, f.w, f.h);
  ctx.fillStyle = "#222"; ctx.font = "11px sans-serif";
  const lonStep = niceStep(f.east - f.west), latStep = niceStep(f.north - f.south);
  ctx.textAlign = "center";
  for (let lon = Math.ceil(f.west / lonStep) * lonStep; lon <= f.east + 1e-9; lon += lonStep) {
    const x = toX(f, lon);
    ctx.fillRect(x, f.y0 + f.h, 1, 4);
    ctx.fillText(`${+lon.toFixed(2)}°E`, x, f.y0 + f.h + 15);
  }
  ctx.textAlign = "right";
  for (let lat = Math.ceil(f.south / latStep) * latStep; lat <= f.north + 1e-9; lat += latStep) {
    const y = toY(f, lat);
    ctx.fillRect(f.x0 - 4, y, 4, 1);
    ctx.fillText(`${+lat.toFixed(2)}°N`, f.x0 - 6, y + 4);
  }
}

function drawCoast(ctx, f) {
  if (!coast) return;
  ctx.save(); ctx.beginPath(); ctx.rect(f.x0, f.y0, f.w, f.h); ctx.clip();
  ctx.strokeStyle = "rgba(0,0,0,0.75)"; ctx.lineWidth = 1;
  for (const line of coast.coordinates) {
    ctx.beginPath();
    line.forEach(([lon, lat], k) => { const x = toX(f, lon), y = toY(f, lat); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
  }
  ctx.restore();
}

function drawMarker(ctx, f) {
  if (!chosen) return;
  const x = toX(f, chosen.lon), y = toY(f, chosen.lat);
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 3; ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.stroke();
  ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.stroke();
}

function nearest(values, v) {
  let i = 0, best = Infinity;
  for (let k = 0; k < values.length; k++) { const d = Math.abs(values[k] - v); if (d < best) { best = d; i = k; } }
  return i;
}

function paint() {
  const cv = $("map"), ctx = cv.getContext("2d"), f = frame();
  ctx.clearRect(0, 0, cv.width, cv.height);
  const lo = grid.min, hi = grid.max, span = hi > lo ? hi - lo : 1;
  const img = ctx.createImageData(Math.round(f.w), Math.round(f.h));
  const rows = [], cols = [];
  for (let y = 0; y < img.height; y++) rows.push(nearest(grid.latitude, f.north - (y + 0.5) * (f.north - f.south) / img.height));
  for (let x = 0; x < img.width; x++) {
    let lon = f.west + (x + 0.5) * (f.east - f.west) / img.width;
    if (info.domain.periodic) lon = ((lon - grid.longitude[0]) % 360 + 360) % 360 + grid.longitude[0];
    cols.push(nearest(grid.longitude, lon));
  }
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const c = colour((grid.values[rows[y]][cols[x]] - lo) / span), o = 4 * (y * img.width + x);
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, f.x0, f.y0);
  drawCoast(ctx, f);
  drawAxes(ctx, f);
  drawMarker(ctx, f);
}

async function drawMap() {
  const p = query();
  p.set("lead", $("lead").value); p.set("stat", $("stat").value);
  $("status").textContent = "loading map…";
  try { grid = await getJSON("v1/grid?" + p); }
  catch (e) { $("status").textContent = "error: " + e.message; return; }
  paint();
  drawColourbar(grid.min, grid.max, grid.units);
  $("status").textContent = `${grid.variable}${grid.level ? " " + grid.level + " hPa" : ""}, ${grid.stat}, ` +
    `lead ${grid.lead_hours} h, valid ${grid.valid_time} UTC; domain ${describeDomain()}; snapshot ${grid.snapshot}`;
}

function describeDomain() {
  const d = info.domain;
  return d.kind === "global" ? "global" :
    `lat ${d.lat_min.toFixed(2)}…${d.lat_max.toFixed(2)}°N, lon ${d.lon_west.toFixed(2)}…${d.lon_east.toFixed(2)}°E`;
}

function drawColourbar(lo, hi, units) {
  const cv = $("colorbar"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  const w = cv.width - 130;  // room on the right for the units
  for (let x = 0; x < w; x++) {
    const c = colour(x / (w - 1));
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(20 + x, 4, 1, 16);
  }
  ctx.fillStyle = "#222"; ctx.font = "12px sans-serif";
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4, x = 20 + (w - 1) * k / 4;
    ctx.fillRect(x, 20, 1, 4);
    ctx.textAlign = k === 0 ? "left" : k === 4 ? "right" : "center";
    ctx.fillText(v.toPrecision(4), x, 36);
  }
  ctx.textAlign = "left"; ctx.fillText("[" + units + "]", w + 30, 16);
}

async function drawPlume(lat, lon) {
  const p = query();
  p.set("lat", lat.toFixed(2)); p.set("lon", lon.toFixed(2)); p.set("members", "true");
  p.set("quantiles", "0.1,0.9");
  let r;
  try { r = await getJSON("v1/point?" + p); }
  catch (e) { $("plume-caption").textContent = "error: " + e.message; return; }
  const cv = $("plume"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  const leads = r.coords.lead_time, mem = r.fields.members.values, mean = r.fields.mean.values;
  const all = mem.flat().filter(Number.isFinite);
  const lo = Math.min(...all), hi = Math.max(...all), span = hi > lo ? hi - lo : 1;
  const L = 50, R = cv.width - 10, T = 10, B = cv.height - 30;
  const X = (h) => L + (R - L) * (h - leads[0]) / Math.max(1e-9, leads[leads.length - 1] - leads[0]);
  const Y = (v) => B - (B - T) * (v - lo) / span;
  ctx.strokeStyle = "#999"; ctx.strokeRect(L, T, R - L, B - T);
  if (r.fields.q10 && r.fields.q90) {  // the 10–90 % band of the members
    const q10 = r.fields.q10.values, q90 = r.fields.q90.values;
    ctx.fillStyle = "rgba(33,145,140,0.18)"; ctx.beginPath();
    leads.forEach((h, k) => { const y = Y(q90[k]); k ? ctx.lineTo(X(h), y) : ctx.moveTo(X(h), y); });
    for (let k = leads.length - 1; k >= 0; k--) ctx.lineTo(X(leads[k]), Y(q10[k]));
    ctx.closePath(); ctx.fill();
  }
  ctx.lineWidth = 1; ctx.strokeStyle = "rgba(33,145,140,0.45)";
  for (let m = 0; m < mem[0].length; m++) {
    ctx.beginPath();
    leads.forEach((h, k) => { const y = Y(mem[k][m]); k ? ctx.lineTo(X(h), y) : ctx.moveTo(X(h), y); });
    ctx.stroke();
  }
  ctx.lineWidth = 2.5; ctx.strokeStyle = "#c0392b"; ctx.beginPath();
  leads.forEach((h, k) => { const y = Y(mean[k]); k ? ctx.lineTo(X(h), y) : ctx.moveTo(X(h), y); });
  ctx.stroke();
  ctx.fillStyle = "#222"; ctx.font = "11px sans-serif"; ctx.textAlign = "right";
  ctx.fillText(hi.toPrecision(4), L - 3, T + 8); ctx.fillText(lo.toPrecision(4), L - 3, B);
  ctx.textAlign = "left"; ctx.fillText("[" + r.units + "]", 2, (T + B) / 2);
  ctx.textAlign = "center"; ctx.fillText("lead (h)", (L + R) / 2, cv.height - 6);
  ctx.fillText(leads[0] + "", L, B + 12); ctx.fillText(leads[leads.length - 1] + "", R - 8, B + 12);
  $("plume-caption").textContent = `${r.variable} [${r.units}] at ${lat.toFixed(2)}°N, ${lon.toFixed(2)}°E: ` +
    `${mem[0].length} members (teal), their 10–90 % band (shaded) and the ensemble mean (red), ` +
    `init ${r.init_time} UTC`;
  chosen = { lat, lon };
  if (grid) paint();
}

$("map").addEventListener("click", (ev) => {
  const cv = $("map"), b = cv.getBoundingClientRect(), f = frame();
  const x = (ev.clientX - b.left) * cv.width / b.width, y = (ev.clientY - b.top) * cv.height / b.height;
  if (x < f.x0 || x > f.x0 + f.w || y < f.y0 || y > f.y0 + f.h) return;  // on the axes, not the map
  drawPlume(f.north - (y - f.y0) * (f.north - f.south) / f.h, f.west + (x - f.x0) * (f.east - f.west) / f.w);
});

async function start() {
  try { info = await getJSON("v1/info"); }
  catch (e) { $("status").textContent = "error: " + e.message; return; }
  $("cycle").textContent = "cycle " + info.latest_init_time + " UTC, " + info.members + " members";
  sizeMap();
  if (info.coastlines) { try { coast = await getJSON("v1/coastlines"); } catch (e) { coast = null; } }
  const names = Object.keys(info.variables).sort();
  fill($("variable"), names, names.map((n) => `${n} [${info.variables[n].units}]`));
  if (names.includes("2m_temperature")) $("variable").value = "2m_temperature";
  fill($("level"), info.levels, info.levels.map((l) => l + " hPa"));
  fill($("lead"), info.lead_hours, info.lead_hours.map((h) => "+" + h + " h"));
  const sync = () => { $("level").disabled = !info.variables[$("variable").value].has_level; };
  sync();
  for (const id of ["variable", "level", "lead", "stat"]) $(id).addEventListener("change", () => { sync(); drawMap(); });
  await drawMap();
  const d = info.domain;  // the first plume: the middle of the domain
  await drawPlume((d.lat_min + d.lat_max) / 2, d.lon_west + d.lon_span / 2);
}
start();
