// An esbuild plugin for browser bundles that must be small: every import that resolves
// into the SDK's generated code (web_bridge/sdk/dist/gen/<path>.js or
// web_bridge/sdk/src/gen/<path>.ts) is served from web_bridge/sdk/slim-gen/<path>.ts
// instead — the same files with the same exports, made from descriptors without custom
// options and without the option-only imports (buf/validate, google/api, ...): see
// scripts/gen-slim.mjs, which the plugin runs at the start of each build when the slim
// tree is missing or stale.
//
//   import { slimGen } from "../scripts/slim-gen-plugin.mjs";
//   await build({ entryPoints: ["src/main.tsx"], bundle: true, plugins: [slimGen()] });
//
// Options: `generate: false` skips the (re)generation (the tree must then exist);
// `log` receives gen-slim's messages (default console.log).
import { existsSync, realpathSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";

import { ensureSlimGen, slimDir } from "./gen-slim.mjs";

const web = fileURLToPath(new URL("..", import.meta.url));
const realWeb = realpathSync(web);
/** The trees slim-gen replaces, as they appear in resolved paths (real or as given). */
const GEN_TREES = [...new Set([web, realWeb])].flatMap((base) => [
  join(base, "sdk/dist/gen") + sep,
  join(base, "sdk/src/gen") + sep,
]);
const SKIP = "caasSlimGenSkip"; // pluginData flag: the nested resolution of the original path

/** The slim file that stands in for a resolved path, if any. */
export function slimPathFor(resolved) {
  const tree = GEN_TREES.find((prefix) => resolved.startsWith(prefix));
  if (!tree) return undefined;
  const inner = resolved.slice(tree.length).replace(/\.(d\.ts|[cm]?js|[cm]?ts)$/, "");
  const candidate = join(slimDir, `${inner}.ts`);
  return existsSync(candidate) ? candidate : undefined;
}

export function slimGen({ generate = true, log = console.log } = {}) {
  return {
    name: "caas-slim-gen",
    setup(build) {
      if (generate) build.onStart(() => ensureSlimGen({ log }).then(() => undefined));

      // protoc-gen-es names every generated file *_pb: only those specifiers are looked
      // at ("./gen/caas/x/v1/y_pb.js", "@caas/sdk/gen/caas/x/v1/y_pb.js", "../../z_pb.js").
      build.onResolve({ filter: /_pb(\.[cm]?[jt]s)?$/ }, async (args) => {
        if (args.pluginData?.[SKIP]) return undefined;
        const result = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          namespace: args.namespace,
          resolveDir: args.resolveDir,
          with: args.with,
          pluginData: { [SKIP]: true },
        });
        if (result.errors.length > 0) return undefined; // esbuild reports it, as without the plugin
        if (result.external || result.namespace !== "file") return result;
        const slim = slimPathFor(result.path) ?? slimPathFor(safeRealpath(result.path));
        if (!slim) return result;
        return { ...result, path: slim, suffix: undefined, pluginData: undefined };
      });
    },
  };
}

function safeRealpath(path) {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
