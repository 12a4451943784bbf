/* iiotlab platform UI: loads the lists from the REST API once, then follows the platform's
   server-sent events (GET /api/events): new telemetry goes straight into the charts and a
   change of status, alarms or dead letters refetches that one list. No polling; no build
   step, no CDN. */
(function () {
  "use strict";
  const WINDOW_MS = 5 * 60 * 1000;
  const MAX_CHARTS = 12;
  const state = {
    lang: localStorage.getItem("iiot.lang") || "en",
    token: localStorage.getItem("iiot.token") || "",
    selected: null,        // "tenant/device"
    charts: new Map(),     // metric -> {plot, xs, ys, lastTs, el, valueEl}
    chartDevice: null,
    devices: [],           // the last /api/devices, counted on from telemetry events
    events: null,          // the EventSource
    live: false,
  };
  const t = (key) => (window.IIOT_I18N[state.lang] || {})[key] || key;
  const $ = (selector) => document.querySelector(selector);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
    }
    return node;
  }

  function format(value) {
    if (typeof value !== "number" || Number.isInteger(value)) return String(value);
    return String(Number(value.toPrecision(6)));
  }

  function time(ms) {
    return ms ? new Date(ms).toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB") : "";
  }

  async function api(path, options) {
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const response = await fetch(path, Object.assign({ headers }, options || {}));
    if (response.status === 401) {
      $("#login").hidden = false;
      throw new Error("unauthorized");
    }
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.status === 204 ? null : response.json();
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    $("#lang").textContent = t("lang");
    document.title = t("title");
  }

  const rendered = {};
  function changed(name, data) {
    const signature = JSON.stringify(data) + state.lang + state.selected;
    if (rendered[name] === signature) return false;
    rendered[name] = signature;
    return true;
  }

  function renderDevices(devices) {
    if (!changed("devices", devices)) return;
    const body = $("#devices tbody");
    body.replaceChildren();
    $("#no-devices").hidden = devices.length > 0;
    for (const d of devices) {
      const key = d.tenant + "/" + d.device;
      if (!state.selected) state.selected = key;
      const stateName = d.online ? "online" : "offline";
      const row = el("tr", {
        class: "selectable" + (key === state.selected ? " selected" : ""),
        "data-device": d.device, "data-online": String(d.online),
        onclick: () => { state.selected = key; rendered.devices = null; loadAll(); },
      },
        el("td", {}, d.device), el("td", {}, d.tenant), el("td", {}, d.plant || ""),
        el("td", {}, el("span", { class: "badge " + stateName }, t(stateName))),
        el("td", {}, d.messages), el("td", {}, time(d.last_seen_ms)));
      body.append(row);
    }
  }

  function makeChart(metric, unit) {
    const valueEl = el("span", { class: "value" });
    const holder = el("div", { class: "plot" });
    const box = el("div", { class: "chart", "data-metric": metric, "data-points": "0" },
      el("h3", {}, metric + (unit ? " [" + unit + "]" : ""), valueEl), holder);
    $("#charts").append(box);
    const width = Math.max(280, (holder.clientWidth || 380) - 4);
    const plot = new uPlot({
      width, height: 170,
      scales: { x: { time: true, range: (u, min, max) => {
        const now = Date.now() / 1000;  // at least the last minute, up to the window
        return [Math.min(min ?? now - 60, now - 60), Math.max(max ?? now, now)];
      } } },
      series: [{}, { label: metric, stroke: "#0b6bcb", width: 1.5, fill: "rgba(11,107,203,.08)" }],
      legend: { show: false },
      axes: [{}, { size: 64 }],
    }, [[], []], holder);
    return { plot, xs: [], ys: [], lastTs: 0, el: box, valueEl };
  }

  function resetCharts(deviceKey) {
    for (const chart of state.charts.values()) chart.plot.destroy();
    state.charts.clear();
    $("#charts").replaceChildren();
    state.chartDevice = deviceKey;
    $("#chart-device").textContent = deviceKey ? "· " + deviceKey : "";
  }

  function push(chart, ts, value) {
    if (ts <= chart.lastTs) return;
    chart.lastTs = ts;
    chart.xs.push(ts / 1000);
    chart.ys.push(typeof value === "boolean" ? Number(value) : value);
    const cutoff = (Date.now() - WINDOW_MS) / 1000;
    while (chart.xs.length && chart.xs[0] < cutoff) { chart.xs.shift(); chart.ys.shift(); }
    chart.valueEl.textContent = format(value);
    chart.el.dataset.points = String(chart.xs.length);
    chart.el.dataset.lastTs = String(ts);
  }

  async function loadCharts(device) {
    const key = device.tenant + "/" + device.device;
    if (state.chartDevice === key) return;
    const base = "/api/devices/" + encodeURIComponent(device.tenant) + "/" +
      encodeURIComponent(device.device);
    const latest = await api(base + "/latest");
    resetCharts(key);
    const numeric = Object.keys(latest).filter((m) => typeof latest[m].value === "number");
    for (const metric of numeric.slice(0, MAX_CHARTS)) {
      const chart = makeChart(metric, latest[metric].unit);
      state.charts.set(metric, chart);
      const series = await api(base + "/series?metric=" + encodeURIComponent(metric) +
        "&start=" + (Date.now() - WINDOW_MS));
      for (const [ts, value] of series.points) push(chart, ts, value);
      push(chart, latest[metric].ts, latest[metric].value);
    }
    if (!numeric.length) $("#charts").append(el("p", { class: "muted" }, t("noNumeric")));
    draw();
  }

  let drawing = false;
  function draw() {  // at most once a frame, however many events came in
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      for (const chart of state.charts.values()) {
        // sample-and-hold: a metric sent only on change stays at its last value until now
        const held = chart.xs.length ? [chart.xs.concat(Date.now() / 1000),
          chart.ys.concat(chart.ys[chart.ys.length - 1])] : [[], []];
        chart.plot.setData(held);
      }
    });
  }

  function onTelemetry(message) {
    const key = message.tenant + "/" + message.device;
    const device = state.devices.find((d) => d.tenant + "/" + d.device === key);
    if (!device) { soon("devices", loadDevices); return; }
    device.messages += 1;
    device.last_seen_ms = Date.now();
    soon("devices", () => renderDevices(state.devices), 1000);
    if (state.chartDevice !== key) {
      if (state.selected === key) soon("charts", () => loadCharts(device));
      return;
    }
    for (const [metric, value] of Object.entries(message.metrics)) {
      const chart = state.charts.get(metric);
      if (chart) push(chart, message.ts, value);
      else if (typeof value === "number" && state.charts.size < MAX_CHARTS) {
        state.chartDevice = null;  // a new numeric metric: build the charts again
        soon("charts", () => loadCharts(device));
      }
    }
    draw();
  }

  function renderAlarms(alarms) {
    if (!changed("alarms", alarms)) return;
    const body = $("#alarms tbody");
    body.replaceChildren();
    $("#no-alarms").hidden = alarms.length > 0;
    for (const a of alarms.slice(0, 50)) {
      const action = a.state === "active"
        ? el("button", { type: "button", "data-alarm-id": a.id, onclick: () => acknowledge(a.id) },
          t("acknowledge"))
        : "";
      body.append(el("tr", { "data-alarm": a.id, "data-state": a.state },
        el("td", {}, time(a.raised_ms)), el("td", {}, a.device), el("td", {}, a.rule),
        el("td", {}, a.message),
        el("td", {}, el("span", { class: "badge " + a.state }, t(a.state))),
        el("td", {}, action)));
    }
  }

  async function acknowledge(id) {
    await api("/api/alarms/" + encodeURIComponent(id) + "/acknowledge", { method: "POST" });
    await loadAlarms();
  }

  function renderDeadLetters(letters) {
    if (!changed("dead", letters)) return;
    const body = $("#dead-letters tbody");
    body.replaceChildren();
    $("#no-dead").hidden = letters.length > 0;
    for (const d of letters) {
      body.append(el("tr", { "data-dead-letter": d.id },
        el("td", {}, time(d.received_ms)), el("td", {}, d.topic), el("td", {}, d.reason),
        el("td", {}, el("code", { class: "payload" }, d.preview))));
    }
  }

  const timers = {};
  function soon(name, work, delay) {  // coalesce a burst of events into one call
    if (timers[name]) return;
    timers[name] = setTimeout(() => {
      timers[name] = null;
      Promise.resolve(work()).catch(showError);
    }, delay ?? 200);
  }

  function showError(error) {
    $("#status").textContent = String(error.message || error);
  }

  async function loadDevices() {
    state.devices = await api("/api/devices");
    renderDevices(state.devices);
    const device = state.devices.find((d) => d.tenant + "/" + d.device === state.selected);
    if (device) await loadCharts(device);
  }
  async function loadAlarms() { renderAlarms(await api("/api/alarms")); }
  async function loadDeadLetters() {
    renderDeadLetters((await api("/api/dead-letters?limit=20")).dead_letters);
  }

  let loading = null;
  function loadAll() {  // once at the start, after a reconnect or a resync
    if (!loading) {
      loading = Promise.all([loadDevices(), loadAlarms(), loadDeadLetters()])
        .then(() => { $("#status").textContent = t(state.live ? "live" : "updated") + " " + time(Date.now()); })
        .catch(showError)
        .finally(() => { loading = null; });
    }
    return loading;
  }

  function follow() {
    if (state.events) state.events.close();
    const query = state.token ? "?token=" + encodeURIComponent(state.token) : "";
    const events = state.events = new EventSource("/api/events" + query);
    const on = (kind, handle) => events.addEventListener(kind, (e) => handle(JSON.parse(e.data)));
    events.addEventListener("open", () => { state.live = true; loadAll(); });
    events.addEventListener("error", () => {
      state.live = false;
      $("#status").textContent = t("reconnecting");
      if (events.readyState === EventSource.CLOSED) identify();  // refused: a bad token?
    });
    on("telemetry", onTelemetry);
    on("status", () => soon("devices", loadDevices));
    on("alarms", () => soon("alarms", loadAlarms));
    on("dead_letters", () => soon("dead", loadDeadLetters));
    on("resync", () => loadAll());
  }

  async function identify() {
    try {
      const me = await api("/api/me");
      $("#login").hidden = true;
      $("#identity").textContent = me.auth_enabled
        ? t("role") + ": " + me.role + (me.tenant ? " · " + me.tenant : "") : "";
      return true;
    } catch (error) {
      return false;
    }
  }

  $("#lang").addEventListener("click", () => {
    state.lang = state.lang === "en" ? "zh" : "en";
    localStorage.setItem("iiot.lang", state.lang);
    applyLanguage();
    state.chartDevice = null;
    for (const key of Object.keys(rendered)) rendered[key] = null;
    loadAll();
  });
  $("#save-token").addEventListener("click", async () => {
    state.token = $("#token").value.trim();
    localStorage.setItem("iiot.token", state.token);
    $("#login-error").textContent = (await identify()) ? "" : t("badToken");
    follow();
  });

  applyLanguage();
  identify().then(follow);
  setInterval(draw, 1000);  // held lines reach "now"; a redraw, not a request
})();
