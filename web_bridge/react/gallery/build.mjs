// Builds the kit's gallery into gallery/dist/: index.html (React) and preact.html (the
// same stories with `react` aliased to preact/compat, as the widget bundles the kit),
// hashed assets under assets/, all URLs relative so it works under any path prefix.
// Prints the size of each bundle, gzipped.
import { build } from "esbuild";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

// `import modules from "virtual:stories"`: every stories/*.stories.tsx, by file name.
const stories = {
  name: "stories",
  setup(b) {
    b.onResolve({ filter: /^virtual:stories$/ }, () => ({ path: "stories", namespace: "virtual" }));
    b.onLoad({ filter: /.*/, namespace: "virtual" }, () => {
      const files = readdirSync(join(root, "stories")).filter((f) => f.endsWith(".stories.tsx")).sort();
      const lines = files.map((f, i) => `import * as s${i} from ${JSON.stringify("./stories/" + f)};`);
      // The stories in the order the file declares them (a namespace object sorts its keys).
      const order = files.map((f) => [...readFileSync(join(root, "stories", f), "utf8").matchAll(/^export (?:const|function) (\w+)/gm)].map((m) => m[1]));
      lines.push(`export default { ${files.map((f, i) => `${JSON.stringify(f)}: { module: s${i}, order: ${JSON.stringify(order[i])} }`).join(", ")} };`);
      return { contents: lines.join("\n"), resolveDir: root, loader: "js", watchFiles: files.map((f) => join(root, "stories", f)) };
    });
  },
};

async function bundle(name, alias) {
  const result = await build({
    entryPoints: { [name]: join(root, "main.tsx") },
    bundle: true,
    format: "esm",
    target: "es2022",
    jsx: "automatic",
    minify: true,
    legalComments: "none",
    outdir: join(dist, "assets"),
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    define: { "process.env.NODE_ENV": '"production"' },
    alias,
    plugins: [stories],
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.entries(result.metafile.outputs);
  const [js] = outputs.find(([, o]) => o.entryPoint);
  const css = outputs.find(([path]) => path.endsWith(".css"))?.[0];
  const rel = (path) => "./" + relative(dist, join(process.cwd(), path)).split("\\").join("/");
  const html = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>CAAS UI kit</title>
  ${css ? `<link rel="stylesheet" href="${rel(css)}">` : ""}
</head>
<body>
  <div id="root"></div>
  <noscript>The gallery needs JavaScript.</noscript>
  <script type="module" src="${rel(js)}"></script>
</body>
</html>
`;
  writeFileSync(join(dist, name === "react" ? "index.html" : `${name}.html`), html);
  const gz = gzipSync(readFileSync(join(process.cwd(), js))).length;
  console.log(`gallery (${name}): ${rel(js)} ${(gz / 1024).toFixed(1)} KiB gzipped`);
}

await bundle("react");
await bundle("preact", {
  react: "preact/compat",
  "react-dom": "preact/compat",
});
console.log(`gallery built: ${relative(process.cwd(), join(dist, "index.html"))} (React), preact.html (Preact compat)`);
