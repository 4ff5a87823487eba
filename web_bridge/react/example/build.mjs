// Builds the example app into example/dist/ (index.html, app-[hash].js, CSS), with
// React itself (not Preact): what an app developer's own build does with @caas/react.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const result = await build({
  entryPoints: [join(root, "main.tsx")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  outdir: join(dist, "assets"),
  entryNames: "app-[hash]",
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  logLevel: "warning",
});
const outputs = result.metafile.outputs;
const entry = Object.keys(outputs).find((path) => outputs[path].entryPoint);
const css = outputs[entry].cssBundle;
const href = (path) => "./" + relative(dist, join(process.cwd(), path)).split("\\").join("/");
writeFileSync(join(dist, "index.html"), readFileSync(join(root, "index.html"), "utf8")
  .replace("<!--css-->", css ? `<link rel="stylesheet" href="${href(css)}">` : "")
  .replace("<!--js-->", `<script type="module" src="${href(entry)}"></script>`));
const gzipped = gzipSync(readFileSync(join(process.cwd(), entry))).length;
writeFileSync(join(dist, "build.json"), JSON.stringify({ gzipBytes: gzipped }) + "\n");
console.log(`example built: ${(gzipped / 1024).toFixed(1)} KiB of JavaScript gzipped (React included)`);
