// Drives the dashboard in Debian's headless Chromium (playwright-core, no browser
// download) for services/query/tests/test_dashboard_browser.py, which owns the lake and the
// query service and tells this script what to wait for.
//
// Protocol: JSON lines. Out (stdout): {"event": "loaded" | "matched" | "timeout" |
// "broken" | "done" | "fatal", ...}. In (stdin): {"cmd": "wait_for", "expect": {...},
// "timeout_ms": n}, {"cmd": "break_call", "path": "/v1/...", "timeout_ms": n} and
// {"cmd": "finish"}. Everything else this script prints goes to stderr.
//
// Usage (by hand):
//   DASHBOARD_URL=http://127.0.0.1:8000 node tests/dashboard_browser.mjs
//   env: CHROMIUM (default /usr/bin/chromium), DASHBOARD_QUERY (e.g. ?refresh=5),
//        DASHBOARD_SCREENSHOT (default ./dashboard.png)

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";

const BASE = process.env.DASHBOARD_URL;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const QUERY = process.env.DASHBOARD_QUERY || ""; // e.g. "?refresh=5"; default: the page's 2 s
const SCREENSHOT = process.env.DASHBOARD_SCREENSHOT || "dashboard.png";
const ALLOWED_HOST = "127.0.0.1";
// Flags checked on this machine; --headless comes from playwright's headless option and
// the fresh --user-data-dir from launchPersistentContext.
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Runs in the page: what a person sees, read from the DOM (textContent only).
function readPage() {
  const rows = (id) => Array.from(document.querySelectorAll(`#${id} tbody tr:not(.empty)`))
    .map((tr) => Array.from(tr.cells).map((td) => td.textContent));
  const status = document.getElementById("status");
  const banner = document.getElementById("error-banner");
  return {
    state: status.dataset.state,
    refreshes: Number(status.dataset.refreshes),
    status: status.textContent,
    banner: banner.hidden ? null : banner.textContent.trim(),
    tables: rows("tables"),
    swords: rows("swords"),
    guilds: rows("guilds"),
    quarantine: rows("quarantine"),
    recent: rows("recent"),
    pipeline: Object.fromEntries(["offsets-behind", "progress-age", "rows-per-second",
      "extractor-state"].map((id) => [id, document.getElementById(id).textContent])),
    images: document.querySelectorAll("img").length,
    // the chart's own data (a canvas has no text): events per type summed over the hour
    perMinute: Object.fromEntries((window.Chart?.getChart("per-minute-chart")?.data.datasets || [])
      .map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)])),
  };
}

const int = (text) => Number(String(text).replace(/,/g, ""));

// The numbers shown, keyed like the test's expectations.
function numbers(page) {
  const byKey = (rows, col) => Object.fromEntries(rows.map((r) => [r[0], int(r[col])]));
  return {
    tables: byKey(page.tables, 1),
    rates: byKey(page.tables, 2),
    swords: byKey(page.swords, 1),
    guilds: byKey(page.guilds, 2),
    quarantine: byKey(page.quarantine, 1),
    perMinute: page.perMinute,
  };
}

function matches(shown, expect) {
  return Object.entries(expect).every(([section, want]) =>
    JSON.stringify(Object.entries(shown[section] || {}).sort()) ===
    JSON.stringify(Object.entries(want).sort()));
}

async function main() {
  if (!BASE) throw new Error("DASHBOARD_URL is not set");
  const profile = mkdtempSync(join(tmpdir(), "questlog-chromium-"));
  const seen = { consoleErrors: [], pageErrors: [], failedRequests: [], badResponses: [],
    otherHosts: [], requestHosts: new Set(), dialogs: [] };
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS,
    viewport: { width: 1280, height: 1000 }, serviceWorkers: "block",
  });
  try {
    // Nothing but the service on loopback may be reached; record any other attempt.
    await context.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === ALLOWED_HOST) return route.continue();
      seen.otherHosts.push(route.request().url());
      return route.abort("blockedbyclient");
    });
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") seen.consoleErrors.push(msg.text());
    });
    page.on("pageerror", (err) => seen.pageErrors.push(String(err)));
    page.on("request", (req) => seen.requestHosts.add(new URL(req.url()).host));
    page.on("requestfailed", (req) =>
      seen.failedRequests.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`));
    page.on("response", (res) => {
      if (res.status() >= 400) seen.badResponses.push(`${res.status()} ${res.url()}`);
    });
    page.on("dialog", (dialog) => {
      seen.dialogs.push(dialog.message());
      dialog.dismiss().catch(() => {});
    });

    const started = Date.now();
    const response = await page.goto(`${BASE}/${QUERY}`, { waitUntil: "load" });
    await page.waitForFunction(() => Number(document.getElementById("status").dataset.refreshes) >= 1,
      null, { timeout: 20_000 });
    let shown = await page.evaluate(readPage);
    emit({ event: "loaded", ms: Date.now() - started, url: page.url(), status: response.status(),
      headers: response.headers(), page: shown, numbers: numbers(shown) });

    const input = createInterface({ input: process.stdin });
    for await (const line of input) {
      const msg = JSON.parse(line);
      if (msg.cmd === "wait_for") {
        const since = Date.now();
        let ok = false;
        while (Date.now() - since <= msg.timeout_ms) {
          shown = await page.evaluate(readPage);
          if (matches(numbers(shown), msg.expect)) { ok = true; break; }
          await page.waitForTimeout(50);
        }
        emit({ event: ok ? "matched" : "timeout", ms: Date.now() - since, page: shown,
          numbers: numbers(shown) });
      } else if (msg.cmd === "break_call") {
        // One endpoint answers 503 (as the service does when the lake cannot be read):
        // the banner must name it while every panel keeps its last numbers; then it heals.
        const broken = (route) => route.fulfill({ status: 503, contentType: "application/json",
          body: JSON.stringify({ error: { code: "lake_unavailable", message: "the lake cannot be read", details: {} } }) });
        const pattern = `**${msg.path}*`;
        const before = seen.badResponses.length;
        const consoleBefore = seen.consoleErrors.length;
        await page.route(pattern, broken);
        await page.waitForFunction(() => !document.getElementById("error-banner").hidden, null,
          { timeout: msg.timeout_ms });
        const failing = await page.evaluate(readPage);
        await page.unroute(pattern, broken);
        await page.waitForFunction(() => document.getElementById("error-banner").hidden, null,
          { timeout: msg.timeout_ms });
        const healed = await page.evaluate(readPage);
        // the browser logs the 503 it was made to see; keep it out of the real run's record
        const expected = seen.badResponses.splice(before);
        const logged = seen.consoleErrors.splice(consoleBefore);
        emit({ event: "broken", failing, failing_numbers: numbers(failing), healed,
          healed_numbers: numbers(healed), bad_responses: expected, console_errors: logged });
      } else if (msg.cmd === "finish") {
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        const mainSeen = { ...seen, otherHosts: [...seen.otherHosts],
          requestHosts: [...seen.requestHosts] };
        // The blocker itself, proven on a blank page of the same context (no CSP there):
        // a request to another host must be caught and never leave the machine.
        const probe = await context.newPage();
        const blocked = await probe.goto("http://dashboard-test.invalid/", { timeout: 5_000 })
          .then(() => false, () => true);
        await probe.close();
        emit({ event: "done", seen: mainSeen, screenshot: SCREENSHOT, page: shown,
          blocker: { navigation_failed: blocked, recorded: seen.otherHosts.slice(mainSeen.otherHosts.length) } });
        break;
      }
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  emit({ event: "fatal", error: String(err && err.stack || err) });
  process.exit(1);
});
