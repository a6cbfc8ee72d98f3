// The page's behaviour: no framework, no external resource; every request goes to this server.
"use strict";

const $ = (id) => document.getElementById(id);

function setText(id, text) {
  $(id).textContent = text;
}

function ms(value) {
  return value === null || value === undefined ? "n/a" : `${Number(value).toFixed(1)} ms`;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refreshServing() {
  try {
    const m = await getJson("models");
    setText("host-profile", m.hardware_profile);
    setText("catalog-profile", m.exact_profile_match ? `${m.catalog_profile} (exact match)` : `${m.catalog_profile} (calibrated)`);
    setText("sla", m.sla_ms === null ? "none (the best entry serves)" : `${m.sla_ms} ms${m.sla_violation ? " (no entry meets it here)" : ""}`);
    setText("active-entry", m.active);
    const selected = (m.entries || []).find((e) => e.id === m.active);
    const p95 = selected && selected.host_latency_ms ? selected.host_latency_ms.p95 : null;
    setText("active-p95", p95 === null ? "" : `(p95 ${ms(p95)} on this host, reference workload)`);
    const live = m.recent || {};
    setText("live-p95", live.requests ? `${ms(live.p95_ms)} over the last ${live.requests} requests (this worker)` : "no requests yet");
    setText("runtime", `${m.backend}, ${m.threads} thread${m.threads === 1 ? "" : "s"}, ${m.workers} worker${m.workers === 1 ? "" : "s"}`);
  } catch (err) {
    setText("live-p95", `unavailable (${err.message})`);
  }
}

async function translate(event) {
  event.preventDefault();
  const status = $("status");
  const body = { q: $("source").value, source: "en", target: "de", format: "text",
                 alternatives: Number($("alternatives").value) };
  const key = $("api-key").value.trim();
  if (key) body.api_key = key;
  $("submit").disabled = true;
  status.className = "";
  status.textContent = "translating\u2026";
  try {
    const response = await fetch("translate", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const reply = await response.json();
    if (!response.ok) throw new Error(reply.error || `HTTP ${response.status}`);
    $("target").textContent = reply.translatedText;
    const list = $("alternatives-list");
    list.replaceChildren(...(reply.alternatives || []).map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }));
    setText("answer-model", reply.model);
    setText("answer-ms", Number(reply.latency_ms).toFixed(1));
    status.textContent = "done";
  } catch (err) {
    status.className = "error";
    status.textContent = err.message;
  } finally {
    $("submit").disabled = false;
    refreshServing();
  }
}

async function start() {
  $("form").addEventListener("submit", translate);
  try {
    const settings = await getJson("frontend/settings");
    $("key-row").hidden = !settings.keyRequired;
    $("source").maxLength = settings.charLimit;
  } catch (err) {
    setText("status", `settings unavailable (${err.message})`);
  }
  refreshServing();
  setInterval(refreshServing, 5000);
}

document.addEventListener("DOMContentLoaded", start);
