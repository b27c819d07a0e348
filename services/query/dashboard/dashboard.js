// questlog live dashboard: polls the query service's public REST GET endpoints and
// renders them. Every API value reaches the page through textContent (or a canvas),
// never as HTML: event fields are written by whoever sends events.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const REFRESH_S = clamp(Number(params.get("refresh") || 2), 1, 60);
  const RECENT_PER_TYPE = 10;
  const RECENT_SHOWN = 15;
  const QUARANTINE = "quarantine";
  // envelope and lake columns; every other column of an event table is a property
  const ENVELOPE = new Set([
    "event_id", "event_type", "event_time", "received_at", "player_id", "session_id", "host",
    "user_agent", "accept", "client_ip_hash", "schema_version", "kafka_partition",
    "kafka_offset", "event_date",
  ]);
  const number = new Intl.NumberFormat("en-US");
  const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

  let previousRows = null; // {at: ms, rows: {table: n}} of the last refresh, for rates
  let refreshes = 0;
  let perMinuteChart = null;
  let swordsChart = null;

  function clamp(value, low, high) {
    return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : low;
  }

  const $ = (id) => document.getElementById(id);

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // Replace a table body's rows; each row is [key, [[text, className], ...]].
  function fillTable(id, rows, empty) {
    const body = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const [key, cells] of rows) {
      const tr = document.createElement("tr");
      tr.dataset.key = key;
      for (const [text, className] of cells) cell(tr, text, className);
      fresh.appendChild(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, empty);
      td.colSpan = $(id).tHead.rows[0].cells.length;
      fresh.appendChild(tr);
    }
    body.replaceWith(fresh);
  }

  const show = (value) => (value === null || value === undefined ? "—" : String(value));
  const count = (value) => (typeof value === "number" ? number.format(value) : show(value));
  const seconds = (value) => (typeof value === "number" ? `${decimal.format(value)} s` : "—");

  class CallError extends Error {}

  async function getJson(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    } catch (err) {
      throw new CallError(`GET ${path}: ${err.message}`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const error = body && body.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
      throw new CallError(`GET ${path}: ${response.status} ${error}`);
    }
    if (body === null) throw new CallError(`GET ${path}: the answer is not JSON`);
    return body;
  }

  // -- panels ---------------------------------------------------------------------------

  function renderTables(body, now) {
    const rows = {};
    for (const t of body.tables) rows[t.name] = t.rows;
    const elapsed = previousRows ? (now - previousRows.at) / 1000 : 0;
    fillTable("tables", body.tables.map((t) => {
      let rate = "— (needs two refreshes)";
      if (previousRows && elapsed > 0 && t.name in previousRows.rows) {
        const delta = t.rows - previousRows.rows[t.name];
        rate = delta >= 0 ? decimal.format(delta / elapsed) : "— (table shrank)";
      }
      return [t.name, [[t.name], [count(t.rows), "num"], [rate, "num"],
        [seconds(t.freshness_seconds), "num"], [show(t.version), "num"]]];
    }), "no tables");
    previousRows = { at: now, rows };
    return body.tables.map((t) => t.name).filter((name) => name !== QUARANTINE);
  }

  function renderPipeline(body) {
    const x = body.extractor || {};
    if (!x.available) {
      for (const id of ["offsets-behind", "progress-age", "rows-per-second"]) $(id).textContent = "unknown";
      $("extractor-state").textContent = `unknown: ${x.error || "the extractor's metrics are not configured"}`;
      $("pipeline").dataset.available = "false";
      return;
    }
    $("offsets-behind").textContent = count(x.offsets_behind_latest);
    $("progress-age").textContent = seconds(x.last_progress_age_seconds);
    $("rows-per-second").textContent = typeof x.processed_rows_per_second === "number"
      ? decimal.format(x.processed_rows_per_second) : "—";
    $("extractor-state").textContent = `reporting (last batch ${show(x.last_batch_id)})`;
    $("pipeline").dataset.available = "true";
  }

  function renderPerMinute(body) {
    if (typeof Chart === "undefined") return;
    // every minute of the window, so a quiet minute is a 0 and not a gap
    const MINUTE = 60_000;
    const first = Math.floor(Date.parse(body.since) / MINUTE) * MINUTE;
    const last = Math.floor((Date.parse(body.until) - 1) / MINUTE) * MINUTE;
    const minutes = [];
    for (let t = first; t <= last && minutes.length <= 10_080; t += MINUTE) minutes.push(t);
    const index = new Map(minutes.map((t, i) => [t, i]));
    const types = [...new Set(body.rows.map((r) => r.event_type))].sort();
    const datasets = types.map((type) => {
      const data = new Array(minutes.length).fill(0);
      for (const r of body.rows) {
        const i = index.get(Date.parse(r.minute));
        if (r.event_type === type && i !== undefined) data[i] = r.events;
      }
      return { label: type, data, cubicInterpolationMode: "monotone", pointRadius: 0 };
    });
    const labels = minutes.map((t) => new Date(t).toISOString().slice(11, 16));
    if (!perMinuteChart) {
      perMinuteChart = new Chart($("per-minute-chart"), {
        type: "line",
        data: { labels, datasets },
        options: { animation: false, maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, title: { display: true, text: "events / minute" } },
            x: { title: { display: true, text: "minute (UTC)" } } } },
      });
    } else {
      perMinuteChart.data.labels = labels;
      perMinuteChart.data.datasets = datasets;
      perMinuteChart.update();
    }
  }

  function renderSwords(body) {
    const rows = body.rows.slice(0, 10);
    fillTable("swords", rows.map((r) => [show(r.sword_type), [[show(r.sword_type)], [count(r.count), "num"]]]),
      "no purchases yet");
    if (typeof Chart === "undefined") return;
    const labels = rows.map((r) => show(r.sword_type));
    const data = rows.map((r) => r.count);
    if (!swordsChart) {
      swordsChart = new Chart($("swords-chart"), {
        type: "bar",
        data: { labels, datasets: [{ label: "purchases", data }] },
        options: { animation: false, maintainAspectRatio: false, indexAxis: "y",
          plugins: { legend: { display: false } } },
      });
    } else {
      swordsChart.data.labels = labels;
      swordsChart.data.datasets[0].data = data;
      swordsChart.update();
    }
  }

  function renderGuilds(body) {
    fillTable("guilds", body.rows.map((r) => [show(r.guild_id), [[show(r.guild_id)], [show(r.guild_name)],
      [count(r.members), "num"], [count(r.joins), "num"]]]), "no guild joins yet");
  }

  function renderQuarantine(body) {
    fillTable("quarantine", body.rows.map((r) => [show(r.reason), [[show(r.reason)], [count(r.count), "num"]]]),
      "nothing quarantined");
  }

  function renderRecent(answers) {
    const rows = answers.flatMap((body) => body.rows);
    rows.sort((a, b) => (a.received_at < b.received_at ? 1 : a.received_at > b.received_at ? -1 : 0));
    fillTable("recent", rows.slice(0, RECENT_SHOWN).map((r) => {
      const props = Object.keys(r).filter((k) => !ENVELOPE.has(k) && r[k] !== null)
        .map((k) => `${k}=${typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k]}`).join("  ");
      return [show(r.event_id), [[show(r.received_at)], [show(r.event_type)], [show(r.player_id)],
        [show(r.host)], [props, "props"]]];
    }), "no events yet");
  }

  // -- the refresh loop -------------------------------------------------------------------

  async function refresh() {
    const errors = [];
    const attempt = async (path, render) => {
      try {
        const body = await getJson(path);
        return render(body);
      } catch (err) {
        errors.push(err instanceof CallError ? err.message : `rendering ${path}: ${err}`);
        return undefined;
      }
    };
    const now = Date.now();
    let asOf = {};
    const eventTypes = await attempt("/v1/tables", (body) => {
      asOf = body.as_of || {};
      return renderTables(body, now);
    });
    await Promise.all([
      attempt("/v1/pipeline", renderPipeline),
      attempt("/v1/kpis/events-per-minute", renderPerMinute),
      attempt("/v1/stats/counts?event_type=purchase_sword&group_by=sword_type&limit=10", renderSwords),
      attempt("/v1/kpis/guilds?limit=10", renderGuilds),
      attempt(`/v1/stats/counts?event_type=${QUARANTINE}&group_by=reason&limit=20`, renderQuarantine),
      eventTypes ? Promise.all(eventTypes.map((type) =>
        getJson(`/v1/events/${encodeURIComponent(type)}?order=desc&limit=${RECENT_PER_TYPE}`)))
        .then(renderRecent, (err) => errors.push(err.message)) : Promise.resolve(),
    ]);
    refreshes += 1;
    const status = $("status");
    const versions = Object.entries(asOf).map(([name, v]) => `${name} v${show(v)}`).join(", ");
    status.textContent = `updated at ${new Date().toLocaleTimeString("en-GB")} (every ${REFRESH_S} s)` +
      (versions ? ` · as_of ${versions}` : "");
    status.dataset.state = errors.length ? "error" : "ok";
    status.dataset.refreshes = String(refreshes);
    const banner = $("error-banner");
    const list = document.createElement("ul");
    list.id = "error-list";
    for (const message of errors) {
      const li = document.createElement("li");
      li.textContent = message;
      list.appendChild(li);
    }
    $("error-list").replaceWith(list);
    banner.hidden = errors.length === 0;
  }

  async function loop() {
    try {
      await refresh();
    } finally {
      window.setTimeout(loop, REFRESH_S * 1000);
    }
  }

  loop();
})();
