// velocast page: draws the ensemble mean/spread map on a canvas from /v1/grid and the plume at a
// clicked point from /v1/point. No external libraries. A token may be given as #token=... in the URL.
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

async function drawMap() {
  const p = query();
  p.set("lead", $("lead").value); p.set("stat", $("stat").value);
  $("status").textContent = "loading map…";
  try { grid = await getJSON("v1/grid?" + p); }
  catch (e) { $("status").textContent = "error: " + e.message; return; }
  const cv = $("map"), ctx = cv.getContext("2d");
  const nlat = grid.latitude.length, nlon = grid.longitude.length;
  const img = ctx.createImageData(cv.width, cv.height);
  const lo = grid.min, hi = grid.max, span = hi > lo ? hi - lo : 1;
  for (let y = 0; y < cv.height; y++) {
    const lat = 90 - (y + 0.5) * 180 / cv.height;
    let i = 0, best = 1e9;
    for (let k = 0; k < nlat; k++) { const d = Math.abs(grid.latitude[k] - lat); if (d < best) { best = d; i = k; } }
    for (let x = 0; x < cv.width; x++) {
      const j = Math.floor((x + 0.5) * nlon / cv.width) % nlon;
      const c = colour((grid.values[i][j] - lo) / span), o = 4 * (y * cv.width + x);
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  drawColourbar(lo, hi, grid.units);
  $("status").textContent = `${grid.variable}${grid.level ? " " + grid.level + " hPa" : ""}, ${grid.stat}, ` +
    `lead ${grid.lead_hours} h (valid ${grid.valid_time} UTC), snapshot ${grid.snapshot}`;
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
  ctx.textAlign = "center"; ctx.fillText("lead (h)", (L + R) / 2, cv.height - 6);
  ctx.fillText(leads[0] + "", L, B + 12); ctx.fillText(leads[leads.length - 1] + "", R - 8, B + 12);
  $("plume-caption").textContent = `${r.variable} [${r.units}] at ${lat.toFixed(1)}°, ${lon.toFixed(1)}°: ` +
    `${mem[0].length} members (teal) and the ensemble mean (red), init ${r.init_time} UTC`;
}

$("map").addEventListener("click", (ev) => {
  const cv = $("map"), b = cv.getBoundingClientRect();
  const x = (ev.clientX - b.left) * cv.width / b.width, y = (ev.clientY - b.top) * cv.height / b.height;
  drawPlume(90 - y * 180 / cv.height, x * 360 / cv.width);
});

async function start() {
  try { info = await getJSON("v1/info"); }
  catch (e) { $("status").textContent = "error: " + e.message; return; }
  $("cycle").textContent = "cycle " + info.latest_init_time + " UTC, " + info.members + " members";
  const names = Object.keys(info.variables).sort();
  fill($("variable"), names, names.map((n) => `${n} [${info.variables[n].units}]`));
  if (names.includes("2m_temperature")) $("variable").value = "2m_temperature";
  fill($("level"), info.levels, info.levels.map((l) => l + " hPa"));
  fill($("lead"), info.lead_hours, info.lead_hours.map((h) => "+" + h + " h"));
  const sync = () => { $("level").disabled = !info.variables[$("variable").value].has_level; };
  sync();
  for (const id of ["variable", "level", "lead", "stat"]) $(id).addEventListener("change", () => { sync(); drawMap(); });
  await drawMap();
  await drawPlume(45, 10);
}
start();
