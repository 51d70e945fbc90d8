"""Every command in README.md's shell code blocks is run by a test (issue 16).

Each command (continuation lines joined, trailing `# comment` removed) must be listed in
COMMANDS below with how it is tested:
  ("here", ...)  run by this script, as typed (`--release` -> the debug build scripts/test
                 made, as tests/readme/run-command.sh does for `cargo run --release`);
  ("test", path) run as typed by that test, which must exist;
  ("not run", reason) stated honestly, shown on every run.
A README command missing here fails; so does an entry whose command left the README.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = str(ROOT / "tests/container/containers.conf")

COMMANDS = {
    "cargo run --release": ("test", "tests/readme/run-command.sh"),
    "scripts/test": ("test", ".ci/run"),
    "cargo build --release --bin multiparty-meeting --bin multiparty-meeting-load": ("here", "debug"),
    "target/release/multiparty-meeting-load --spawn-server target/release/multiparty-meeting "
    "--subscribers 100 --no-audio --burst 50 --warmup-secs 10 --server-cpu 0 --client-cpu 1": ("here", "debug"),
    "sudo JANUS_EVENT_LOOPS=1 scripts/janus-bench.sh --subscribers 200 --json out.json": (
        "not run",
        "benchmark against Janus: installs the janus package, builds release binaries and "
        "loads both cores for minutes; run by hand, figures in docs/benchmarks.md"),
    "target/release/multiparty-meeting token --config config.toml --room standup --name Alice "
    "--role moderator --ttl 2h": ("here", "debug"),
    "podman build --format docker -t multiparty-meeting .": ("test", "tests/container/run.sh"),
    "podman run -d --name meeting --network host multiparty-meeting": ("here", "container"),
    "curl -fsS http://localhost:3000/health": ("here", "container"),
    "podman stop -t 90 meeting": ("here", "container"),
    'podman run -d --name meeting --network host -v "$PWD/config.toml:/etc/multiparty-meeting/config.toml:ro" '
    "-e MM_ANNOUNCED_IP=203.0.113.10 multiparty-meeting --config /etc/multiparty-meeting/config.toml": ("here", "container"),
    "MM_ANNOUNCED_IP=203.0.113.10 MM_COOKIE_SECRET=$(openssl rand -hex 32) podman-compose up -d": (
        "test", "tests/container/compose.test.mjs"),
}


def readme_commands():
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"^```(?:sh|bash|shell|console)\n(.*?)^```", text, re.S | re.M):
        pending = ""
        for line in block.splitlines():
            line = pending + line.strip() if pending else line.strip()
            if line.endswith("\\"):
                pending = line[:-1].strip() + " "
                continue
            pending = ""
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(re.sub(r"\s+", " ", line))
    return out


def sh(cmd, cwd=ROOT, timeout=300, env=None):
    """Runs a README command with bash as typed; the server refuses unknown MM_* variables,
    so the suite's own MM_BIN is not passed."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    full_env.update(CONTAINERS_CONF=CONTAINERS_CONF, **(env or {}))
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=full_env, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"`{cmd}` exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r.stdout + r.stderr


def debug(cmd):
    return cmd.replace("cargo build --release", "cargo build").replace("target/release/", "target/debug/")


def wait_health(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no answer from {url} in {timeout} s")


def run_here(listed):
    """The README's commands, in its order, each as typed."""
    build = next(c for c in listed if c.startswith("cargo build --release"))
    sh(debug(build), timeout=900)
    print(f"  ran: {debug(build)}")
    load = next(c for c in listed if c.startswith("target/release/multiparty-meeting-load"))
    out = sh(debug(load), timeout=300)
    assert "ours" in out, out[-2000:]
    print(f"  ran: {debug(load)}")

    token = next(c for c in listed if c.startswith("target/release/multiparty-meeting token"))
    work = Path(tempfile.mkdtemp(prefix="mm-readme-token-"))
    try:
        secret = sh("openssl rand -hex 32").strip()
        (work / "config.toml").write_text(f'[auth]\nmode = "token"\nkeys = {{ "2026-12" = "{secret}" }}\n')
        r = subprocess.run(["bash", "-c", debug(token).replace("target/debug/", f"{ROOT}/target/debug/")],
                           cwd=work, capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if not k.startswith("MM_")})
        assert r.returncode == 0, r.stderr
        jwt = r.stdout.strip()
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", jwt), r.stdout
        assert "valid 7200 s for room standup" in r.stderr, r.stderr
        print(f"  ran: {debug(token)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    run, curl, stop, run_config = (
        next(c for c in listed if c.startswith("podman run -d --name meeting --network host multiparty-meeting")),
        next(c for c in listed if c.startswith("curl ")),
        next(c for c in listed if c.startswith("podman stop")),
        next(c for c in listed if "config.toml:ro" in c),
    )
    work = Path(tempfile.mkdtemp(prefix="mm-readme-"))
    try:
        sh("podman rm -f -t 0 meeting >/dev/null 2>&1 || true")
        for first in (run, run_config):
            if first is run_config:
                shutil.copy(ROOT / "config/config.example.toml", work / "config.toml")
                os.chmod(work, 0o755)
                os.chmod(work / "config.toml", 0o644)
            sh(first, cwd=work)
            print(f"  ran: {first}")
            deadline = time.time() + 30
            while True:
                try:
                    body = sh(curl, cwd=work)
                    break
                except AssertionError:
                    if time.time() > deadline:
                        raise AssertionError(sh("podman logs meeting"))
                    time.sleep(0.3)
            assert '"status":"ok"' in body, body
            print(f"  ran: {curl}")
            started = time.time()
            sh(stop, cwd=work, timeout=120)
            code = sh("podman inspect -f '{{.State.ExitCode}}' meeting").strip()
            assert code == "0", f"exit code {code} after `{stop}`\n{sh('podman logs meeting')}"
            print(f"  ran: {stop} (exit 0 after {time.time() - started:.1f} s)")
            sh("podman rm -f -t 0 meeting")
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", "meeting"], capture_output=True,
                       env={**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF})
        shutil.rmtree(work, ignore_errors=True)


def main():
    listed = readme_commands()
    problems = []
    for cmd in listed:
        if cmd not in COMMANDS:
            problems.append(f"README command without a test: `{cmd}`: add it to COMMANDS in "
                            "tests/operator/readme_commands.py with the test that runs it")
    for cmd, (how, what) in COMMANDS.items():
        if cmd not in listed:
            problems.append(f"listed but no longer in README.md: `{cmd}`")
        if how == "test" and not (ROOT / what).exists():
            problems.append(f"`{cmd}`: {what} does not exist")
        if how == "not run":
            print(f"  not run: `{cmd}`: {what}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"  {len(listed)} README commands, each listed with its test")
    if "--list-only" not in sys.argv:
        run_here(listed)


main()
