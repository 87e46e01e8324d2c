// The technician page: asks for the token once (sessionStorage, never a cookie), then
// polls the local API. Everything that came from devices is inserted with textContent.
"use strict";

const TOKEN_KEY = "schulwart.token";
const REFRESH_MS = 5000;
let timer = null;
let deviceQuery = "";

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers["Authorization"] = "Bearer " + token();
  if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
  const response = await fetch(path, opts);
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    logout("Token abgelehnt: " + (body.error || response.status));
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}

function when(iso) {
  if (!iso) return "nie";
  const date = new Date(iso);
  if (isNaN(date.getTime())) return String(iso);
  return date.toLocaleString("de-DE", { dateStyle: "short", timeStyle: "short" });
}

// "10:42" today, else "03.12.26, 10:42": when the hotline did something, in the reader's time zone.
function clockTime(iso) {
  const date = new Date(iso);
  if (isNaN(date.getTime())) return String(iso);
  const time = date.toLocaleTimeString("de-DE", { hour: "2-digit", minute: "2-digit" });
  return date.toDateString() === new Date().toDateString() ? time : date.toLocaleDateString("de-DE", { dateStyle: "short" }) + ", " + time;
}

function showLogin(message) {
  $("login").hidden = false;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  showLogin(message);
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function renderStatus(status) {
  const school = status.school || {};
  $("school-name").textContent = school.name || school.id || "Schulwart";
  const meta = [school.carrier, "angemeldet: " + (status.you ? status.you.name : "?")].filter(Boolean);
  $("school-meta").textContent = meta.join(" · ");
  const outbox = status.outbox || {};
  const sync = status.last_sync_at || (status.sync && status.sync.last_success_at);
  const banner = $("banner");
  banner.textContent = "Zentrale zuletzt erreicht: " + when(sync) +
    (outbox.depth ? " · " + outbox.depth + (outbox.depth === 1 ? " Ereignis wartet" : " Ereignisse warten") + " auf Übertragung" : "");
  banner.className = "banner" + (outbox.depth > 0 ? " warn" : "");
  const summary = $("summary");
  clear(summary);
  const counts = status.counts || {};
  for (const [label, value] of [
    ["Offene Störungen", status.open_incidents],
    ["Geräte", counts.devices],
    ["Access Points", counts.aps],
    ["Ladeschränke", counts.cabinets],
  ]) {
    if (value === undefined || value === null) continue;
    const card = el("div", null, "card");
    card.appendChild(el("div", value, "value"));
    card.appendChild(el("div", label, "label"));
    summary.appendChild(card);
  }
  renderRows($("aps"), listOf(status.snapshot, "wlan", ["aps", "access_points"]),
    (ap) => [ap.name || ap.id, term(ap.state), ap.clients !== undefined ? ap.clients : ap.num_sta, details(ap, ["name", "id", "state", "clients", "num_sta"])]);
  renderRows($("cabinets"), listOf(status.snapshot, "cabinets", ["cabinets"]),
    (c) => [c.name || c.id, cabinetState(c), c.power_w !== undefined && c.power_w !== null ? c.power_w + " W" : "–",
      details(c, ["name", "id", "power_w", "error", "errors", "ok", "in_window", "switch_on"])]);
}

function cabinetState(c) {
  if (c.error) return "Fehler: " + c.error;
  if (c.switch_on === false) return "ausgeschaltet";
  return c.in_window ? "im Ladefenster" : "außerhalb des Ladefensters";
}

// A section's list may be an array or an object keyed by id (cabinets are).
function listOf(snapshot, section, keys) {
  const value = snapshot ? snapshot[section] : null;
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    for (const key of keys) {
      const inner = value[key];
      if (Array.isArray(inner)) return inner;
      if (inner && typeof inner === "object") return Object.entries(inner).map(([id, item]) => Object.assign({ id: id }, item));
    }
  }
  return [];
}

// German words for what the agent reports; keys without a word here are not shown (no raw key dumps).
const SEVERITY = { critical: "kritisch", warning: "Warnung", info: "Hinweis" };
const CATEGORY = { wlan: "WLAN", cabinet: "Ladeschrank", device: "Gerät", host: "Schulserver", agent: "Agent" };
// States and device classes as the controller and discovery report them; an unknown one is shown as it came.
const TERMS = {
  connected: "verbunden", disconnected: "getrennt", pending: "wartet auf Übernahme", upgrading: "Update läuft",
  heartbeat_missed: "Lebenszeichen fehlt", present: "vorhanden", absent: "nicht da", missing: "fehlt", lost: "verschwunden",
  tablet: "Tablet", airplay: "AirPlay-Empfänger", printer: "Drucker", meter: "Strommesser",
  chromecast: "Chromecast", nas: "Netzwerkspeicher", ap: "Access Point", other: "Sonstiges",
};
function term(value) {
  return value === null || value === undefined ? "" : TERMS[value] || String(value);
}
const LABELS = {
  model: ["Modell", ""], satisfaction: ["Zufriedenheit", " %"], uptime_s: ["Laufzeit", "duration"],
  temperature_c: ["Temperatur", " °C"], energy_wh: ["Energie", " Wh"], room: ["Raum", ""], slots: ["Plätze", ""],
  meter: ["Messgerät", ""],
};

function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return s + " Sek.";
  if (s < 3600) return Math.floor(s / 60) + " Min.";
  if (s < 2 * 86400) return Math.floor(s / 3600) + " Std.";
  return Math.floor(s / 86400) + " Tage";
}

function details(obj, skip) {
  return Object.keys(obj).filter((k) => !skip.includes(k) && LABELS[k] && obj[k] !== null && typeof obj[k] !== "object")
    .map((k) => {
      const [label, unit] = LABELS[k];
      const raw = obj[k];
      // Measured values to one decimal (38,08 °C reads as noise); text as it came.
      const shown = typeof raw === "number" && !Number.isInteger(raw) ? raw.toFixed(1) : String(raw);
      const value = unit === "duration" ? duration(raw) : shown.replace(".", ",") + unit;
      return label + ": " + value;
    }).join(", ");
}

// The title in German from the shared catalogue (the agent renders it), else the English title.
function titleOf(inc) {
  return (inc.titles && inc.titles.de) || inc.title;
}

function renderRows(table, items, columns) {
  const body = table.tBodies[0];
  clear(body);
  if (!items.length) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = table.tHead.rows[0].cells.length;
    cell.textContent = "keine Daten";
    cell.className = "muted";
    return;
  }
  for (const item of items) {
    const row = body.insertRow();
    for (const value of columns(item)) row.insertCell().textContent = value === undefined || value === null ? "" : String(value);
  }
}

function renderIncidents(data) {
  const list = $("incidents");
  clear(list);
  const items = data.incidents || [];
  $("incident-count").textContent = "(" + items.length + ")";
  $("no-incidents").hidden = items.length > 0;
  for (const inc of items) {
    const li = el("li", null, "incident sev-" + inc.severity);
    li.dataset.incidentId = inc.id;
    const head = el("div", null, "head");
    head.appendChild(el("span", SEVERITY[inc.severity] || inc.severity, "badge"));
    head.appendChild(el("strong", titleOf(inc), "title"));
    if (inc.subject) head.appendChild(el("span", inc.subject, "subject"));
    li.appendChild(head);
    const meta = "seit " + when(inc.opened_at) + " · " + (CATEGORY[inc.category] || inc.category) + (inc.flap_count ? " · " + inc.flap_count + "× geflattert" : "");
    li.appendChild(el("div", meta, "meta"));
    if (inc.acknowledged_by) {
      li.appendChild(el("div", "Quittiert von " + inc.acknowledged_by + " am " + when(inc.acknowledged_at), "ack"));
    }
    for (const note of inc.notes || []) {
      li.appendChild(el("div", (note.by || "?") + " (" + when(note.at) + "): " + note.text, "note"));
    }
    // What central staff did, carried to this school in central's signed configuration.
    for (const step of inc.central || []) {
      const text = step.action === "acknowledged"
        ? "quittiert von der Hotline, " + clockTime(step.at) + " (" + step.by + ")"
        : "Hotline, " + clockTime(step.at) + " (" + step.by + "): " + step.text;
      li.appendChild(el("div", text, step.action === "acknowledged" ? "ack central" : "note central"));
    }
    const actions = el("form", null, "actions");
    const input = el("input");
    input.type = "text";
    input.placeholder = "Notiz";
    input.maxLength = 2000;
    input.className = "note-input";
    actions.appendChild(input);
    if (!inc.acknowledged_by) {
      const ack = el("button", "Quittieren", "ack-button");
      ack.type = "button";
      ack.addEventListener("click", () => act(inc.id, "ack", { note: input.value.trim() || undefined }));
      actions.appendChild(ack);
    }
    const add = el("button", "Notiz speichern", "note-button");
    add.type = "submit";
    actions.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.value.trim()) act(inc.id, "notes", { text: input.value.trim() });
    });
    actions.appendChild(add);
    li.appendChild(actions);
    list.appendChild(li);
  }
}

function renderDevices(data) {
  const items = data.devices || [];
  $("device-count").textContent = "(" + data.total + ")";
  const classes = {};
  for (const d of items) classes[d.class] = (classes[d.class] || 0) + 1;
  const chips = $("device-classes");
  clear(chips);
  for (const [name, count] of Object.entries(classes).sort()) chips.appendChild(el("span", term(name) + ": " + count, "chip"));
  renderRows($("devices"), items, (d) => [d.name, term(d.class), d.model, term(d.state), when(d.last_seen)]);
}

async function act(id, what, body) {
  try {
    await api("/api/v1/incidents/" + encodeURIComponent(id) + "/" + what, { method: "POST", body: JSON.stringify(body) });
    await refresh();
  } catch (err) {
    $("banner").textContent = "Aktion fehlgeschlagen: " + err.message;
  }
}

async function refresh() {
  try {
    const [status, incidents, devices] = await Promise.all([
      api("/api/v1/status"),
      api("/api/v1/incidents?state=open"),
      api("/api/v1/devices?limit=1000" + (deviceQuery ? "&q=" + encodeURIComponent(deviceQuery) : "")),
    ]);
    renderStatus(status);
    renderIncidents(incidents);
    renderDevices(devices);
    $("updated").textContent = "Aktualisiert " + new Date().toLocaleTimeString("de-DE");
    document.body.dataset.loaded = "1";
  } catch (err) {
    if (err.message !== "unauthorized") $("updated").textContent = "Keine Verbindung zum Agenten: " + err.message;
  }
}

function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  start();
});
$("logout").addEventListener("click", () => logout(""));
$("device-filter").addEventListener("input", (event) => { deviceQuery = event.target.value.trim(); refresh(); });

if (token()) start(); else showLogin("");
