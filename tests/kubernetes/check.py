"""What the Kubernetes schemas cannot check in deploy/kubernetes/, then the binary started
with the manifests' own environment. Each check prints ok/FAIL; the last line counts them."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "deploy" / "kubernetes"
docs = {}
for f in sorted(KDIR.glob("*.yaml")):
    for d in yaml.safe_load_all(f.read_text()):
        if d:
            docs[(d["kind"], d["metadata"]["name"] if "metadata" in d else f.name)] = (f.name, d)

results = []


def check(name):
    def run(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the rest
            results.append((name, e))
            print(f"FAIL {name}: {e}")
        return fn
    return run


def get(kind, name):
    assert (kind, name) in docs, f"no {kind} {name} in deploy/kubernetes"
    return docs[(kind, name)][1]


ds = get("DaemonSet", "multiparty-meeting")
pod = ds["spec"]["template"]["spec"]
ctr = pod["containers"][0]
env = {e["name"]: e for e in ctr["env"]}


def value(name):
    assert name in env, f"env {name} missing"
    return env[name].get("value")


def field_ref(name):
    return env[name].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")


@check("kustomization.yaml lists every manifest")
def _():
    k = yaml.safe_load((KDIR / "kustomization.yaml").read_text())
    files = {f.name for f in KDIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files, f"{sorted(k['resources'])} != {sorted(files)}"


@check("one pod per node on the node's network (DaemonSet, hostNetwork, cluster DNS)")
def _():
    assert pod.get("hostNetwork") is True
    assert pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "without it `redis` does not resolve"


@check("enableServiceLinks: false (a Service named mm would inject MM_PORT)")
def _():
    for (kind, name), (_, d) in docs.items():
        if kind in ("Deployment", "DaemonSet"):
            assert d["spec"]["template"]["spec"].get("enableServiceLinks") is False, f"{kind} {name}"


@check("each pod: MM_NODE_ID = pod name, MM_ANNOUNCED_IP = node IP, MM_INTERNAL_URL on the pod IP")
def _():
    assert field_ref("POD_NAME") == "metadata.name"
    assert field_ref("NODE_IP") == "status.hostIP"
    assert field_ref("POD_IP") == "status.podIP"
    assert value("MM_NODE_ID") == "$(POD_NAME)"
    assert value("MM_ANNOUNCED_IP") == "$(NODE_IP)"
    assert value("MM_INTERNAL_URL") == f"http://$(POD_IP):{value('MM_LISTENING_PORT')}"
    for var in ("POD_NAME", "NODE_IP", "POD_IP"):
        # $(VAR) expands only for variables defined earlier in the list.
        names = [e["name"] for e in ctr["env"]]
        users = [i for i, e in enumerate(ctr["env"]) if f"$({var})" in str(e.get("value", ""))]
        assert all(names.index(var) < i for i in users), f"{var} defined after its use"


@check("a port range of its own (one pod per node) and the HTTP port the probes use")
def _():
    lo, hi = int(value("MM_RTC_MIN_PORT")), int(value("MM_RTC_MAX_PORT"))
    assert 1024 < lo <= hi <= 65535
    port = int(value("MM_LISTENING_PORT"))
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports["http"] == port, f"container port {ports['http']} != MM_LISTENING_PORT {port}"


@check("readiness /health, liveness /health/live")
def _():
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/health"
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for p in ("readinessProbe", "livenessProbe"):
        assert ctr[p]["httpGet"]["port"] == "http"


@check("terminationGracePeriodSeconds = drainTimeout + 30 s (exit 0 before SIGKILL)")
def _():
    drain_ms = int(value("MM_DRAIN_TIMEOUT"))
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == drain_ms // 1000 + 30, f"grace {grace} s for drainTimeout {drain_ms} ms"


@check("the cookie secret comes from the Secret; Redis and the Service match")
def _():
    ref = env["MM_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"]
    secret = get("Secret", ref["name"])
    assert ref["key"] in secret["stringData"]
    svc = get("Service", "redis")
    url = value("MM_REDIS_URL")
    assert url == f"redis://redis:{svc['spec']['ports'][0]['port']}/0", url
    web = get("Service", "multiparty-meeting")
    assert web["spec"]["selector"] == ds["spec"]["template"]["metadata"]["labels"]
    assert web["spec"]["ports"][0]["targetPort"] == "http"
    ing = get("Ingress", "multiparty-meeting")
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "multiparty-meeting" and backend["port"]["name"] == "http"
    notes = ing["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


@check("no Service is named mm (its links would be MM_* variables)")
def _():
    for kind, name in docs:
        if kind == "Service":
            assert name.lower().replace("-", "_") != "mm", name


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env_vars, log):
    return subprocess.Popen(
        [os.environ["MM_BIN"]],
        env={"PATH": os.environ["PATH"], "NO_COLOR": "1", **env_vars},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def manifest_env(redis_url, secret):
    """The container's MM_* environment as the kubelet would give it on a node 127.0.0.1."""
    downward = {"POD_NAME": "multiparty-meeting-x7k2p", "NODE_IP": "127.0.0.1", "POD_IP": "127.0.0.1"}
    out = {}
    for e in ctr["env"]:
        if "value" in e:
            v = re.sub(r"\$\((\w+)\)", lambda m: downward[m.group(1)], e["value"])
        elif "fieldRef" in e["valueFrom"]:
            continue
        else:
            v = secret
        out[e["name"]] = v
    out["MM_REDIS_URL"] = redis_url
    # MM_INTERNAL_URL arrives with rooms spanning instances; until the server knows the key
    # it would refuse it (unknown MM_* variables stop start-up), so it is left out here.
    config_src = (ROOT / "src" / "config" / "mod.rs").read_text()
    if "internal_url" not in config_src:
        print("note: this server has no internalUrl key yet; MM_INTERNAL_URL left out of the start")
        out.pop("MM_INTERNAL_URL")
    return {k: v for k, v in out.items() if k.startswith("MM_")}


@check("the binary starts with the manifests' environment (real redis-server), refuses the placeholder secret")
def _():
    mm_bin = os.environ.get("MM_BIN", "")
    assert os.access(mm_bin, os.X_OK), f"{mm_bin} missing: cargo build --bin multiparty-meeting"
    redis = shutil.which("redis-server")
    assert redis, "install the Debian package redis-server"
    tmp = Path(tempfile.mkdtemp(prefix="mm-k8s-"))
    procs = []
    try:
        rport = free_port()
        procs.append(subprocess.Popen(
            [redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        placeholder = get("Secret", "multiparty-meeting")["stringData"]["cookie-secret"]
        env_vars = manifest_env(f"redis://127.0.0.1:{rport}/0", placeholder)
        refused = subprocess.run([mm_bin], env={"PATH": os.environ["PATH"], "NO_COLOR": "1", **env_vars},
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0 and "cookieSecret" in refused.stderr, \
            f"the shipped placeholder secret was accepted:\n{refused.stderr[-2000:]}"
        env_vars = manifest_env(f"redis://127.0.0.1:{rport}/0", os.urandom(32).hex())
        with open(tmp / "server.log", "wb") as log:
            procs.append(start(env_vars, log))
        url = f"http://127.0.0.1:{env_vars['MM_LISTENING_PORT']}"
        deadline = time.time() + 30
        body = None
        while time.time() < deadline:
            assert procs[-1].poll() is None, (tmp / "server.log").read_text()[-3000:]
            try:
                body = urllib.request.urlopen(f"{url}/health", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body, f"no /health within 30 s:\n{(tmp / 'server.log').read_text()[-3000:]}"
        assert '"nodeId":"multiparty-meeting-x7k2p"' in body, body
        assert '"redis":"ok"' in body, body
        assert urllib.request.urlopen(f"{url}/health/live", timeout=2).status == 200
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


failed = [n for n, e in results if e]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
