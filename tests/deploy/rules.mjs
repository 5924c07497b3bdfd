// Writes the groups of every PrometheusRule in a rendered manifest as a Prometheus rules file
// (what `promtool check rules` / `promtool test rules` read). Used by scripts/check-deploy.sh.
//   node rules.mjs RENDERED.yaml OUT.yml     exit 1 when no PrometheusRule has groups
import fs from "node:fs";
import yaml from "js-yaml";

const [input, output] = process.argv.slice(2);
const groups = [];
const seen = new Set();
for (const doc of yaml.loadAll(fs.readFileSync(input, "utf8"))) {
  if (doc?.kind !== "PrometheusRule") continue;
  for (const g of doc.spec?.groups ?? []) {
    if (!seen.has(g.name)) {
      seen.add(g.name);
      groups.push(g);
    }
  }
}
if (!groups.length) {
  console.error(`rules.mjs: no PrometheusRule groups in ${input}`);
  process.exit(1);
}
fs.writeFileSync(output, yaml.dump({ groups }, { lineWidth: -1 }));
