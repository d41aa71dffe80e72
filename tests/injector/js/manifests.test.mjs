// Manifest test: renders manifests/ the way `kubectl apply -k` does (a small renderer for
// what kustomization.yaml uses: resources, images, replacements), compares the result with
// `kubectl kustomize` when kubectl is installed, validates every object against the
// Kubernetes OpenAPI schema (kubernetes-models), and checks the promises of
// docs/install.md: webhook settings and selectors, least-privilege RBAC, no host
// privileges, ports wired end to end, one image everywhere.
//
// usage: node manifests.test.mjs MANIFESTS_DIR
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as admission from "kubernetes-models/admissionregistration.k8s.io/v1";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node manifests.test.mjs MANIFESTS_DIR");
  process.exit(2);
}

// ---- the renderer -----------------------------------------------------------------------
function parseFieldPath(fp) {
  // "spec.template.spec.containers.[name=injector].env.[name=SIDETAP_IMAGE].value"
  return fp.split(".").map((seg) => {
    const m = /^\[(\w+)=(.*)\]$/.exec(seg);
    return m ? { key: m[1], value: m[2] } : seg;
  });
}
function walk(obj, segs, set) {
  let cur = obj;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    if (typeof seg === "object") {
      assert.ok(Array.isArray(cur), `selector ${seg.key}=${seg.value} on a non-list`);
      cur = cur.find((x) => String(x[seg.key]) === seg.value);
      assert.ok(cur !== undefined, `no element ${seg.key}=${seg.value}`);
    } else if (last && set !== undefined) {
      cur[seg] = set;
      return set;
    } else {
      cur = cur[seg];
      assert.ok(cur !== undefined, `no field ${seg}`);
    }
  }
  return cur;
}
function render(kdir) {
  const k = YAML.parse(fs.readFileSync(path.join(kdir, "kustomization.yaml"), "utf8"));
  assert.equal(k.kind, "Kustomization");
  const known = new Set(["apiVersion", "kind", "resources", "images", "replacements"]);
  for (const key of Object.keys(k)) assert.ok(known.has(key), `renderer does not handle ${key}`);
  const objs = [];
  for (const r of k.resources) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(kdir, r), "utf8"))) {
      assert.equal(doc.errors.length, 0, `${r}: ${doc.errors}`);
      const o = doc.toJS();
      if (o) objs.push(o);
    }
  }
  for (const img of k.images || []) {
    for (const o of objs) {
      const spec = o.spec?.template?.spec || o.spec;
      for (const c of [...(spec?.initContainers || []), ...(spec?.containers || [])]) {
        const name = c.image.replace(/[:@].*$/, "");
        if (name === img.name) c.image = `${img.newName || img.name}:${img.newTag}`;
      }
    }
  }
  for (const rep of k.replacements || []) {
    const src = objs.find((o) => o.kind === rep.source.kind && o.metadata.name === rep.source.name);
    const value = walk(src, parseFieldPath(rep.source.fieldPath));
    for (const t of rep.targets) {
      const target = objs.find((o) => o.kind === t.select.kind && o.metadata.name === t.select.name);
      for (const fp of t.fieldPaths) walk(target, parseFieldPath(fp), value);
    }
  }
  return objs;
}
const key = (o) => `${o.kind}/${o.metadata.namespace || ""}/${o.metadata.name}`;

// ---- checks ------------------------------------------------------------------------------
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

const objs = render(dir);
const byKey = new Map(objs.map((o) => [key(o), o]));
const get = (kind, name, ns = "") => {
  const o = byKey.get(`${kind}/${ns}/${name}`);
  assert.ok(o, `missing ${kind} ${ns}/${name}`);
  return o;
};

run("renders the expected objects", () => {
  assert.deepEqual([...byKey.keys()].sort(), [
    "ClusterRole//sidetap-collector", "ClusterRole//sidetap-injector",
    "ClusterRoleBinding//sidetap-collector", "ClusterRoleBinding//sidetap-injector",
    "Deployment/sidetap/sidetap-collector", "Deployment/sidetap/sidetap-injector",
    "MutatingWebhookConfiguration//sidetap-injector", "Namespace//sidetap",
    "Role/sidetap/sidetap-injector", "RoleBinding/sidetap/sidetap-injector",
    "Service/sidetap/sidetap-collector", "Service/sidetap/sidetap-injector",
    "ServiceAccount/sidetap/sidetap-collector", "ServiceAccount/sidetap/sidetap-injector",
  ]);
});

let kubectl = null;
try {
  execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
  kubectl = "kubectl";
} catch { /* not installed: the renderer above is the reference */ }
run(`same result as kubectl kustomize${kubectl ? "" : " (kubectl not installed: skipped)"}`, () => {
  if (!kubectl) return;
  const out = execFileSync(kubectl, ["kustomize", dir], { encoding: "utf8" });
  const theirs = YAML.parseAllDocuments(out).map((d) => d.toJS()).filter(Boolean);
  assert.deepEqual(new Map(theirs.map((o) => [key(o), o])), byKey);
});

const models = {
  "v1/Namespace": core.Namespace, "v1/ServiceAccount": core.ServiceAccount, "v1/Service": core.Service,
  "apps/v1/Deployment": apps.Deployment,
  "rbac.authorization.k8s.io/v1/ClusterRole": rbac.ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": rbac.ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": rbac.Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": rbac.RoleBinding,
  "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": admission.MutatingWebhookConfiguration,
};
run("every object validates against the Kubernetes schema", () => {
  for (const o of objs) {
    const Model = models[`${o.apiVersion}/${o.kind}`];
    assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
    new Model(o).validate();
  }
});

// Label selector semantics (metav1.LabelSelector with matchExpressions).
function matches(sel, labels) {
  for (const [k, v] of Object.entries(sel.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions || []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && e.values.includes(labels[e.key]);
    if (e.operator === "In" && !inValues) return false;
    if (e.operator === "NotIn" && inValues) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

const mwc = get("MutatingWebhookConfiguration", "sidetap-injector");
run("webhook settings: pods CREATE only, Ignore, None, 5 s, Never, v1", () => {
  assert.deepEqual(mwc.webhooks.map((w) => w.name), ["namespace.sidetap.io", "object.sidetap.io"]);
  for (const w of mwc.webhooks) {
    assert.deepEqual(w.rules, [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"],
      resources: ["pods"], scope: "Namespaced" }]);
    assert.equal(w.failurePolicy, "Ignore");
    assert.equal(w.sideEffects, "None");
    assert.equal(w.timeoutSeconds, 5);
    assert.equal(w.reinvocationPolicy, "Never");
    assert.deepEqual(w.admissionReviewVersions, ["v1"]);
    assert.equal(w.clientConfig.caBundle, undefined, "caBundle is the injector's job");
    const svc = get("Service", w.clientConfig.service.name, w.clientConfig.service.namespace);
    assert.equal(w.clientConfig.service.path, "/mutate");
    assert.ok(svc.spec.ports.some((p) => p.port === w.clientConfig.service.port));
  }
});

run("webhook selectors: each pod reaches at most one webhook, per the decision rules", () => {
  const ns = (name, labels = {}) => ({ "kubernetes.io/metadata.name": name, ...labels });
  const cases = [
    // [namespace labels, pod labels, webhook expected]
    [ns("bookinfo", { "sidetap.io/inject": "enabled" }), { app: "x" }, "namespace.sidetap.io"],
    [ns("bookinfo", { "sidetap.io/inject": "enabled" }), { "sidetap.io/inject": "true" }, "namespace.sidetap.io"],
    [ns("bookinfo", { "sidetap.io/inject": "enabled" }), { "sidetap.io/inject": "false" }, null],
    [ns("shop"), { "sidetap.io/inject": "true" }, "object.sidetap.io"],
    [ns("shop", { "sidetap.io/inject": "disabled" }), { "sidetap.io/inject": "true" }, "object.sidetap.io"],
    [ns("shop"), { app: "x" }, null],
    [ns("shop"), { "sidetap.io/inject": "false" }, null],
    [ns("kube-system", { "sidetap.io/inject": "enabled" }), { "sidetap.io/inject": "true" }, null],
    [ns("sidetap", { "sidetap.io/inject": "enabled" }), {}, null],
    [ns("sidetap"), { "sidetap.io/inject": "true" }, null],
  ];
  for (const [nsLabels, podLabels, want] of cases) {
    const hit = mwc.webhooks.filter((w) => matches(w.namespaceSelector, nsLabels) && matches(w.objectSelector, podLabels));
    assert.ok(hit.length <= 1, `two webhooks for ${JSON.stringify([nsLabels, podLabels])}`);
    assert.equal(hit[0]?.name ?? null, want, JSON.stringify([nsLabels, podLabels]));
  }
});

run("RBAC is least privilege", () => {
  assert.deepEqual(get("ClusterRole", "sidetap-injector").rules, [
    { apiGroups: ["admissionregistration.k8s.io"], resources: ["mutatingwebhookconfigurations"],
      resourceNames: ["sidetap-injector"], verbs: ["get", "patch"] },
    { apiGroups: [""], resources: ["namespaces"], verbs: ["get"] },
  ]);
  assert.deepEqual(get("Role", "sidetap-injector", "sidetap").rules, [
    { apiGroups: [""], resources: ["secrets"], resourceNames: ["sidetap-token"], verbs: ["get"] },
    { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
  ]);
  assert.deepEqual(get("ClusterRole", "sidetap-collector").rules, [
    { apiGroups: [""], resources: ["pods", "services", "endpoints", "namespaces"], verbs: ["get", "list", "watch"] },
  ]);
  for (const o of objs.filter((x) => /Role$/.test(x.kind)))
    for (const r of o.rules)
      for (const f of [r.apiGroups, r.resources, r.verbs]) assert.ok(!f.includes("*"), `wildcard in ${key(o)}`);
  for (const [b, sa] of [["ClusterRoleBinding", "sidetap-injector"], ["RoleBinding", "sidetap-injector"],
    ["ClusterRoleBinding", "sidetap-collector"]]) {
    const o = get(b, sa, b === "RoleBinding" ? "sidetap" : "");
    assert.deepEqual(o.subjects, [{ kind: "ServiceAccount", name: sa, namespace: "sidetap" }]);
    get(o.roleRef.kind, o.roleRef.name, o.roleRef.kind === "Role" ? "sidetap" : "");
    get("ServiceAccount", sa, "sidetap");
  }
});

run("no host privileges anywhere; restricted Pod Security for sidetap's own pods", () => {
  assert.ok(!objs.some((o) => o.kind === "DaemonSet"));
  assert.equal(get("Namespace", "sidetap").metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
  for (const d of objs.filter((o) => o.kind === "Deployment")) {
    const spec = d.spec.template.spec;
    assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, key(d));
    assert.ok(!(spec.volumes || []).some((v) => v.hostPath), key(d));
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(d.spec.template.metadata.labels["sidetap.io/inject"], "false");
    assert.deepEqual(d.spec.selector.matchLabels,
      Object.fromEntries(Object.entries(d.spec.template.metadata.labels).filter(([k]) => k in d.spec.selector.matchLabels)));
    for (const c of spec.containers) {
      assert.equal(c.securityContext.privileged, undefined);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
      assert.ok(c.resources.requests && c.resources.limits, `${key(d)} resources`);
    }
  }
});

run("ports, image and token wired end to end", () => {
  const k = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  const image = `${k.images[0].newName}:${k.images[0].newTag}`;
  const coll = get("Deployment", "sidetap-collector", "sidetap").spec.template.spec;
  const inj = get("Deployment", "sidetap-injector", "sidetap").spec.template.spec;
  for (const c of [...coll.containers, ...inj.containers]) assert.equal(c.image, image);
  const env = Object.fromEntries(inj.containers[0].env.map((e) => [e.name, e.value]));
  assert.equal(env.SIDETAP_IMAGE, image);
  assert.equal(env.SIDETAP_COLLECTOR_URL, "http://sidetap-collector.sidetap.svc");
  const svc = get("Service", "sidetap-collector", "sidetap").spec.ports[0];
  assert.equal(svc.port, 80);
  const cport = coll.containers[0].ports.find((p) => p.name === svc.targetPort);
  assert.ok(coll.containers[0].args.includes(`--listen=0.0.0.0:${cport.containerPort}`));
  const isvc = get("Service", "sidetap-injector", "sidetap").spec.ports[0];
  assert.equal(isvc.port, 443);
  const iport = inj.containers[0].ports.find((p) => p.name === isvc.targetPort);
  assert.ok(inj.containers[0].args.includes(`--listen=0.0.0.0:${iport.containerPort}`));
  assert.ok(inj.containers[0].args.includes("--webhook-config=" + mwc.metadata.name));
  assert.ok(inj.containers[0].args.includes("--token-secret-name=sidetap-token"));
  assert.equal(coll.volumes.find((v) => v.name === "token").secret.secretName, "sidetap-token");
  assert.ok(coll.containers[0].args.includes("--token-file=/etc/sidetap/token/token"));
  assert.equal(coll.containers[0].volumeMounts.find((m) => m.name === "token").mountPath, "/etc/sidetap/token");
  assert.equal(coll.volumes.find((v) => v.name === "data").emptyDir.sizeLimit, "2Gi");
});

console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
