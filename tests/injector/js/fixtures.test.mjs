// Fixture test: every AdmissionReview in ../fixtures goes through `sidetap-injector review`;
// the returned JSONPatch is applied with fast-json-patch (RFC 6902, validating every
// operation), the resulting pod is validated against the Kubernetes OpenAPI schema
// (kubernetes-models) plus the cross-field rules the API server enforces, and the exact
// containers, order, securityContext, env and probes are compared with what
// docs/install.md promises. The patched pod is then reviewed again: it must be skipped.
//
// usage: node fixtures.test.mjs SIDETAP_INJECTOR FIXTURES_DIR
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import jsonpatch from "fast-json-patch";
import { Pod } from "kubernetes-models/v1";

const [injector, fixturesDir] = process.argv.slice(2);
if (!injector || !fixturesDir) {
  console.error("usage: node fixtures.test.mjs SIDETAP_INJECTOR FIXTURES_DIR");
  process.exit(2);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sidetap-inj-"));
const tokenFile = path.join(tmp, "token");
fs.writeFileSync(tokenFile, "s3cr3t-ingest-token\n");
const IMAGE = "registry.example/sidetap:0.1.0-test";
const baseFlags = ["--image", IMAGE, "--pull-policy", "IfNotPresent", "--token-file", tokenFile,
  "--collector-url", "http://sidetap-collector.sidetap.svc", "--body-cap", "16384"];
const LABELLED = JSON.stringify({ "sidetap.io/inject": "enabled",
  "pod-security.kubernetes.io/enforce": "privileged" });

function review(file, { ns = LABELLED, native = "off", extra = [] } = {}) {
  const args = ["review", ...baseFlags, "--native-sidecars", native, ...extra];
  if (ns !== null) args.push("--ns-labels", ns);
  args.push(file);
  const out = execFileSync(injector, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out);
}

const expectedInitSecurity = {
  runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, privileged: false,
  allowPrivilegeEscalation: false, readOnlyRootFilesystem: false,
  capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};
const expectedProxySecurity = {
  runAsUser: 1717, runAsGroup: 1717, runAsNonRoot: true, privileged: false,
  allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" },
};
const fieldEnv = (name, fieldPath) => ({ name, valueFrom: { fieldRef: { apiVersion: "v1", fieldPath } } });
function expectedEnv(workload, bodies) {
  return [
    fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"),
    fieldEnv("POD_IP", "status.podIP"), fieldEnv("NODE_NAME", "spec.nodeName"),
    fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
    { name: "SIDETAP_WORKLOAD", value: workload },
    { name: "SIDETAP_LABELS_FILE", value: "/etc/sidetap/podinfo/labels" },
    { name: "SIDETAP_COLLECTOR_URL", value: "http://sidetap-collector.sidetap.svc" },
    { name: "SIDETAP_TOKEN", value: "s3cr3t-ingest-token" },
    { name: "SIDETAP_CAPTURE_BODIES", value: bodies ? "true" : "false" },
    { name: "SIDETAP_BODY_CAP", value: "16384" },
  ];
}
const readyz = (period, failures) => ({ httpGet: { path: "/readyz", port: 16020, scheme: "HTTP" },
  periodSeconds: period, failureThreshold: failures, timeoutSeconds: 1, successThreshold: 1 });

function expectedInit(extraArgs = [], include = "*") {
  return {
    name: "sidetap-init", image: IMAGE, imagePullPolicy: "IfNotPresent",
    command: ["/usr/local/bin/sidetap-init"],
    args: ["--proxy-uid", "1717", "--proxy-gid", "1717", "--outbound-port", "16001",
      "--inbound-port", "16006", "--dns-port", "16053", "--admin-port", "16020",
      "--include-inbound-ports", include, ...extraArgs],
    securityContext: expectedInitSecurity,
    resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "200m", memory: "64Mi" } },
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
}
function expectedProxy(workload, native, bodies = true) {
  const c = {
    name: "sidetap-proxy", image: IMAGE, imagePullPolicy: "IfNotPresent",
    command: ["/usr/local/bin/sidetap-proxy"], env: expectedEnv(workload, bodies),
    volumeMounts: [{ name: "sidetap-podinfo", mountPath: "/etc/sidetap/podinfo", readOnly: true }],
    securityContext: expectedProxySecurity,
    resources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { cpu: "1", memory: "256Mi" } },
    readinessProbe: readyz(5, 3), terminationMessagePolicy: "FallbackToLogsOnError",
  };
  if (native) {
    c.restartPolicy = "Always";
    c.startupProbe = readyz(1, 120);
  } else {
    c.lifecycle = { postStart: { exec: { command: ["/usr/local/bin/sidetap-await",
      "http://127.0.0.1:16020/readyz", "120"] } } };
  }
  return c;
}
const podinfoVolume = { name: "sidetap-podinfo", downwardAPI: { items: [{ path: "labels",
  fieldRef: { apiVersion: "v1", fieldPath: "metadata.labels" } }] } };

// The rules the API server checks beyond the schema (ValidatePodCreate), the ones a patch
// could break: unique container names, mounts of existing volumes, unique volume names,
// restartPolicy only on init containers.
function semanticCheck(pod) {
  const spec = pod.spec;
  const names = [...(spec.initContainers || []), ...spec.containers].map((c) => c.name);
  assert.equal(new Set(names).size, names.length, `duplicate container names: ${names}`);
  const vols = (spec.volumes || []).map((v) => v.name);
  assert.equal(new Set(vols).size, vols.length, `duplicate volume names: ${vols}`);
  for (const c of [...(spec.initContainers || []), ...spec.containers])
    for (const m of c.volumeMounts || [])
      assert.ok(vols.includes(m.name), `${c.name} mounts missing volume ${m.name}`);
  for (const c of spec.containers) assert.equal(c.restartPolicy, undefined, `${c.name} has restartPolicy`);
  for (const c of spec.initContainers || [])
    assert.ok(c.restartPolicy === undefined || c.restartPolicy === "Always");
}

function applyAndValidate(reviewDoc, resp) {
  const patch = JSON.parse(Buffer.from(resp.response.patch, "base64").toString("utf8"));
  const pod = structuredClone(reviewDoc.request.object);
  // validateOperation=true: every op must be well formed and its path must exist.
  const patched = jsonpatch.applyPatch(pod, patch, true, false).newDocument;
  new Pod(patched).validate();
  semanticCheck(patched);
  return { patch, patched };
}

const files = fs.readdirSync(fixturesDir).filter((f) => f.endsWith(".json")).sort();
assert.ok(files.length >= 10, "fixtures missing");
let passed = 0;
const failures = [];
function run(name, fn) {
  try {
    fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name}\n${e.stack}`);
  }
}

const workloads = {
  "guestbook-frontend": "frontend", "guestbook-redis-leader": "redis-leader",
  "guestbook-redis-follower": "redis-follower", "bookinfo-productpage": "productpage-v1",
  "bookinfo-details": "details-v1", "bookinfo-ratings": "ratings-v1",
  "bookinfo-reviews-v1": "reviews-v1", "bookinfo-reviews-v2": "reviews-v2",
  "bookinfo-reviews-v3": "reviews-v3", "etcd-statefulset": "etcd",
  "with-init-containers": "shop-api", "all-annotations": "payments", "bare-pod": "debug",
  "cronjob-pod": "report",
};

for (const file of files) {
  const name = file.replace(/\.json$/, "");
  const full = path.join(fixturesDir, file);
  const doc = JSON.parse(fs.readFileSync(full, "utf8"));
  const orig = doc.request.object;
  for (const native of [false, true]) {
    run(`${name} (${native ? "native sidecar" : "sidecar container"})`, () => {
      const resp = review(full, { native: native ? "on" : "off" });
      assert.equal(resp.apiVersion, "admission.k8s.io/v1");
      assert.equal(resp.kind, "AdmissionReview");
      assert.equal(resp.response.uid, doc.request.uid);
      assert.equal(resp.response.allowed, true);
      const ann = orig.metadata.annotations || {};
      const annNative = ann["sidetap.io/native-sidecar"];
      const isNative = annNative ? annNative === "true" : native;
      if (!isNative && orig.spec.restartPolicy !== "Always") {
        // A Job pod with a plain sidecar container would never complete: skipped.
        assert.equal(resp.response.patch, undefined);
        assert.match(resp.response.warnings[0], /restartPolicy OnFailure without native sidecars/);
        return;
      }
      assert.equal(resp.response.patchType, "JSONPatch");
      assert.equal(resp.response.warnings, undefined);
      const { patched } = applyAndValidate(doc, resp);
      const spec = patched.spec;
      const appInits = orig.spec.initContainers || [];
      const bodies = ann["sidetap.io/capture-bodies"] ? ann["sidetap.io/capture-bodies"] === "true" : true;
      let initArgs = [], include = "*";
      if (name === "all-annotations") {
        include = "8443,9090";
        initArgs = ["--exclude-inbound-ports", "9091", "--exclude-outbound-ports", "5432,6379",
          "--exclude-outbound-cidrs", "169.254.169.254/32,10.96.0.0/12,fd00::/8"];
      }
      const init = expectedInit(initArgs, include);
      const proxy = expectedProxy(workloads[name], isNative, bodies);
      if (isNative) {
        assert.deepEqual(spec.initContainers, [init, proxy, ...appInits]);
        assert.deepEqual(spec.containers, orig.spec.containers);
      } else {
        assert.deepEqual(spec.initContainers, [...appInits, init]);
        assert.deepEqual(spec.containers, [proxy, ...orig.spec.containers]);
      }
      assert.deepEqual(spec.volumes, [...(orig.spec.volumes || []), podinfoVolume]);
      // Everything else in the pod is untouched.
      const rest = structuredClone(patched);
      delete rest.spec.initContainers; delete rest.spec.containers; delete rest.spec.volumes;
      delete rest.metadata.annotations;
      const origRest = structuredClone(orig);
      delete origRest.spec.initContainers; delete origRest.spec.containers; delete origRest.spec.volumes;
      delete origRest.metadata.annotations;
      assert.deepEqual(rest, origRest);
      const status = JSON.parse(patched.metadata.annotations["sidetap.io/status"]);
      assert.deepEqual(status, {
        containers: isNative ? [] : ["sidetap-proxy"], image: IMAGE,
        initContainers: isNative ? ["sidetap-init", "sidetap-proxy"] : ["sidetap-init"],
        nativeSidecar: isNative, ports: { admin: 16020, dns: 16053, inbound: 16006, outbound: 16001 },
        version: "0.1.0", volumes: ["sidetap-podinfo"], workload: workloads[name],
      });
      for (const [k, v] of Object.entries(ann)) assert.equal(patched.metadata.annotations[k], v);
      // Idempotent: the injected pod comes back (e.g. a second webhook) and is left alone.
      const again = structuredClone(doc);
      again.request.object = patched;
      const againFile = path.join(tmp, `${name}-again.json`);
      fs.writeFileSync(againFile, JSON.stringify(again));
      const resp2 = review(againFile, { native: native ? "on" : "off" });
      assert.equal(resp2.response.patch, undefined);
      assert.match(resp2.response.warnings[0], /^sidetap: not injected: pod already has the tap/);
    });
  }
}

// Patch shapes for maps and arrays that exist or not, and "/" in annotation keys.
run("patch ops: existing annotations get an escaped key, absent ones a whole map", () => {
  const withAnn = review(path.join(fixturesDir, "all-annotations.json"));
  const p1 = JSON.parse(Buffer.from(withAnn.response.patch, "base64"));
  assert.equal(p1[0].path, "/metadata/annotations/sidetap.io~1status");
  assert.equal(p1[1].path, "/spec/volumes/-");
  const bare = review(path.join(fixturesDir, "bare-pod.json"));
  const p2 = JSON.parse(Buffer.from(bare.response.patch, "base64"));
  assert.deepEqual(p2.map((o) => [o.op, o.path]), [["add", "/metadata/annotations"],
    ["add", "/spec/volumes"], ["add", "/spec/initContainers"], ["add", "/spec/containers/0"]]);
  const inits = review(path.join(fixturesDir, "with-init-containers.json"), { native: "on" });
  const p3 = JSON.parse(Buffer.from(inits.response.patch, "base64"));
  assert.deepEqual(p3.map((o) => o.path).slice(2), ["/spec/initContainers/0", "/spec/initContainers/1"]);
});

run("token from a per-namespace Secret instead of the value", () => {
  const resp = review(path.join(fixturesDir, "bookinfo-details.json"), { extra: ["--token-secret", "sidetap-token"] });
  const { patched } = applyAndValidate(JSON.parse(fs.readFileSync(path.join(fixturesDir, "bookinfo-details.json"))), resp);
  const env = patched.spec.containers[0].env.find((e) => e.name === "SIDETAP_TOKEN");
  assert.deepEqual(env, { name: "SIDETAP_TOKEN", valueFrom: { secretKeyRef: { name: "sidetap-token", key: "token", optional: true } } });
});

fs.rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
