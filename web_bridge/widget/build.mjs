// Builds dist/caas-widget.js: one classic script (an IIFE, so it runs from a plain
// <script async> on any page), with the UI kit's React code running on Preact's compat
// layer and the slim protobuf descriptors (scripts/slim-gen-plugin.mjs), minified.
// Prints, and writes to dist/build.json, its size gzipped (the budget is 60 KB,
// checked by tests/browser/test_widget.py).
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

const result = await build({
  entryPoints: [join(root, "src/main.tsx")],
  bundle: true,
  format: "iife",
  target: "es2020",
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  outfile: join(dist, "caas-widget.js"),
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
  write: true,
  logLevel: "warning",
});

const bytes = readFileSync(join(dist, "caas-widget.js"));
const gzipped = gzipSync(bytes, { level: 9 }).length;
writeFileSync(join(dist, "build.json"), JSON.stringify({ bytes: bytes.length, gzipBytes: gzipped }) + "\n");
console.log(`widget built: caas-widget.js is ${(gzipped / 1024).toFixed(1)} KiB gzipped (${(bytes.length / 1024).toFixed(1)} KiB)`);

if (process.argv.includes("--analyze")) {
  const inputs = Object.entries(Object.values(result.metafile.outputs)[0].inputs)
    .sort(([, a], [, b]) => b.bytesInOutput - a.bytesInOutput).slice(0, 25);
  for (const [path, { bytesInOutput }] of inputs) console.log(String(bytesInOutput).padStart(8), path);
}
