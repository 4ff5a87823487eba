// Bundles the test page (main.ts → app.js, for browsers) and alice's Node client
// (alice.mjs, for Node) with web_bridge's esbuild, from the SDK as built (dist/, through
// web_bridge/node_modules/@caas/sdk), into OUT with index.html beside them:
//   node build.mjs <web_bridge dir> <out dir>
// Prints one JSON line: the page bundle's size, raw and gzipped, and its largest inputs.
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const [web, out] = process.argv.slice(2);
if (!web || !out) throw new Error("usage: node build.mjs <web_bridge dir> <out dir>");
const here = dirname(fileURLToPath(import.meta.url));
const esbuild = createRequire(join(web, "package.json"))("esbuild");
// Bare imports (@caas/sdk, @connectrpc/…) resolve from web_bridge's node_modules.
const nodePaths = [join(web, "node_modules")];
await mkdir(out, { recursive: true });

const page = await esbuild.build({
  entryPoints: [join(here, "main.ts")], outfile: join(out, "app.js"), bundle: true,
  format: "esm", platform: "browser", target: "es2022", nodePaths, metafile: true, logLevel: "warning",
});
await esbuild.build({
  entryPoints: [join(here, "alice.mjs")], outfile: join(out, "alice.mjs"), bundle: true,
  format: "esm", platform: "node", target: "node22", nodePaths, logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(out, "index.html"));

const bytes = await readFile(join(out, "app.js"));
const packages = {};
for (const [path, input] of Object.entries(page.metafile.inputs)) {
  const match = path.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/) ?? path.match(/web_bridge\/(sdk)\//);
  const name = match ? match[1] : "page";
  packages[name] = (packages[name] ?? 0) + input.bytes;
}
const largest = Object.entries(packages).sort((a, b) => b[1] - a[1]).slice(0, 6);
console.log(JSON.stringify({ pageBytes: bytes.length, pageGzipBytes: gzipSync(bytes).length,
  inputs: Object.fromEntries(largest) }));
