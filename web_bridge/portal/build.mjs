// Builds the portal into dist/: hashed, code-split ES modules and CSS, and an
// index.html that loads the entry. Prints the size of what the first page loads
// (the entry and the chunks it imports statically), gzipped.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const result = await build({
  entryPoints: [join(root, "src/main.tsx")],
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  outdir: join(dist, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  publicPath: "/portal/assets/",
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  logLevel: "warning",
});

const outputs = result.metafile.outputs;
const entry = Object.keys(outputs).find((path) => outputs[path].entryPoint?.endsWith("src/main.tsx"));
const css = outputs[entry].cssBundle;
const href = (path) => "/portal/" + relative(dist, join(process.cwd(), path)).split("\\").join("/");

// What the first page needs: the entry and its static imports, transitively.
const initial = new Set();
const visit = (path) => {
  if (initial.has(path)) return;
  initial.add(path);
  for (const imported of outputs[path].imports) {
    if (imported.kind === "import-statement" && outputs[imported.path]) visit(imported.path);
  }
};
visit(entry);
const gzipped = [...initial].reduce((sum, path) => sum + gzipSync(readFileSync(path)).length, 0);

const template = readFileSync(join(root, "index.html"), "utf8");
writeFileSync(join(dist, "index.html"), template
  .replace("<!--css-->", css ? `<link rel="stylesheet" href="${href(css)}">` : "")
  .replace("<!--js-->", `<script type="module" src="${href(entry)}"></script>`));
writeFileSync(join(dist, "build.json"), JSON.stringify({ initialJsGzipBytes: gzipped }) + "\n");
console.log(`portal built: first page loads ${(gzipped / 1024).toFixed(1)} KiB of JavaScript, gzipped`);
