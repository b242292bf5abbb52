// edged status page: refreshes the page's numbers, draws the charts, asks
// before destructive actions, and runs the topic browser. Plain JavaScript,
// no build step.
"use strict";

function drawCharts() {
  const charts = document.querySelectorAll("[data-chart]");
  if (!charts.length) return;
  fetch("/api/v1/history", {credentials: "same-origin"}).then(r => r.json()).then(points => {
    charts.forEach(el => drawChart(el, points, el.dataset.chart));
  }).catch(() => {});
}

function drawChart(el, points, key) {
  const w = 300, h = 80, pad = 12;
  const vals = points.map(p => p.seconds > 0 ? p[key] * 60 / p.seconds : 0);
  const top = Math.max(1, ...vals);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (vals.length > 1) {
    const x = i => (i / (vals.length - 1)) * w;
    const y = v => h - 2 - (v / top) * (h - pad - 2);
    let d = vals.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
    const area = document.createElementNS(ns, "path");
    area.setAttribute("class", "area");
    area.setAttribute("d", `${d}L${w},${h}L0,${h}Z`);
    const line = document.createElementNS(ns, "path");
    line.setAttribute("d", d);
    svg.append(area, line);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  const fmt = key.endsWith("bytes") ? humanBytes : v => String(Math.round(v));
  label.textContent = vals.length > 1 ? `max ${fmt(top)}/min` : "collecting samples…";
  svg.append(label);
  el.replaceChildren(svg);
  el.dataset.points = vals.length;
}

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${Math.round(n)} B`;
}

// refresh reloads the page's main part every few seconds, unless the user
// is typing in it.
function refresh() {
  const main = document.getElementById("main");
  const secs = Number(main && main.dataset.refresh);
  if (!secs) return;
  setInterval(() => {
    if (document.hidden || main.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    fetch(location.href, {credentials: "same-origin"}).then(r => r.ok ? r.text() : Promise.reject(r.status)).then(html => {
      const next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
      if (!next) return;
      main.innerHTML = next.innerHTML;
      main.dataset.refreshed = String(Number(main.dataset.refreshed || 0) + 1);
      drawCharts();
    }).catch(() => {});
  }, secs * 1000);
}

document.addEventListener("submit", ev => {
  const f = ev.target;
  if (f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
});

function topicBrowser() {
  const form = document.getElementById("watch-form");
  if (!form) return;
  const tbody = document.querySelector("#messages tbody");
  const state = document.getElementById("watch-state");
  const stopBtn = document.getElementById("stop");
  let es = null, count = 0, dropped = 0;
  const stop = () => { if (es) { es.close(); es = null; } stopBtn.disabled = true; };
  const show = () => { state.textContent = `${count} messages` + (dropped ? `, ${dropped} dropped` : ""); };
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    stop();
    const filter = document.getElementById("filter").value;
    history.replaceState(null, "", "/topics?filter=" + encodeURIComponent(filter));
    tbody.replaceChildren();
    count = 0; dropped = 0;
    es = new EventSource("/api/v1/watch?filter=" + encodeURIComponent(filter));
    stopBtn.disabled = false;
    state.textContent = "connecting…";
    es.addEventListener("open", () => { state.textContent = "watching " + filter; state.dataset.open = "1"; });
    es.addEventListener("dropped", e => { dropped += Number(e.data); show(); });
    es.onmessage = e => {
      const m = JSON.parse(e.data);
      dropped += m.dropped || 0;
      const tr = document.createElement("tr");
      const td = t => { const c = document.createElement("td"); c.textContent = t; tr.append(c); };
      td(new Date(m.time).toLocaleTimeString());
      td(m.topic);
      td(String(m.qos) + (m.retain ? " r" : ""));
      td((m.binary ? "0x" : "") + m.payload + (m.truncated ? ` … (${m.size} bytes)` : ""));
      tbody.prepend(tr);
      while (tbody.children.length > 200) tbody.lastChild.remove();
      count++;
      show();
    };
    es.onerror = () => { if (es && es.readyState === EventSource.CLOSED) { state.textContent = "refused or closed"; stop(); } };
  });
  stopBtn.addEventListener("click", () => { stop(); state.textContent = "stopped"; });
  if (document.getElementById("filter").value) form.requestSubmit();
}

drawCharts();
refresh();
topicBrowser();
