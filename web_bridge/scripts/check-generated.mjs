// Fails when src/gen differs from what `npm run generate` would write now.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const root = join(web, "..");
const scratch = mkdtempSync(join(tmpdir(), "caas-gen-"));
try {
  const template = readFileSync(join(web, "buf.gen.yaml"), "utf8")
    .replaceAll("out: web_bridge/sdk/src/gen", `out: ${join(scratch, "gen")}`)
    .replaceAll("local: web_bridge/", `local: ${web}`);
  writeFileSync(join(scratch, "buf.gen.yaml"), template);
  execFileSync("buf", ["generate", "--template", join(scratch, "buf.gen.yaml")], { cwd: root, stdio: "inherit" });
  const files = (dir) => readdirSync(dir, { recursive: true })
    .map((name) => join(dir, name)).filter((path) => statSync(path).isFile())
    .map((path) => relative(dir, path)).sort();
  const fresh = files(join(scratch, "gen"));
  const committed = files(join(web, "sdk/src/gen"));
  const stale = [...new Set([...fresh, ...committed])].filter((name) =>
    !fresh.includes(name) || !committed.includes(name) ||
    readFileSync(join(scratch, "gen", name), "utf8") !== readFileSync(join(web, "sdk/src/gen", name), "utf8"));
  if (stale.length) {
    console.error("web_bridge/sdk/src/gen is stale; run `npm run generate`:\n  " + stale.join("\n  "));
    process.exit(1);
  }
  console.log("web_bridge/sdk/src/gen is fresh");
  // The slim tree (scripts/gen-slim.mjs) is made from the same protos: regenerated in
  // place, it must not change.
  const slim = join(web, "sdk/slim-gen");
  const sources = (dir) => files(dir).filter((name) => name.endsWith(".ts") && !name.startsWith("dist"));
  const before = new Map(sources(slim).map((name) => [name, readFileSync(join(slim, name), "utf8")]));
  execFileSync(process.execPath, [join(web, "scripts/gen-slim.mjs"), "--force"], { cwd: web, stdio: "inherit" });
  const after = sources(slim);
  const changed = [...new Set([...before.keys(), ...after])].filter((name) =>
    !before.has(name) || !after.includes(name) || before.get(name) !== readFileSync(join(slim, name), "utf8"));
  if (changed.length) {
    console.error("web_bridge/sdk/slim-gen is stale; run `npm run generate`:\n  " + changed.join("\n  "));
    process.exit(1);
  }
  console.log("web_bridge/sdk/slim-gen is fresh");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
