// Sizes of what apps ship, minified and gzipped (level 9), printed as JSON: the SDK
// core (ChatClient with every service client and a gRPC-Web transport), with the full
// and the slim generated descriptors; the React kit alone (React and the SDK left
// out); the widget (from its build.json); the React example app (React included).
// For bench/web_kit.py; needs `npm run build` first.
import { build } from "esbuild";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { slimGen } from "./slim-gen-plugin.mjs";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");

async function measure(name, source, options = {}) {
  const entry = join(web, `sdk/.size-${name}.ts`); // inside the workspace: its node_modules resolve
  writeFileSync(entry, source);
  try {
    const result = await build({
      entryPoints: [entry], bundle: true, minify: true, format: "esm", target: "es2020",
      write: false, legalComments: "none", logLevel: "error", ...options,
    });
    const bytes = result.outputFiles[0].contents;
    return { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
  } finally {
    rmSync(entry, { force: true });
  }
}

const core = `
import { ChatClient, createCaasClient } from "@caas/sdk";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
const client = createCaasClient({ transport: (i) => createGrpcWebTransport({ baseUrl: location.origin, interceptors: i }),
  tokens: { accessToken: "", refreshToken: "", accessTokenExpiresAt: 0 } });
export const chat = new ChatClient({ client, user: "apps/a/users/b" });
`;
const sizes = {
  sdkCore: await measure("core", core),
  sdkCoreSlim: await measure("core-slim", core, { plugins: [slimGen({ generate: false })] }),
  reactKit: await measure("kit", `export * from "@caas/react";`, {
    external: ["react", "react-dom", "react/jsx-runtime", "@caas/sdk", "@bufbuild/*", "@connectrpc/*", "*.css"],
  }),
  kitCss: { gzipped: gzipSync(readFileSync(join(web, "react/dist/styles.css")), { level: 9 }).length },
  widget: JSON.parse(readFileSync(join(web, "widget/dist/build.json"), "utf8")),
  reactExample: JSON.parse(readFileSync(join(web, "react/example/dist/build.json"), "utf8")),
};
console.log(JSON.stringify(sizes));
