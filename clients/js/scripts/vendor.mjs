// Writes the compiled core where hark's built-in page loads it (src/hark/web/static/vendor/
// hark-client/): the ESM files from dist/ and the two worklets as plain files, because the page's
// CSP (script-src 'self') refuses Blob-URL worklets. `--check` compares instead of writing and
// exits 1 when the committed copy is stale. Run after `npm run build`.
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const target = join(here, "..", "..", "..", "src", "hark", "web", "static", "vendor", "hark-client");
const check = process.argv.includes("--check");

const { captureWorkletSource, playbackWorkletSource } = await import(join(dist, "worklets.js"));
const header = "// Generated from clients/js (npm run vendor); do not edit.\n";
const files = new Map();
for (const name of readdirSync(dist).filter((n) => n.endsWith(".js")).sort()) {
  files.set(name, readFileSync(join(dist, name), "utf8"));
}
files.set("capture-worklet.js", header + captureWorkletSource());
files.set("playback-worklet.js", header + playbackWorkletSource());

if (check) {
  const stale = [];
  for (const [name, text] of files) {
    const path = join(target, name);
    if (!existsSync(path) || readFileSync(path, "utf8") !== text) stale.push(name);
  }
  const extra = existsSync(target) ? readdirSync(target).filter((n) => !files.has(n)) : [];
  if (stale.length || extra.length) {
    console.error(`stale vendor copy: ${[...stale, ...extra].join(", ")}; run \`make vendor-js\``);
    process.exit(1);
  }
  console.log("vendor copy up to date");
} else {
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  for (const [name, text] of files) writeFileSync(join(target, name), text);
  console.log(`wrote ${files.size} files to ${target}`);
}
