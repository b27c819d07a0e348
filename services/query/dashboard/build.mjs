// The dashboard's build: copy the pinned vendor files (from node_modules, installed by
// `npm ci`) and the page's own files into the folder the query service serves, plus a
// manifest.json listing them. No bundler: the page is three small files and two vendor
// files, and a copy is all that is needed to run offline with no CDN.
//
// Usage:
//   npm ci && node build.mjs                  # -> ../questlog_query/static/dashboard
//   node build.mjs --out /out/dashboard        # the Dockerfile's node stage
//
// The output is build output: gitignored, rebuilt by `make setup` (bin/setup).

import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// served name -> source, relative to this folder. The server serves only these names.
const FILES = {
  "index.html": "index.html",
  "dashboard.js": "dashboard.js",
  "dashboard.css": "dashboard.css",
  "chart.umd.min.js": "node_modules/chart.js/dist/chart.umd.min.js",
  "chart.umd.min.js.map": "node_modules/chart.js/dist/chart.umd.min.js.map",
  "pico.min.css": "node_modules/@picocss/pico/css/pico.min.css",
  "LICENSE-chart.js.md": "node_modules/chart.js/LICENSE.md",
  "LICENSE-pico.md": "node_modules/@picocss/pico/LICENSE.md",
};
const VENDOR_PACKAGES = ["chart.js", "@picocss/pico"];

function parseArgs(argv) {
  let out = resolve(here, "..", "questlog_query", "static", "dashboard");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1]) out = resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (usage: node build.mjs [--out DIR])`);
  }
  return { out };
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const missing = Object.values(FILES).filter((src) => !existsSync(join(here, src)));
  if (missing.length) {
    console.error(`[dashboard build] missing: ${missing.join(", ")}\n` +
      "[dashboard build] run `npm ci` in services/query/dashboard (or `make setup`) first");
    process.exit(1);
  }
  const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
  const versions = Object.fromEntries(
    VENDOR_PACKAGES.map((name) => [name, lock.packages[`node_modules/${name}`].version]));
  // Build beside the target and swap, so a running service never serves a half copy.
  const staging = `${out}.building`;
  rmSync(staging, { recursive: true, force: true });
  const files = {};
  for (const [name, src] of Object.entries(FILES)) {
    const target = join(staging, name);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(here, src), target);
    files[name] = createHash("sha256").update(readFileSync(target)).digest("hex");
  }
  writeFileSync(join(staging, "manifest.json"),
    JSON.stringify({ files, packages: versions }, null, 2) + "\n");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  renameSync(staging, out);
  console.log(`[dashboard build] ${Object.keys(files).length} files -> ${out} ` +
    `(${Object.entries(versions).map(([n, v]) => `${n}@${v}`).join(", ")})`);
}

main();
