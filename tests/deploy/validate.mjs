// Offline validation of rendered deploy/ manifests (run by scripts/check-deploy.sh).
//
//   node validate.mjs [--certrelay BIN] [--metrics FILE] [--work DIR] NAME=RENDERED.yaml...
//
// NAME is the overlay ("edge"), or CASE/overlay when several trees are checked in one run
// (the negative test); every finding names it.
//
// Layers, each reported separately; any finding makes the exit status 1:
//   models   kubernetes-models 5.1.0 validators (types, required fields, apiVersion/kind)
//   types    the objects as TypeScript literals typed with kubernetes-types 1.30.0, `tsc
//            --noEmit`: excess-property check, so a misspelt field (readOnlyRootFileSystem)
//            fails
//   crds     our own checks of ServiceMonitor, PrometheusRule and Certificate (the schema
//            validators do not know them), metric names against proxy/metrics.cpp
//   policy   what the schemas miss: enums, port ranges, images, restricted securityContext,
//            probes on the admin port, preStop, no subPath, no nested mounts, the grace period
//            against certrelay's shutdown.delay + shutdown.timeout, cross references
//   config   each certrelay config as mounted, run through `certrelay --check-config` in a
//            directory laid out like the pod (with a throwaway certificate and ticket keys)
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opts = { inputs: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--certrelay" || a === "--metrics" || a === "--work") {
    opts[a.slice(2)] = args[++i];
  } else {
    const eq = a.indexOf("=");
    if (eq < 1) {
      console.error(`validate.mjs: bad argument ${a} (NAME=FILE expected)`);
      process.exit(2);
    }
    opts.inputs.push({ name: a.slice(0, eq), file: a.slice(eq + 1) });
  }
}
const work = opts.work ?? fs.mkdtempSync("/tmp/check-deploy-");
fs.mkdirSync(work, { recursive: true });

const findings = [];
const problem = (layer, where, msg) => findings.push({ layer, where, msg });
const timings = [];
const timed = async (label, fn) => {
  const t0 = process.hrtime.bigint();
  await fn();
  timings.push(`${label} ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s`);
};

// --- load ---
const objects = []; // { overlay, obj, id }
for (const { name, file } of opts.inputs) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, "utf8"));
  } catch (e) {
    problem("parse", name, e.message);
    continue;
  }
  for (const obj of docs) {
    if (obj === null || obj === undefined) continue;
    const id = `${name}: ${obj.kind}/${obj.metadata?.name ?? "?"}`;
    objects.push({ overlay: name, obj, id });
  }
  if (!docs.length) problem("parse", name, "rendered nothing");
}

const CRDS = {
  "monitoring.coreos.com/v1/ServiceMonitor": checkServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": checkPrometheusRule,
  "cert-manager.io/v1/Certificate": checkCertificate,
};
const isCrd = (o) => `${o.apiVersion}/${o.kind}` in CRDS;

// --- models ---
await timed("models", async () => {
  for (const { obj, id } of objects) {
    if (isCrd(obj)) continue;
    const [group, version] = obj.apiVersion?.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
    let Model;
    try {
      Model = (await import(mod))[obj.kind];
    } catch {
      Model = undefined;
    }
    if (typeof Model !== "function") {
      problem("models", id, `unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      const errs = e.errors ?? [{ instancePath: "", message: e.message }];
      for (const err of errs) problem("models", id, `${err.instancePath || "/"} ${err.message}`);
    }
  }
});

// --- types (tsc excess-property check) ---
const TYPE_MODULES = {
  "": "core", apps: "apps", batch: "batch", policy: "policy", autoscaling: "autoscaling",
  "rbac.authorization.k8s.io": "rbac", "networking.k8s.io": "networking",
  "discovery.k8s.io": "discovery", "storage.k8s.io": "storage",
};
await timed("types", async () => {
  const imports = new Map();
  const lines = [];
  const lineOwner = [];
  objects.forEach(({ obj, id }, i) => {
    if (isCrd(obj)) return;
    const [group, version] = obj.apiVersion?.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const dir = TYPE_MODULES[group];
    if (!dir) {
      problem("types", id, `no kubernetes-types module for apiVersion ${obj.apiVersion}`);
      return;
    }
    const alias = `${dir}_${version}`;
    imports.set(alias, `kubernetes-types/${dir}/${version}`);
    const body = JSON.stringify(obj, null, 2).split("\n");
    body[0] = `export const o${i}: ${alias}.${obj.kind} = ${body[0]}`;
    body[body.length - 1] += ";";
    for (const l of body) {
      lines.push(l);
      lineOwner.push(id);
    }
  });
  const head = [...imports].map(([alias, mod]) => `import type * as ${alias} from "${mod}";`);
  // Under node_modules (ignored by git), so that "kubernetes-types/..." resolves from it.
  const tsDir = path.join(here, "node_modules", ".check-deploy");
  fs.mkdirSync(tsDir, { recursive: true });
  const tsFile = path.join(tsDir, `rendered-${process.pid}.ts`);
  fs.writeFileSync(tsFile, [...head, ...lines].join("\n") + "\n");
  const tsc = path.join(here, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck", "--pretty", "false",
    "--target", "es2022", "--lib", "es5", "--module", "nodenext", "--moduleResolution", "nodenext", tsFile],
  { encoding: "utf8", cwd: here });
  if (!process.env.KEEP_TS) fs.rmSync(tsFile, { force: true });
  if (r.status !== 0) {
    const out = (r.stdout + r.stderr).trim().split("\n");
    for (const l of out) {
      const m = l.match(/\.ts\((\d+),\d+\): (error .*)$/);
      if (m) {
        const n = Number(m[1]) - head.length - 1;
        problem("types", lineOwner[n] ?? "?", `${m[2]} [line: ${lines[n]?.trim()}]`);
      } else if (l.trim() && !l.startsWith(" ")) {
        problem("types", "tsc", l);
      }
    }
    if (!out.length || (out.length === 1 && !out[0])) problem("types", "tsc", `exit ${r.status}`);
  }
});

// --- helpers over the rendered objects ---
const byKind = (overlay, kind) => objects.filter((o) => o.overlay === overlay && o.obj.kind === kind);
const matches = (selector, labels) =>
  selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const WORKLOADS = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"];
const templateCache = new Map();
function podTemplates(overlay) {
  if (templateCache.has(overlay)) return templateCache.get(overlay);
  const out = [];
  templateCache.set(overlay, out);
  for (const o of objects.filter((x) => x.overlay === overlay && WORKLOADS.includes(x.obj.kind))) {
    const t = o.obj.kind === "CronJob" ? o.obj.spec?.jobTemplate?.spec?.template : o.obj.spec?.template;
    if (t) out.push({ ...o, template: t });
  }
  return out;
}
const DURATION_UNITS = { ms: 0.001, s: 1, m: 60, h: 3600 };
function seconds(v) {
  if (typeof v === "number") return v;
  const m = String(v).match(/^(\d+)(ms|s|m|h)$/);
  return m ? Number(m[1]) * DURATION_UNITS[m[2]] : NaN;
}
// Enough TOML for certrelay's own config files: [section], [[array-of-tables]], key = scalar
// or array on one line, comments. The real parser is `certrelay --check-config` (config layer).
function parseToml(text) {
  const root = {};
  let cur = root;
  for (let raw of text.split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "").trim();
    if (!line) continue;
    let m;
    if ((m = line.match(/^\[\[([\w.]+)\]\]$/))) {
      (root[m[1]] ??= []).push((cur = {}));
    } else if ((m = line.match(/^\[([\w.]+)\]$/))) {
      cur = root[m[1]] ??= {};
    } else if ((m = line.match(/^([\w]+)\s*=\s*(.+)$/))) {
      let v = m[2];
      try {
        v = JSON.parse(v);
      } catch {
        /* leave as text */
      }
      cur[m[1]] = v;
    }
  }
  return root;
}
const portOf = (address) => Number(String(address).match(/:(\d+)$/)?.[1]);

// --- crds ---
let knownMetrics = null;
if (opts.metrics) {
  const src = fs.readFileSync(opts.metrics, "utf8");
  knownMetrics = new Set();
  for (const [, n] of src.matchAll(/"(certrelay_[a-z0-9_]+)"/g)) {
    knownMetrics.add(n);
    if (n.endsWith("_seconds") && /Duration|duration/.test(src.slice(src.indexOf(n) - 60, src.indexOf(n)))) {
      for (const s of ["_bucket", "_sum", "_count"]) knownMetrics.add(n + s);
    }
  }
}
function checkMetricNames(id, text, what) {
  if (!knownMetrics) return;
  for (const [n] of String(text).matchAll(/certrelay_[a-z0-9_]+/g)) {
    if (!knownMetrics.has(n)) problem("crds", id, `${what}: unknown metric ${n} (not in proxy/metrics.cpp)`);
  }
}
function requireFields(id, obj, fields) {
  for (const f of fields) {
    const v = f.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
    if (v === undefined || v === null || v === "") problem("crds", id, `missing ${f}`);
  }
}
function onlyKeys(id, where, obj, allowed) {
  for (const k of Object.keys(obj ?? {})) {
    if (!allowed.includes(k)) problem("crds", id, `${where}: unknown field ${k}`);
  }
}
function checkServiceMonitor({ obj, id, overlay }) {
  requireFields(id, obj, ["metadata.name", "spec.selector", "spec.endpoints"]);
  onlyKeys(id, "spec", obj.spec, ["selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
    "podTargetLabels", "sampleLimit", "attachMetadata"]);
  const sel = obj.spec?.selector?.matchLabels;
  const services = byKind(overlay, "Service").filter((s) => matches(sel, s.obj.metadata?.labels));
  if (!services.length) problem("crds", id, "spec.selector.matchLabels selects no Service");
  for (const [i, ep] of (obj.spec?.endpoints ?? []).entries()) {
    onlyKeys(id, `spec.endpoints[${i}]`, ep, ["port", "targetPort", "path", "scheme", "interval",
      "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings", "tlsConfig", "params"]);
    if (!ep.port && !ep.targetPort) problem("crds", id, `spec.endpoints[${i}] needs port or targetPort`);
    if (ep.port && !services.some((s) => (s.obj.spec?.ports ?? []).some((p) => p.name === ep.port))) {
      problem("crds", id, `spec.endpoints[${i}].port ${ep.port} is no port name of the selected Service`);
    }
    for (const d of ["interval", "scrapeTimeout"]) {
      if (ep[d] !== undefined && !/^\d+(ms|s|m|h)$/.test(ep[d])) problem("crds", id, `endpoints[${i}].${d} ${ep[d]}`);
    }
  }
}
function checkPrometheusRule({ obj, id }) {
  requireFields(id, obj, ["metadata.name", "spec.groups"]);
  onlyKeys(id, "spec", obj.spec, ["groups"]);
  for (const [gi, g] of (obj.spec?.groups ?? []).entries()) {
    onlyKeys(id, `groups[${gi}]`, g, ["name", "interval", "rules", "partial_response_strategy", "limit"]);
    if (!g.name) problem("crds", id, `groups[${gi}] has no name`);
    if (!Array.isArray(g.rules) || !g.rules.length) problem("crds", id, `groups[${gi}] has no rules`);
    for (const [ri, r] of (g.rules ?? []).entries()) {
      const where = `${g.name}[${ri}]${r.alert ? " " + r.alert : ""}`;
      onlyKeys(id, where, r, ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]);
      if (!!r.alert === !!r.record) problem("crds", id, `${where}: exactly one of alert and record`);
      if (typeof r.expr !== "string" || !r.expr.trim()) problem("crds", id, `${where}: no expr`);
      checkMetricNames(id, r.expr, where);
      if (r.alert) {
        if (!["critical", "warning", "info"].includes(r.labels?.severity)) {
          problem("crds", id, `${where}: labels.severity must be critical, warning or info`);
        }
        if (!r.annotations?.summary) problem("crds", id, `${where}: annotations.summary missing`);
      }
    }
  }
}
function checkCertificate({ obj, id, overlay }) {
  requireFields(id, obj, ["metadata.name", "spec.secretName", "spec.issuerRef.name"]);
  onlyKeys(id, "spec", obj.spec, ["secretName", "secretTemplate", "dnsNames", "ipAddresses", "uris",
    "emailAddresses", "commonName", "duration", "renewBefore", "renewBeforePercentage", "privateKey",
    "usages", "issuerRef", "subject", "isCA", "keystores", "literalSubject", "revisionHistoryLimit",
    "additionalOutputFormats", "nameConstraints", "otherNames", "encodeUsagesInRequest"]);
  if (!obj.spec?.dnsNames?.length && !obj.spec?.commonName && !obj.spec?.ipAddresses?.length) {
    problem("crds", id, "spec needs dnsNames (or commonName / ipAddresses)");
  }
  const ref = obj.spec?.issuerRef ?? {};
  if (ref.kind && !["Issuer", "ClusterIssuer"].includes(ref.kind)) problem("crds", id, `issuerRef.kind ${ref.kind}`);
  const pk = obj.spec?.privateKey ?? {};
  if (pk.algorithm && !["RSA", "ECDSA", "Ed25519"].includes(pk.algorithm)) problem("crds", id, `privateKey.algorithm ${pk.algorithm}`);
  if (pk.rotationPolicy && !["Never", "Always"].includes(pk.rotationPolicy)) problem("crds", id, `privateKey.rotationPolicy ${pk.rotationPolicy}`);
  for (const d of ["duration", "renewBefore"]) {
    if (obj.spec?.[d] !== undefined && !/^(\d+(h|m|s))+$/.test(obj.spec[d])) problem("crds", id, `spec.${d} ${obj.spec[d]}`);
  }
  const used = podTemplates(overlay).some((w) =>
    (w.template.spec?.volumes ?? []).some((v) => v.secret?.secretName === obj.spec?.secretName));
  if (!used) problem("crds", id, `secretName ${obj.spec?.secretName} is mounted by no pod`);
}
await timed("crds", async () => {
  for (const o of objects) if (isCrd(o.obj)) CRDS[`${o.obj.apiVersion}/${o.obj.kind}`](o);
  for (const o of objects) {
    if (o.obj.kind === "ConfigMap" && o.obj.metadata?.labels?.grafana_dashboard) {
      for (const [k, v] of Object.entries(o.obj.data ?? {})) {
        let dash;
        try {
          dash = JSON.parse(v);
        } catch (e) {
          problem("crds", o.id, `${k}: not JSON: ${e.message}`);
          continue;
        }
        if (!dash.uid || !dash.title || !Array.isArray(dash.panels)) problem("crds", o.id, `${k}: no uid/title/panels`);
        for (const p of dash.panels ?? []) {
          for (const t of p.targets ?? []) checkMetricNames(o.id, t.expr, `${k} panel "${p.title}"`);
        }
      }
    }
  }
});

// --- policy ---
const RESTART_POD = ["Always", "OnFailure", "Never"];
const PROTOCOLS = ["TCP", "UDP", "SCTP"];
const PULL = ["Always", "IfNotPresent", "Never"];
const isPort = (p) => Number.isInteger(p) && p >= 1 && p <= 65535;
// Containers allowed outside Pod Security "restricted", with the reason documented next to them.
const RESTRICTED_EXCEPTIONS = { postfix: "Postfix's master runs as root (deploy/sidecar/statefulset.yaml)" };
const isCertrelay = (c) => /(^|\/)certrelay(:|@|$)/.test(c.image ?? "") || c.name === "certrelay";

function checkRestricted(id, c, podSc) {
  const sc = c.securityContext ?? {};
  const where = `container ${c.name}`;
  const nonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
  if (nonRoot !== true) problem("policy", id, `${where}: runAsNonRoot must be true`);
  if ((sc.runAsUser ?? podSc.runAsUser) === 0) problem("policy", id, `${where}: runAsUser 0`);
  if (sc.allowPrivilegeEscalation !== false) problem("policy", id, `${where}: allowPrivilegeEscalation must be false`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) problem("policy", id, `${where}: capabilities.drop must contain ALL`);
  for (const cap of sc.capabilities?.add ?? []) {
    if (cap !== "NET_BIND_SERVICE") problem("policy", id, `${where}: capability ${cap} is not allowed under restricted`);
  }
  const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
  if (!["RuntimeDefault", "Localhost"].includes(seccomp)) problem("policy", id, `${where}: seccompProfile must be RuntimeDefault`);
  if (sc.readOnlyRootFilesystem !== true) problem("policy", id, `${where}: readOnlyRootFilesystem must be true`);
  if (sc.privileged) problem("policy", id, `${where}: privileged`);
}

function probePort(c, probe) {
  const p = probe?.httpGet?.port;
  if (typeof p === "number") return p;
  return (c.ports ?? []).find((x) => x.name === p)?.containerPort;
}

function certrelayConfig(overlay, c, volumes) {
  const a = c.args ?? [];
  const i = a.findIndex((x) => x === "--config" || x === "-c");
  const file = i >= 0 ? a[i + 1] : "/etc/certrelay/certrelay.toml";
  const mount = (c.volumeMounts ?? []).find((m) => path.dirname(file) === m.mountPath);
  const vol = mount && volumes.find((v) => v.name === mount.name);
  const cm = vol?.configMap && byKind(overlay, "ConfigMap").find((x) => x.obj.metadata.name === vol.configMap.name);
  const text = cm?.obj.data?.[path.basename(file)];
  return { file, text };
}

function envValue(c, name) {
  return (c.env ?? []).find((e) => e.name === name)?.value;
}

await timed("policy", async () => {
  for (const { name: overlay } of opts.inputs) {
    const services = byKind(overlay, "Service");
    const configMaps = new Set(byKind(overlay, "ConfigMap").map((x) => x.obj.metadata.name));
    const secrets = new Set([
      ...byKind(overlay, "Secret").map((x) => x.obj.metadata.name),
      ...byKind(overlay, "Certificate").map((x) => x.obj.spec?.secretName),
    ]);
    const hpaTargets = byKind(overlay, "HorizontalPodAutoscaler").map((x) => x.obj.spec?.scaleTargetRef);
    const templates = podTemplates(overlay);
    let certrelayPods = 0;

    for (const w of templates) {
      const { id, template, obj } = w;
      const spec = template.spec ?? {};
      const podSc = spec.securityContext ?? {};
      const isJob = obj.kind === "Job" || obj.kind === "CronJob";
      if (spec.restartPolicy !== undefined && !RESTART_POD.includes(spec.restartPolicy)) {
        problem("policy", id, `restartPolicy ${spec.restartPolicy} (one of ${RESTART_POD.join(", ")})`);
      }
      if (isJob && spec.restartPolicy === "Always") problem("policy", id, "a Job's pods cannot restartPolicy Always");
      if (!isJob && spec.restartPolicy && spec.restartPolicy !== "Always") {
        problem("policy", id, `${obj.kind} pods must restartPolicy Always`);
      }
      if (obj.kind === "CronJob" && !["Allow", "Forbid", "Replace", undefined].includes(obj.spec?.concurrencyPolicy)) {
        problem("policy", id, `concurrencyPolicy ${obj.spec.concurrencyPolicy}`);
      }
      if (obj.spec?.selector?.matchLabels && !matches(obj.spec.selector.matchLabels, template.metadata?.labels)) {
        problem("policy", id, "spec.selector does not match the pod template's labels");
      }
      if (obj.kind === "Deployment" && hpaTargets.some((t) => t?.kind === "Deployment" && t?.name === obj.metadata.name)
        && obj.spec?.replicas !== undefined) {
        problem("policy", id, "replicas set on a Deployment an HPA scales (they fight on every apply)");
      }
      const volumes = spec.volumes ?? [];
      const volumeNames = new Set([...volumes.map((v) => v.name),
        ...(obj.spec?.volumeClaimTemplates ?? []).map((v) => v.metadata?.name)]);
      for (const v of volumes) {
        if (v.configMap && !configMaps.has(v.configMap.name) && !v.configMap.optional) {
          problem("policy", id, `volume ${v.name}: ConfigMap ${v.configMap.name} is not rendered`);
        }
        if (v.secret && !secrets.has(v.secret.secretName) && !v.secret.optional) {
          problem("policy", id, `volume ${v.name}: Secret ${v.secret.secretName} is neither rendered nor issued by a Certificate`);
        }
      }
      const sidecars = (spec.initContainers ?? []).filter((c) => c.restartPolicy !== undefined);
      const all = [...(spec.initContainers ?? []).map((c) => ({ c, init: true })),
        ...(spec.containers ?? []).map((c) => ({ c, init: false }))];
      let certrelayConf = null;
      for (const { c, init } of all) {
        const where = `container ${c.name}`;
        if (c.restartPolicy !== undefined) {
          if (!init) problem("policy", id, `${where}: restartPolicy is only for init containers`);
          else if (c.restartPolicy !== "Always") problem("policy", id, `${where}: restartPolicy ${c.restartPolicy} (only Always)`);
        }
        if (!c.image || typeof c.image !== "string") {
          problem("policy", id, `${where}: no image`);
        } else if (!/^[^/]+(\.[^/]+)+\/.+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/.test(c.image)) {
          problem("policy", id, `${where}: image ${c.image} is not REGISTRY/NAME:TAG (missing kustomize images: entry?)`);
        } else if (/:latest$/.test(c.image)) {
          problem("policy", id, `${where}: image ${c.image} uses :latest`);
        }
        if (c.imagePullPolicy && !PULL.includes(c.imagePullPolicy)) problem("policy", id, `${where}: imagePullPolicy ${c.imagePullPolicy}`);
        const names = new Set();
        for (const p of c.ports ?? []) {
          if (!isPort(p.containerPort)) problem("policy", id, `${where}: containerPort ${p.containerPort} outside 1..65535`);
          if (p.hostPort !== undefined) problem("policy", id, `${where}: hostPort`);
          if (p.protocol && !PROTOCOLS.includes(p.protocol)) problem("policy", id, `${where}: protocol ${p.protocol}`);
          if (p.name && (p.name.length > 15 || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(p.name))) {
            problem("policy", id, `${where}: port name ${p.name} is not an IANA_SVC_NAME`);
          }
          if (p.name && names.has(p.name)) problem("policy", id, `${where}: port name ${p.name} twice`);
          names.add(p.name);
        }
        const mounts = c.volumeMounts ?? [];
        for (const m of mounts) {
          if (m.subPath !== undefined || m.subPathExpr !== undefined) {
            problem("policy", id, `${where}: volumeMount ${m.name} uses subPath (never updated; mount the whole directory)`);
          }
          if (!volumeNames.has(m.name)) problem("policy", id, `${where}: volumeMount ${m.name} names no volume`);
        }
        for (const a of mounts) {
          for (const b of mounts) {
            if (a === b) continue;
            const pa = path.posix.normalize(a.mountPath ?? "") + "/";
            const pb = path.posix.normalize(b.mountPath ?? "") + "/";
            if (pa === pb && mounts.indexOf(a) < mounts.indexOf(b)) problem("policy", id, `${where}: two mounts at ${a.mountPath}`);
            else if (pb.startsWith(pa) && pa !== pb) {
              problem("policy", id, `${where}: mount ${b.mountPath} is nested in mount ${a.mountPath} (use sibling paths)`);
            }
          }
        }
        for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          const pr = c[kind];
          if (!pr) continue;
          const hp = pr.httpGet;
          if (hp && typeof hp.port === "number" && !isPort(hp.port)) problem("policy", id, `${where}: ${kind} port ${hp.port}`);
          if (hp && typeof hp.port === "string" && !(c.ports ?? []).some((p) => p.name === hp.port)) {
            problem("policy", id, `${where}: ${kind} port ${hp.port} is no port name of the container`);
          }
        }
        const sleep = c.lifecycle?.preStop?.sleep?.seconds;
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        if (sleep !== undefined && !(sleep < grace)) {
          problem("policy", id, `${where}: preStop sleep ${sleep} s is not below terminationGracePeriodSeconds ${grace}`);
        }
        if (RESTRICTED_EXCEPTIONS[c.name] && !isCertrelay(c)) {
          if (c.securityContext?.privileged) problem("policy", id, `${where}: privileged`);
          if (c.securityContext?.allowPrivilegeEscalation !== false) problem("policy", id, `${where}: allowPrivilegeEscalation must be false`);
          if (!(c.securityContext?.capabilities?.drop ?? []).includes("ALL")) problem("policy", id, `${where}: capabilities.drop must contain ALL`);
        } else {
          checkRestricted(id, c, podSc);
        }
        if (!isCertrelay(c)) continue;

        // certrelay itself
        certrelayPods++;
        const sidecar = init && c.restartPolicy === "Always";
        if (init && !sidecar) problem("policy", id, `${where}: certrelay as a plain init container would never serve`);
        const { file, text } = certrelayConfig(overlay, c, volumes);
        if (!text) {
          problem("policy", id, `${where}: its config ${file} is not in a mounted ConfigMap`);
          continue;
        }
        const conf = parseToml(text);
        certrelayConf = { c, conf, text, file, volumes, id, sidecar };
        w.certrelay = certrelayConf;
        const adminPort = portOf(conf.admin?.address);
        if (!adminPort) problem("policy", id, `${where}: ${file} has no [admin] address (probes need it)`);
        const adminName = (c.ports ?? []).find((p) => p.containerPort === adminPort)?.name;
        if (adminPort && !adminName) problem("policy", id, `${where}: no containerPort for the admin port ${adminPort}`);
        for (const l of conf.listener ?? []) {
          const lp = portOf(l.address);
          if (!(c.ports ?? []).some((p) => p.containerPort === lp)) {
            problem("policy", id, `${where}: listener ${l.name} port ${lp} has no containerPort`);
          }
          if (lp < 1024) problem("policy", id, `${where}: listener ${l.name} port ${lp} < 1024 needs a capability`);
        }
        const want = { startupProbe: ["/livez", "/healthz"], livenessProbe: ["/livez", "/healthz"], readinessProbe: ["/readyz"] };
        if (!sidecar) want.startupProbe.push("/readyz");
        for (const [kind, paths] of Object.entries(want)) {
          const pr = c[kind];
          if (!pr?.httpGet) {
            problem("policy", id, `${where}: ${kind} must be an httpGet on the admin port`);
            continue;
          }
          if (probePort(c, pr) !== adminPort) problem("policy", id, `${where}: ${kind} is not on the admin port ${adminPort}`);
          if (!paths.includes(pr.httpGet.path)) {
            problem("policy", id, `${where}: ${kind} path ${pr.httpGet.path} (expected ${paths.join(" or ")})` +
              (sidecar && kind === "startupProbe" ? "; a sidecar's startupProbe gates Postfix, which /readyz waits for" : ""));
          }
        }
        const cmd = c.lifecycle?.preStop?.exec?.command ?? [];
        const drains = cmd.includes("ctl") && cmd.includes("drain");
        if (sidecar && !drains) problem("policy", id, `${where}: a sidecar certrelay needs preStop.exec certrelay ctl drain`);
        if (sidecar && drains && !cmd.some((x) => x === file)) problem("policy", id, `${where}: preStop ctl drain must name the config (-c ${file})`);
        if (sidecar && drains && !/(^|\/)certrelay$/.test(cmd[0])) problem("policy", id, `${where}: preStop runs ${cmd[0]}, not certrelay`);
        if (!sidecar && c.lifecycle?.preStop) {
          problem("policy", id, `${where}: no preStop for a plain container (SIGTERM drains; the SIGTERM after a preStop drain means stop fast)`);
        }
        const delay = seconds(envValue(c, "CERTRELAY_SHUTDOWN_DELAY") ?? conf.shutdown?.delay ?? "5s");
        const timeout = seconds(envValue(c, "CERTRELAY_SHUTDOWN_TIMEOUT") ?? conf.shutdown?.timeout ?? conf.timeouts?.shutdown ?? "30s");
        if (!(grace > delay + timeout)) {
          problem("policy", id, `terminationGracePeriodSeconds ${grace} must exceed shutdown.delay + shutdown.timeout = ${delay + timeout}`);
        }
        if (sidecar) {
          for (const app of spec.containers ?? []) {
            const s = app.lifecycle?.preStop?.sleep?.seconds;
            if (s === undefined) problem("policy", id, `container ${app.name}: needs preStop.sleep so the backend outlives certrelay's drain`);
            else if (s < timeout) problem("policy", id, `container ${app.name}: preStop sleep ${s} s < certrelay shutdown.timeout ${timeout} s`);
          }
        }
      }
      if (sidecars.length && !certrelayConf) problem("policy", id, "native sidecar without certrelay");
    }
    if (!certrelayPods) problem("policy", overlay, "no certrelay container rendered");

    for (const s of services) {
      const { id, obj } = s;
      const spec = obj.spec ?? {};
      const type = spec.type ?? "ClusterIP";
      if (!["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].includes(type)) problem("policy", id, `type ${type}`);
      if (spec.externalTrafficPolicy && !["Local", "Cluster"].includes(spec.externalTrafficPolicy)) {
        problem("policy", id, `externalTrafficPolicy ${spec.externalTrafficPolicy}`);
      }
      if (type === "LoadBalancer" && spec.externalTrafficPolicy !== "Local") {
        problem("policy", id, "a public SMTP Service needs externalTrafficPolicy: Local (else client addresses are lost)");
      }
      const pods = spec.selector ? templates.filter((t) => matches(spec.selector, t.template.metadata?.labels)) : [];
      if (spec.selector && !pods.length) problem("policy", id, "selector matches no pod template");
      for (const p of spec.ports ?? []) {
        if (!isPort(p.port)) problem("policy", id, `port ${p.port} outside 1..65535`);
        if (p.protocol && !PROTOCOLS.includes(p.protocol)) problem("policy", id, `protocol ${p.protocol}`);
        if (typeof p.targetPort === "number" && !isPort(p.targetPort)) problem("policy", id, `targetPort ${p.targetPort}`);
        if (typeof p.targetPort === "string" && pods.length) {
          for (const t of pods) {
            const cs = [...(t.template.spec?.initContainers ?? []), ...(t.template.spec?.containers ?? [])];
            if (!cs.some((c) => (c.ports ?? []).some((q) => q.name === p.targetPort))) {
              problem("policy", id, `targetPort ${p.targetPort} is no named port of ${t.id}`);
            }
          }
        }
      }
    }
    for (const { id, obj } of byKind(overlay, "PodDisruptionBudget")) {
      if (!templates.some((t) => matches(obj.spec?.selector?.matchLabels, t.template.metadata?.labels))) {
        problem("policy", id, "selector matches no pod template");
      }
    }
    for (const { id, obj } of byKind(overlay, "HorizontalPodAutoscaler")) {
      const t = obj.spec?.scaleTargetRef;
      if (!templates.some((w) => w.obj.kind === t?.kind && w.obj.metadata.name === t?.name)) {
        problem("policy", id, `scaleTargetRef ${t?.kind}/${t?.name} is not rendered`);
      }
      if (!(obj.spec?.minReplicas >= 2)) problem("policy", id, "minReplicas below 2 leaves no replica during a drain");
    }
    for (const { id, obj } of byKind(overlay, "Role")) {
      for (const r of obj.rules ?? []) {
        if ((r.resources ?? []).includes("secrets") && !(r.resourceNames ?? []).length) {
          problem("policy", id, "a rule on secrets must be limited by resourceNames");
        }
        if ((r.verbs ?? []).some((v) => ["*", "list", "watch", "create", "delete"].includes(v)) && (r.resources ?? []).includes("secrets")) {
          problem("policy", id, `secrets verbs ${r.verbs.join(",")}: only get and patch are needed`);
        }
      }
    }
    for (const { id, obj } of byKind(overlay, "NetworkPolicy")) {
      for (const r of obj.spec?.ingress ?? []) {
        for (const p of r.ports ?? []) {
          if (typeof p.port === "number" && !isPort(p.port)) problem("policy", id, `port ${p.port}`);
          if (p.port === 9901 && !(r.from ?? []).length) problem("policy", id, "the admin port is open to everyone");
        }
      }
    }
  }
});

// --- config (certrelay --check-config on each config as mounted) ---
if (opts.certrelay) {
  await timed("config", async () => {
    const pki = path.join(work, "pki");
    fs.mkdirSync(pki, { recursive: true });
    const key = path.join(pki, "tls.key");
    const crt = path.join(pki, "tls.crt");
    const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=mx.example.com"], { encoding: "utf8" });
    if (r.status !== 0) {
      problem("config", "openssl", r.stderr.trim());
      return;
    }
    for (const { name: overlay } of opts.inputs) {
      for (const w of podTemplates(overlay)) {
        const cr = w.certrelay;
        if (!cr) continue;
        const root = path.join(work, "pod", overlay, w.obj.metadata.name);
        fs.rmSync(root, { recursive: true, force: true });
        for (const m of cr.c.volumeMounts ?? []) {
          const dir = path.join(root, m.mountPath);
          fs.mkdirSync(dir, { recursive: true });
          const v = cr.volumes.find((x) => x.name === m.name) ?? {};
          if (v.configMap) {
            const cm = byKind(overlay, "ConfigMap").find((x) => x.obj.metadata.name === v.configMap.name);
            for (const [k, val] of Object.entries(cm?.obj.data ?? {})) fs.writeFileSync(path.join(dir, k), val);
          } else if (v.secret) {
            // The Secrets come from the cluster: the cert-manager layout, or 80-byte ticket keys.
            const issued = byKind(overlay, "Certificate").some((x) => x.obj.spec?.secretName === v.secret.secretName);
            if (issued) {
              fs.copyFileSync(crt, path.join(dir, "tls.crt"));
              fs.copyFileSync(key, path.join(dir, "tls.key"));
            } else {
              for (const k of ["current.key", "next.key", "previous.key"]) fs.writeFileSync(path.join(dir, k), randomBytes(80));
            }
          }
        }
        const env = { PATH: process.env.PATH };
        const fake = { POD_NAME: `${w.obj.metadata.name}-0` };
        for (const e of cr.c.env ?? []) {
          let val = e.value ?? fake[e.name] ?? "";
          val = val.replace(/\$\(([A-Z0-9_]+)\)/g, (_, n) =>
            fake[n] ?? (n.endsWith("_SERVICE_HOST") ? "10.96.0.25" : `$(${n})`));
          fake[e.name] = val;
          if (e.name.startsWith("CERTRELAY_")) env[e.name] = val;
        }
        const res = spawnSync(opts.certrelay, ["--check-config", "-c", path.join(root, cr.file)], { env, encoding: "utf8" });
        const out = (res.stdout + res.stderr).trim().replaceAll(root, "");
        if (res.status !== 0) problem("config", cr.id, `certrelay --check-config: ${out}`);
        else timings.push(`config ${overlay} ${w.obj.metadata.name}: ${out.split("\n").pop()}`);
      }
    }
  });
}

// --- report ---
const layers = ["parse", "models", "types", "crds", "policy", "config"];
console.log(`validate: ${objects.length} objects from ${opts.inputs.map((i) => i.name).join(", ")}`);
for (const t of timings) console.log(`  ${t}`);
for (const l of layers) {
  const f = findings.filter((x) => x.layer === l);
  for (const x of f) console.log(`FAIL [${l}] ${x.where}: ${x.msg}`);
}
if (findings.length) {
  console.log(`validate: ${findings.length} finding(s) in layer(s) ${[...new Set(findings.map((x) => x.layer))].join(", ")}`);
  process.exit(1);
}
console.log("validate: OK");
