// SERECA water dashboard: draws the network from its coordinates, joins the
// secure bus through the service's WebSocket bridge (Vert.x bridge frames),
// and shows live sensor values and alerts. No CDN: plotly.js is served by
// the dashboard service from the plotly wheel.
"use strict";

// The dashboard token comes in the page's own URL (/?token=...), as the demo prints it.
const TOKEN = new URLSearchParams(location.search).get("token") || "";

const state = {
  sensors: {},        // id -> {x, y, kind, value}
  sensorOrder: [],
  chartSensors: [],
  readings: 0,
  alerts: new Map(),  // alert id -> alert
  dirty: false,
};

function $(id) { return document.getElementById(id); }

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store", headers: { Authorization: `Bearer ${TOKEN}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function drawNetwork(net) {
  const px = [], py = [];
  for (const link of net.links) {
    for (const [x, y] of link.path) { px.push(x); py.push(y); }
    px.push(null); py.push(null);
  }
  for (const s of net.sensors) {
    state.sensors[s.id] = { x: s.x, y: s.y, kind: s.kind, value: null };
    state.sensorOrder.push(s.id);
  }
  state.chartSensors = net.sensors.filter(s => s.kind === "pressure").slice(0, 4).map(s => s.id);
  const sensorTrace = {
    name: "sensors", type: "scatter", mode: "markers",
    x: state.sensorOrder.map(id => state.sensors[id].x),
    y: state.sensorOrder.map(id => state.sensors[id].y),
    text: state.sensorOrder, hoverinfo: "text",
    marker: { size: 9, color: state.sensorOrder.map(() => 0), colorscale: "Viridis", showscale: true,
              colorbar: { title: "value", thickness: 10 } },
  };
  const traces = [
    { name: "pipes", type: "scatter", mode: "lines", x: px, y: py, hoverinfo: "skip",
      line: { color: "#8aa", width: 1 } },
    sensorTrace,
    { name: "alerts", type: "scatter", mode: "markers+text", x: [], y: [], text: [], textposition: "top center",
      marker: { size: 18, symbol: "x", color: "#d00" } },
  ];
  Plotly.newPlot("map", traces, {
    margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: false,
    xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
  }, { displaylogo: false, responsive: true });
  Plotly.newPlot("chart", state.chartSensors.map(id => ({ name: id, x: [], y: [], mode: "lines" })), {
    margin: { l: 40, r: 10, t: 10, b: 30 }, legend: { orientation: "h" },
  }, { displaylogo: false, responsive: true });
}

function onReadings(body) {
  const values = body.values || {};
  let n = 0;
  for (const [id, v] of Object.entries(values)) {
    if (state.sensors[id]) { state.sensors[id].value = v; }
    n += 1;
  }
  state.readings += n;
  $("sim-time").textContent = formatSimTime(body.t);
  const xs = [], ys = [], idx = [];
  state.chartSensors.forEach((id, i) => {
    if (id in values) { xs.push([body.t / 3600]); ys.push([values[id]]); idx.push(i); }
  });
  if (idx.length) Plotly.extendTraces("chart", { x: xs, y: ys }, idx, 500);
  state.dirty = true;
}

function onAlert(alert) {
  state.alerts.set(alert.id, alert);
  renderAlerts();
}

function renderAlerts() {
  const alerts = [...state.alerts.values()].sort((a, b) => b.time - a.time);
  const tbody = $("alerts").querySelector("tbody");
  tbody.replaceChildren(...alerts.map(a => {
    const tr = document.createElement("tr");
    tr.className = a.level || "";
    tr.dataset.pipe = a.pipe;
    tr.dataset.node = a.node;
    tr.dataset.count = String(a.count || 1);
    for (const v of [formatSimTime(a.time), a.pipe, a.level, Number(a.score).toFixed(1)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    return tr;
  }));
  $("alert-count").textContent = String(alerts.length);
  const placed = alerts.filter(a => a.x !== null && a.x !== undefined);
  Plotly.restyle("map", { x: [placed.map(a => a.x)], y: [placed.map(a => a.y)], text: [placed.map(a => a.pipe)] }, [2]);
}

function renderSensors() {
  if (!state.dirty) return;
  state.dirty = false;
  $("reading-count").textContent = String(state.readings);
  const colors = state.sensorOrder.map(id => state.sensors[id].value ?? 0);
  Plotly.restyle("map", { "marker.color": [colors] }, [1]);
  const tbody = $("sensors").querySelector("tbody");
  tbody.replaceChildren(...state.sensorOrder.map(id => {
    const tr = document.createElement("tr");
    tr.dataset.sensor = id;
    const v = state.sensors[id].value;
    for (const t of [id, v === null ? "-" : Number(v).toFixed(2)]) {
      const td = document.createElement("td"); td.textContent = t; tr.appendChild(td);
    }
    return tr;
  }));
}

function formatSimTime(t) {
  if (t === undefined || t === null) return "-";
  const d = Math.floor(t / 86400), h = Math.floor((t % 86400) / 3600), m = Math.floor((t % 3600) / 60);
  return `d${d} ${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

function connectBus(info) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}${info.bridge_path}?token=${encodeURIComponent(TOKEN)}`;
  const ws = new WebSocket(url);
  const conn = $("conn");
  ws.onopen = () => {
    conn.textContent = "bus: connected"; conn.className = "pill on";
    for (const address of info.addresses) ws.send(JSON.stringify({ type: "register", address }));
  };
  ws.onmessage = (ev) => {
    const frame = JSON.parse(ev.data);
    if (frame.type === "err") { console.error("bridge error", frame); return; }
    if (frame.type !== "rec") return;
    if (frame.address === info.readings_address) onReadings(frame.body);
    else if (frame.address === info.alerts_address) onAlert(frame.body);
  };
  ws.onclose = () => {
    conn.textContent = "bus: reconnecting"; conn.className = "pill off";
    setTimeout(() => connectBus(info), 1000);
  };
}

async function main() {
  const info = await getJSON("api/info");
  $("network-name").textContent = info.network;
  const tee = $("tee");
  tee.textContent = `TEE: ${info.tee}${info.simulated ? " (SIMULATED)" : ""}`;
  document.body.dataset.simulated = String(info.simulated);
  if (info.simulated) { $("sim-banner").classList.remove("hidden"); tee.classList.add("sim"); }
  drawNetwork(await getJSON("api/network"));
  for (const a of (await getJSON("api/alerts")).alerts) onAlert(a);
  connectBus(info);
  setInterval(renderSensors, 500);
}

main().catch(err => {
  const b = $("sim-banner");
  b.textContent = `dashboard failed to start: ${err.message}`;
  b.classList.remove("hidden");
});
