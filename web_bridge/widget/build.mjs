// Builds dist/: caas-widget.js, the tag's loader (a classic script, so it runs from a
// plain <script async> on any page), and caas-widget-main.js, the widget's ES module,
// with the panel's code split off into assets/ (loaded when the panel first opens).
// The UI kit's React code runs on Preact's compat layer, with the slim protobuf
// descriptors (scripts/slim-gen-plugin.mjs). Prints, and writes to dist/build.json,
// the sizes gzipped: what a page loads at first, and what loads on demand (the panel
// when first opened; guests' sign-in and the Arabic strings when used)
// (tests/web_bridge/test_bundle_sizes.py holds them to their budgets).
import { build, transform } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { slimGen } from "../scripts/slim-gen-plugin.mjs";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

/**
 * The protobuf JSON codec stays out: the widget speaks gRPC-Web's binary format only,
 * and Connect merely refers to the JSON functions for its JSON formats. A stub that
 * throws says so if anything ever calls them (the browser tests would fail).
 */
const noJson = {
  name: "caas-no-protobuf-json",
  setup(build) {
    build.onLoad({ filter: /@bufbuild[\\/]protobuf[\\/]dist[\\/]esm[\\/](from|to)-json\.js$/ }, (args) => ({
      contents: args.path.includes("from-json")
        ? "export function fromJson() { throw new Error('protobuf JSON is not in the widget'); }\n" +
          "export const fromJsonString = fromJson, mergeFromJson = fromJson, mergeFromJsonString = fromJson, enumFromJson = fromJson, isEnumJson = fromJson;\n"
        : "export function toJson() { throw new Error('protobuf JSON is not in the widget'); }\n" +
          "export const toJsonString = toJson, enumToJson = toJson;\n",
      loader: "js",
    }));
  },
};

/** Stylesheets as minified text, for the shadow root. */
const cssText = {
  name: "caas-css-text",
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, async (args) => {
      const { code } = await transform(readFileSync(args.path, "utf8"), { loader: "css", minify: true });
      return { contents: code, loader: "text" };
    });
  },
};

const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  alias: {
    react: "preact/compat",
    "react-dom": "preact/compat",
    "react-dom/client": "preact/compat/client",
    "react/jsx-runtime": "preact/jsx-runtime",
  },
  define: { "process.env.NODE_ENV": '"production"' },
  // The committed sdk/slim-gen (no buf needed), no JSON codec, minified CSS.
  plugins: [slimGen({ generate: false }), noJson, cssText],
  metafile: true,
  logLevel: "warning",
};

// The tag's loader: a classic script (it runs from a plain <script async>).
const loader = await build({
  ...common,
  entryPoints: [join(root, "src/loader.ts")],
  format: "iife",
  target: "es2020",
  outfile: join(dist, "caas-widget.js"),
});
// The widget's module and, split off, the panel's code (loaded on first open).
const result = await build({
  ...common,
  entryPoints: { "caas-widget-main": join(root, "src/main.tsx") },
  format: "esm",
  splitting: true,
  target: "es2020",
  outdir: dist,
  chunkNames: "assets/[name]-[hash]",
});

// What the page loads at first (the loader, the module and its static imports), and
// what opening the panel adds.
const outputs = { ...result.metafile.outputs, ...loader.metafile.outputs };
const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const reach = (start, kinds) => {
  const seen = new Set();
  const visit = (path) => {
    if (seen.has(path) || !outputs[path]) return;
    seen.add(path);
    for (const item of outputs[path].imports) if (kinds.includes(item.kind)) visit(item.path);
  };
  visit(start);
  return seen;
};
const paths = Object.keys(outputs);
const main = paths.find((path) => path.endsWith("caas-widget-main.js"));
const initial = new Set([paths.find((path) => path.endsWith("caas-widget.js")), ...reach(main, ["import-statement"])]);
const everything = new Set([...initial, ...reach(main, ["import-statement", "dynamic-import"])]);
const sum = (set) => [...set].reduce((total, path) => total + gz(path), 0);
// panelGzipBytes: everything loaded on demand (the panel, and guests' and Arabic code).
const sizes = { initialGzipBytes: sum(initial), panelGzipBytes: sum(everything) - sum(initial), totalGzipBytes: sum(everything) };
writeFileSync(join(dist, "build.json"), JSON.stringify(sizes) + "\n");
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
console.log(`widget built: ${kib(sizes.initialGzipBytes)} gzipped at first (loader, launcher, client), ` +
  `${kib(sizes.panelGzipBytes)} more on demand (the panel; guests' sign-in, Arabic); ${kib(sizes.totalGzipBytes)} in all`);

if (process.argv.includes("--analyze")) {
  const inputs = Object.values(result.metafile.outputs).flatMap((output) => Object.entries(output.inputs))
    .sort(([, a], [, b]) => b.bytesInOutput - a.bytesInOutput).slice(0, 25);
  for (const [path, { bytesInOutput }] of inputs) console.log(String(bytesInOutput).padStart(8), path);
}
