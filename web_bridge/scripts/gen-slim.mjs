// Writes web_bridge/sdk/slim-gen/: the generated TypeScript of sdk/src/gen (the same
// files, the same exports: a drop-in replacement), made from descriptors stripped of
// everything a browser never needs, for bundles that must be small (the widget).
//
//   node scripts/gen-slim.mjs           # regenerate if the inputs changed (else a no-op)
//   node scripts/gen-slim.mjs --force   # regenerate anyway
//
// Every CAAS proto imports buf/validate, google/api and caas/type/v1/access.proto,
// caas/errors/v1/errors.proto only for custom options, and protoc-gen-es embeds each
// file's descriptor with its options, and imports every file it depends on — so a
// bundle of one service pulls the whole buf/validate descriptor (72 KB minified) and
// the google.protobuf.descriptor schema. Here, from `buf build` of the inputs of
// buf.gen.yaml (no source info):
//   1. every options message (file, message, field, oneof, extension range, enum, enum
//      value, service, method) loses its extensions (buf.validate.*, google.api.*,
//      caas.type.v1.access, caas.errors.v1.errors, any other) and uninterpreted
//      options; file options also lose the other languages' settings (java_*, go_package,
//      ...). What the runtime uses stays: fields, types, oneofs, json names, enums,
//      packed, jstype, map entries, proto3 optional, features, deprecated;
//   2. each file's imports that no longer provide a type it uses are dropped (public
//      imports are kept), so its generated code no longer imports them;
//   3. protoc-gen-es (same version and options as `npm run generate`) runs over that
//      image, by `buf generate`, into sdk/slim-gen/; and esbuild compiles it, imports
//      untouched, to sdk/slim-gen/dist/*.js, for Node (test/unit/slim-gen.test.mjs).
// Option-only files (validate, google/api, access, errors) are still written, stripped
// too, for anyone who imports their types or enums.
//
// The tree is committed, like sdk/src/gen, so that building the widget needs no buf
// (`scripts/serve.sh` installs no dev tools): `npm run generate` remakes it and
// scripts/check-generated.mjs fails when it is stale. Its compiled copy (dist/) and
// the stamp of its inputs (.stamp: the protos, the versions of buf and protoc-gen-es,
// this script) are not; the stamp lets ensureSlimGen() skip a fresh tree.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const root = join(web, "..");
export const slimDir = join(web, "sdk/slim-gen");
const fullDir = join(web, "sdk/src/gen");
const plugin = join(web, "node_modules/.bin/protoc-gen-es");
const require = createRequire(join(web, "package.json"));

// The inputs of web_bridge/buf.gen.yaml: a directory and, for gen/proto, its paths.
const INPUTS = [
  { directory: "proto", paths: [] },
  { directory: "gen/proto", paths: ["gen/proto/buf/validate", "gen/proto/google/api", "gen/proto/google/rpc"] },
];
const PLUGIN_OPTS = ["target=ts", "import_extension=js"];

/** PATH with the repository's venv (buf, node) and this Node, for buf and its plugin. */
function toolEnv() {
  const extra = [join(root, ".venv/bin"), dirname(process.execPath)];
  return { ...process.env, PATH: [process.env.PATH ?? "", ...extra].filter(Boolean).join(delimiter) };
}

function buf(args, options = {}) {
  return execFileSync("buf", args, { cwd: root, env: toolEnv(), maxBuffer: 1 << 28, ...options });
}

function walk(dir, keep) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort()
    .map((name) => join(dir, name)).filter((path) => keep(path) && statSync(path).isFile());
}

/** A hash of everything the slim tree is made from. */
function inputsHash() {
  const hash = createHash("sha256");
  const add = (label, data) => hash.update(`${label}\0${data.length}\0`).update(data);
  for (const { directory } of INPUTS) {
    for (const path of walk(join(root, directory), (p) => p.endsWith(".proto"))) {
      add(relative(root, path), readFileSync(path));
    }
  }
  for (const name of ["buf.yaml", "buf.lock", "web_bridge/buf.gen.yaml"]) {
    const path = join(root, name);
    if (existsSync(path)) add(name, readFileSync(path));
  }
  add("gen-slim.mjs", readFileSync(fileURLToPath(import.meta.url)));
  for (const pkg of ["@bufbuild/protoc-gen-es", "@bufbuild/protobuf", "esbuild"]) {
    add(pkg, JSON.parse(readFileSync(join(web, "node_modules", pkg, "package.json"), "utf8")).version);
  }
  add("buf", buf(["--version"]).toString().trim());
  return hash.digest("hex");
}

// ---------------------------------------------------------------------------------
// Stripping the image.

const pb = await import(require.resolve("@bufbuild/protobuf"));
const wire = await import(require.resolve("@bufbuild/protobuf/wire"));
const wkt = await import(require.resolve("@bufbuild/protobuf/wkt"));

/** FileOptions fields that only other languages' generators read. */
const OTHER_LANGUAGES = [
  "javaPackage", "javaOuterClassname", "javaMultipleFiles", "javaGenerateEqualsAndHash",
  "javaStringCheckUtf8", "optimizeFor", "goPackage", "ccGenericServices", "javaGenericServices",
  "pyGenericServices", "ccEnableArenas", "objcClassPrefix", "csharpNamespace", "swiftPrefix",
  "phpClassPrefix", "phpNamespace", "phpMetadataNamespace", "rubyPackage",
];

/** Drop extensions (unknown fields to this parser) and uninterpreted options, deeply. */
function dropUnknown(message) {
  if (message === null || typeof message !== "object" || message instanceof Uint8Array) return;
  delete message.$unknown;
  for (const [key, value] of Object.entries(message)) {
    if (key === "$typeName") continue;
    if (Array.isArray(value)) value.forEach(dropUnknown);
    else dropUnknown(value);
  }
}

/** The options stripped, or undefined when nothing is left of them. */
function strip(schema, options, stats) {
  if (!options) return undefined;
  const before = pb.toBinary(schema, options).length;
  dropUnknown(options);
  if ("uninterpretedOption" in options) options.uninterpretedOption = [];
  if (schema === wkt.FileOptionsSchema) {
    for (const name of OTHER_LANGUAGES) pb.clearField(options, schema.field[name]);
  }
  const after = pb.toBinary(schema, options).length;
  stats.options += before - after;
  return after === 0 ? undefined : options;
}

function stripMessage(message, stats) {
  message.options = strip(wkt.MessageOptionsSchema, message.options, stats);
  for (const field of [...message.field, ...message.extension]) {
    field.options = strip(wkt.FieldOptionsSchema, field.options, stats);
  }
  for (const oneof of message.oneofDecl) oneof.options = strip(wkt.OneofOptionsSchema, oneof.options, stats);
  for (const range of message.extensionRange) {
    range.options = strip(wkt.ExtensionRangeOptionsSchema, range.options, stats);
  }
  for (const nested of message.nestedType) stripMessage(nested, stats);
  for (const nested of message.enumType) stripEnum(nested, stats);
}

function stripEnum(enumType, stats) {
  enumType.options = strip(wkt.EnumOptionsSchema, enumType.options, stats);
  for (const value of enumType.value) value.options = strip(wkt.EnumValueOptionsSchema, value.options, stats);
}

/** Fully-qualified names (".pkg.Name") of the messages and enums a file declares. */
function declaredTypes(file) {
  const names = [];
  const prefix = file.package ? `.${file.package}` : "";
  const visit = (message, scope) => {
    const name = `${scope}.${message.name}`;
    names.push(name);
    message.nestedType.forEach((nested) => visit(nested, name));
    message.enumType.forEach((nested) => names.push(`${name}.${nested.name}`));
  };
  file.messageType.forEach((message) => visit(message, prefix));
  file.enumType.forEach((enumType) => names.push(`${prefix}.${enumType.name}`));
  return names;
}

/** Fully-qualified names of the types a file uses (fields, extendees, methods). */
function usedTypes(file) {
  const used = new Set();
  const fields = (fieldList) => {
    for (const field of fieldList) {
      if (field.typeName) used.add(field.typeName);
      if (field.extendee) used.add(field.extendee);
    }
  };
  const visit = (message) => {
    fields(message.field);
    fields(message.extension);
    message.nestedType.forEach(visit);
  };
  file.messageType.forEach(visit);
  fields(file.extension);
  for (const service of file.service) {
    for (const method of service.method) used.add(method.inputType).add(method.outputType);
  }
  return used;
}

/**
 * buf's image keeps, in field 8042 of each file (buf.alpha.image.v1.ImageFileExtension),
 * indexes into its dependency list (unused_dependency, field 4): drop them, since the
 * list changes (and what is left is used).
 */
function dropUnusedDependencyIndexes(file) {
  for (const unknown of file.$unknown ?? []) {
    if (unknown.no !== 8042 || unknown.wireType !== wire.WireType.LengthDelimited) continue;
    const reader = new wire.BinaryReader(unknown.data);
    const payload = reader.bytes();
    const inner = new wire.BinaryReader(payload);
    const writer = new wire.BinaryWriter();
    while (inner.pos < inner.len) {
      const [no, wireType] = inner.tag();
      const data = inner.skip(wireType, no);
      if (no !== 4) writer.tag(no, wireType).raw(data);
    }
    unknown.data = new wire.BinaryWriter().bytes(writer.finish()).finish();
  }
}

/** Strips the image in place; answers what it did. */
export function stripImage(image) {
  const stats = { options: 0, dependencies: [] };
  const owner = new Map();
  for (const file of image.file) for (const name of declaredTypes(file)) owner.set(name, file.name);
  const byName = new Map(image.file.map((file) => [file.name, file]));
  for (const file of image.file) {
    file.options = strip(wkt.FileOptionsSchema, file.options, stats);
    file.messageType.forEach((message) => stripMessage(message, stats));
    file.enumType.forEach((enumType) => stripEnum(enumType, stats));
    for (const extension of file.extension) extension.options = strip(wkt.FieldOptionsSchema, extension.options, stats);
    for (const service of file.service) {
      service.options = strip(wkt.ServiceOptionsSchema, service.options, stats);
      for (const method of service.method) method.options = strip(wkt.MethodOptionsSchema, method.options, stats);
    }
  }
  for (const file of image.file) {
    // A dependency stays if it (or what it imports publicly) declares a type the file uses.
    const needed = new Set();
    for (const name of usedTypes(file)) {
      const from = owner.get(name);
      if (!from) throw new Error(`${file.name}: no file declares ${name}`);
      needed.add(from);
    }
    const provides = (dependency, seen = new Set()) => {
      if (needed.has(dependency)) return true;
      if (seen.has(dependency)) return false;
      seen.add(dependency);
      const target = byName.get(dependency);
      return !!target && target.publicDependency.some((index) => provides(target.dependency[index], seen));
    };
    const kept = file.dependency
      .map((name, index) => ({ name, index }))
      .filter(({ name, index }) => file.publicDependency.includes(index) || provides(name));
    if (kept.length === file.dependency.length) continue;
    const renumber = (indexes) => indexes
      .map((index) => kept.findIndex((entry) => entry.index === index)).filter((index) => index >= 0);
    stats.dependencies.push(
      `${file.name}: -${file.dependency.filter((name) => !kept.some((entry) => entry.name === name)).join(", -")}`);
    file.publicDependency = renumber(file.publicDependency);
    file.weakDependency = renumber(file.weakDependency);
    file.dependency = kept.map((entry) => entry.name);
    dropUnusedDependencyIndexes(file);
  }
  return stats;
}

// ---------------------------------------------------------------------------------
// Building.

/** One image of the inputs of buf.gen.yaml (files in dependency order, each once). */
function buildImage(scratch) {
  const image = pb.create(wkt.FileDescriptorSetSchema);
  const seen = new Map();
  INPUTS.forEach(({ directory, paths }, i) => {
    const out = join(scratch, `input${i}.binpb`);
    buf(["build", directory, ...paths.flatMap((path) => ["--path", path]), "--exclude-source-info", "-o", out]);
    for (const file of pb.fromBinary(wkt.FileDescriptorSetSchema, readFileSync(out)).file) {
      if (!seen.has(file.name)) {
        seen.set(file.name, image.file.length);
        image.file.push(file);
      } else if (!isImport(file)) {
        image.file[seen.get(file.name)] = file; // a target of this input, not only an import
      }
    }
  });
  return image;
}

/** buf's ImageFileExtension.is_import (field 1 of field 8042). */
function isImport(file) {
  for (const unknown of file.$unknown ?? []) {
    if (unknown.no !== 8042) continue;
    const inner = new wire.BinaryReader(new wire.BinaryReader(unknown.data).bytes());
    while (inner.pos < inner.len) {
      const [no, wireType] = inner.tag();
      if (no === 1 && wireType === wire.WireType.Varint) return inner.bool();
      inner.skip(wireType, no);
    }
  }
  return false;
}

/** Staging and swapped-out trees of runs that died (over an hour old). */
function removeLeftovers() {
  const sdk = dirname(slimDir);
  for (const name of readdirSync(sdk)) {
    if (!/^\.slim-gen-|^slim-gen\.old-/.test(name)) continue;
    const path = join(sdk, name);
    if (Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { recursive: true, force: true });
  }
}

/** Makes sdk/slim-gen from scratch; answers a summary. */
export async function generateSlim({ log = console.log } = {}) {
  const started = performance.now();
  removeLeftovers();
  const stamp = inputsHash();
  const scratch = mkdtempSync(join(tmpdir(), "caas-slim-gen-"));
  // Staged next to the tree (so that it moves in by a rename), ignored by git meanwhile.
  const staging = mkdtempSync(join(web, "sdk/.slim-gen-"));
  writeFileSync(join(staging, ".gitignore"),
    "# Made by web_bridge/scripts/gen-slim.mjs (npm run generate) and committed, like\n" +
    "# sdk/src/gen; its compiled copy for Node and its freshness stamp are not.\ndist/\n.stamp\n");
  try {
    const image = buildImage(scratch);
    const fullSize = pb.toBinary(wkt.FileDescriptorSetSchema, image).length;
    const stats = stripImage(image);
    const bytes = pb.toBinary(wkt.FileDescriptorSetSchema, image);
    const imagePath = join(scratch, "slim.binpb");
    writeFileSync(imagePath, bytes);
    const template = join(scratch, "buf.gen.yaml");
    writeFileSync(template, [
      "version: v2",
      "plugins:",
      `  - local: ${JSON.stringify(plugin)}`,
      `    out: ${JSON.stringify(staging)}`,
      // One plugin run for all files (same output; the default, one per directory, is 10x slower).
      "    strategy: all",
      "    include_imports: true",
      "    opt:",
      ...PLUGIN_OPTS.map((opt) => `      - ${opt}`),
      "",
    ].join("\n"));
    buf(["generate", imagePath, "--template", template], { stdio: ["ignore", "inherit", "inherit"] });

    const sources = walk(staging, (path) => path.endsWith(".ts"));
    const { build } = await import(require.resolve("esbuild"));
    await build({
      entryPoints: sources,
      outbase: staging,
      outdir: join(staging, "dist"),
      format: "esm",
      target: "es2022",
      bundle: false,
      logLevel: "warning",
    });
    writeFileSync(join(staging, ".stamp"), stamp + "\n");

    // Same layout as sdk/src/gen: say so when they differ (src/gen stale, or an odd input).
    const names = (dir) => walk(dir, (path) => path.endsWith(".ts"))
      .map((path) => relative(dir, path)).filter((name) => !name.startsWith(`dist${sep}`));
    const slimNames = names(staging);
    const fullNames = names(fullDir);
    const missing = fullNames.filter((name) => !slimNames.includes(name));
    const extra = slimNames.filter((name) => !fullNames.includes(name));
    if (missing.length || extra.length) {
      log(`gen-slim: warning: slim-gen and src/gen differ (is src/gen stale?): missing ${missing.join(" ") || "-"}; extra ${extra.join(" ") || "-"}`);
    }

    // Swap in the new tree (a rename: a concurrent reader sees the old or the new one).
    const old = `${slimDir}.old-${process.pid}`;
    if (existsSync(slimDir)) renameSync(slimDir, old);
    try {
      renameSync(staging, slimDir);
    } catch (error) {
      // Another process swapped its own tree in meanwhile: fine if it is as fresh.
      if (!slimGenFresh()) throw error;
    }
    rmSync(old, { recursive: true, force: true });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    log(`gen-slim: ${slimNames.length} files in ${relative(root, slimDir)} in ${seconds} s ` +
      `(descriptors ${fullSize} -> ${bytes.length} bytes; ${stats.dependencies.length} files lost option-only imports)`);
    return { files: slimNames, stats, seconds: Number(seconds) };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Is sdk/slim-gen made from the current inputs? */
export function slimGenFresh() {
  const stampPath = join(slimDir, ".stamp");
  return existsSync(stampPath) && readFileSync(stampPath, "utf8").trim() === inputsHash();
}

let pending;
/** Regenerates sdk/slim-gen unless it is fresh (one run at a time in this process). */
export function ensureSlimGen(options = {}) {
  if (!pending) {
    pending = Promise.resolve()
      .then(() => (slimGenFresh() ? undefined : generateSlim(options)))
      .finally(() => {
        pending = undefined;
      });
  }
  return pending;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const force = process.argv.includes("--force");
  const verbose = process.argv.includes("--verbose");
  if (!force && slimGenFresh()) {
    console.log(`gen-slim: ${relative(root, slimDir)} is fresh`);
  } else {
    const { stats } = await generateSlim();
    if (verbose) console.log(`options stripped: ${stats.options} bytes\n  ${stats.dependencies.join("\n  ")}`);
  }
}
