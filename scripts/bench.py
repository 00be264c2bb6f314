"""`make bench`: whole-process latency and memory of `get`, side by side with Go's docker-credential-ecr-login.

Every command is run as docker runs a helper — a new process, the server on stdin, the answer on stdout — in
interleaved rounds (one run of each case per round), so that the machine's noise hits every case alike. Figures
are medians over the rounds; ratios are what to quote. Nothing here reaches the internet: our ECR registration and
ecr-login both get their tokens from a local stand-in that speaks ECR's wire format (ecr-login through an
intercepting HTTPS proxy it trusts via AWS_CA_BUNDLE, since it has no endpoint override).

    .venv/bin/python scripts/bench.py [--rounds N] [--helper PATH]...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import InterceptingProxy, LocalServer, ecr_api_route  # noqa: E402
from tests.tls import make_tls  # noqa: E402

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
STATIC_HOST = "registry.example.com"
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "bench-secret-key"}
TARGET_RATIO = 3.0
TARGET_MEMORY_MB = 25.0
TARGET_SCALE = 1.2
TARGET_PATTERN = 1.1
ECR_PATTERN = "*.dkr.ecr.*.amazonaws.com"


def run_timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, int, bytes]:
    """(wall seconds, exit status, stdout) of one process, spawned as docker spawns a helper."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out, _ = process.communicate(stdin)
    return time.perf_counter() - started, process.returncode, out


def peak_rss_mb(argv: list[str], stdin: bytes, env: dict[str, str]) -> float:
    """The process's peak RSS, from GNU time: a child forked from this (large) Python process would count this
    process's pages in its own high-water mark, so the measuring parent has to be small."""
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], input=stdin, env=env, capture_output=True, check=True)
    return int(result.stderr.decode().strip().splitlines()[-1]) / 1024


class Case:
    def __init__(self, label: str, argv: list[str], stdin: bytes, env: dict[str, str], expect: bytes = b"") -> None:
        self.label, self.argv, self.stdin, self.env, self.expect = label, argv, stdin, env, expect
        self.walls: list[float] = []
        self.rss: list[float] = []

    def run(self) -> None:
        wall, status, out = run_timed(self.argv, self.stdin, self.env)
        if status != 0 or self.expect not in out:
            raise SystemExit(f"bench: {self.label} failed (exit {status}): {out[:200]!r}")
        self.walls.append(wall)

    def measure_memory(self, runs: int = 5) -> None:
        self.rss = [peak_rss_mb(self.argv, self.stdin, self.env) for _ in range(runs)]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.walls) * 1000

    @property
    def peak_mb(self) -> float:
        return max(self.rss)


def base_env(home: Path) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "DOCKER_CONFIG": str(home / "docker"), "DOCKER_CREDENTIAL_IDP_HOME": str(home / "idp"),
           "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost"}
    (home / "docker").mkdir(parents=True, exist_ok=True)
    return env


def helper(executable: str, env: dict[str, str], *args: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run([executable, *args], input=stdin, env=env, capture_output=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed: {result.stdout.decode()} {result.stderr.decode()}")
    return result.stdout


def fill_vault(env: dict[str, str], count: int) -> None:
    """`count` basic registrations (one of them STATIC_HOST), written in one vault update."""
    from docker_credential_idp.model import Registration, Secrets
    from docker_credential_idp.vault import Vault

    def change(table: dict) -> None:
        for number in range(count - 1):
            prefix = f"registry-{number:05d}.example.com/team-{number % 7}"
            table[f"r{number}"] = Registration(f"r{number}", prefix, "basic", {"username": f"robot{number}"},
                                               Secrets({"password": f"password-{number}"}))
        table["static"] = Registration("static", STATIC_HOST, "basic", {"username": "robot"},
                                       Secrets({"password": "static-password"}))

    Vault(Path(env["DOCKER_CREDENTIAL_IDP_HOME"]), env).update(change)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds (default 41)")
    parser.add_argument("--helper", action="append", default=[], metavar="LABEL=PATH",
                        help="another build of docker-credential-idp to measure, e.g. binary=dist/.../docker-credential-idp")
    args = parser.parse_args()

    ours = {"pip entry point": str(Path(sys.executable).parent / "docker-credential-idp")}
    bundle = ROOT / "dist" / "docker-credential-idp" / "docker-credential-idp"
    if bundle.exists():
        ours["binary (onedir)"] = str(bundle)
    for item in args.helper:
        label, _, path = item.partition("=")
        ours[label] = path
    ecr_login = shutil.which("docker-credential-ecr-login")
    pass_helper = shutil.which("docker-credential-pass")
    if not ecr_login or not pass_helper or not os.path.exists("/usr/bin/time"):
        raise SystemExit("bench: docker-credential-ecr-login, docker-credential-pass or GNU time is missing; "
                         "run scripts/install-system-deps.sh --bench")

    work = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    ca, cert, key = make_tls(work / "tls", ("api.ecr.eu-west-1.amazonaws.com",))
    ecr_api = LocalServer(ecr_api_route("bench-ecr-password"))
    proxy = InterceptingProxy(ecr_api_route("bench-ecr-password"), cert, key)
    try:
        return _bench(args, ours, ecr_login, pass_helper, work, ca, ecr_api, proxy)
    finally:
        ecr_api.stop()
        proxy.stop()
        if (work / "pass" / "gnupg").exists():  # the agent gpg started for the pass store
            subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(work / "pass" / "gnupg")},
                           capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def pass_store(pass_helper: str, work: Path) -> dict[str, str]:
    """The default Linux store most people have: docker-credential-pass over `pass`, a gpg key without a passphrase
    (its agent started here), holding STATIC_HOST's password."""
    env = {**base_env(work), "GNUPGHOME": str(work / "gnupg"), "PASSWORD_STORE_DIR": str(work / "password-store")}
    (work / "gnupg").mkdir(mode=0o700, parents=True)
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "bench@docker-credential-idp", "default",
                    "default", "never"], env=env, check=True, capture_output=True)
    listed = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                            capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))
    subprocess.run(["pass", "init", fingerprint], env=env, check=True, capture_output=True)
    helper(pass_helper, env, "store", stdin=json.dumps({"ServerURL": STATIC_HOST, "Username": "robot",
                                                        "Secret": "static-password"}).encode())
    return env


def _bench(args, ours, ecr_login, pass_helper, work, ca, ecr_api, proxy) -> int:  # noqa: ANN001
    entry = ours["pip entry point"]
    # Our homes: 10 registrations, 10,000 registrations, and an ECR registration with a cached token.
    small, large, ecr_home = base_env(work / "small"), base_env(work / "large"), base_env(work / "ecr")
    pattern_home = base_env(work / "pattern")
    fill_vault(small, 10)
    fill_vault(large, 10_000)
    for env, prefix in ((ecr_home, ECR_HOST), (pattern_home, ECR_PATTERN)):
        helper(entry, {**env, "KEY": AWS_KEYS["AWS_SECRET_ACCESS_KEY"]}, "registry", "add", "ecr", "--prefix", prefix,
               "--type", "ecr", "--endpoint-url", ecr_api.url, "--access-key-id", AWS_KEYS["AWS_ACCESS_KEY_ID"],
               "--secret-access-key-env", "KEY")
    for env, host in ((small, STATIC_HOST), (large, STATIC_HOST), (ecr_home, ECR_HOST), (pattern_home, ECR_HOST)):
        helper(entry, env, "get", stdin=host.encode())  # fills the answer cache
    # ecr-login's home: its own cache file, filled by one call through the proxy.
    go_env = {**base_env(work / "go"), **AWS_KEYS, "AWS_REGION": "eu-west-1", "HTTPS_PROXY": proxy.url,
              "AWS_CA_BUNDLE": str(ca)}
    helper(ecr_login, go_env, "get", stdin=ECR_HOST.encode())
    assert (work / "go" / ".ecr" / "cache.json").exists(), "ecr-login did not write its cache"
    calls_before = (ecr_api.count(), proxy.count())

    pass_env = pass_store(pass_helper, work / "pass")

    cases = [Case("python -c pass (floor)", [sys.executable, "-c", "pass"], b"", small),
             Case("ecr-login cache hit (Go)", [ecr_login, "get"], ECR_HOST.encode(), go_env, b"bench-ecr-password"),
             Case("python -I -S -c pass (the interpreter alone)", [sys.executable, "-I", "-S", "-c", "pass"], b"",
                  small),
             Case("docker-credential-pass get (Go, gpg)", [pass_helper, "get"], STATIC_HOST.encode(), pass_env,
                  b"static-password")]
    for label, path in ours.items():
        cases += [
            Case(f"static, 10 regs [{label}]", [path, "get"], STATIC_HOST.encode(), small, b"static-password"),
            Case(f"static, 10,000 regs [{label}]", [path, "get"], STATIC_HOST.encode(), large, b"static-password"),
            Case(f"cached ECR token [{label}]", [path, "get"], ECR_HOST.encode(), ecr_home, b"bench-ecr-password"),
            Case(f"cached ECR token, pattern [{label}]", [path, "get"], ECR_HOST.encode(), pattern_home,
                 b"bench-ecr-password"),
        ]
    for case in cases:  # warm the page cache
        case.run()
        case.walls.clear()
    for _ in range(args.rounds):
        for case in cases:
            case.run()
    for case in cases:
        case.measure_memory()
    assert (ecr_api.count(), proxy.count()) == calls_before, "a cache hit called upstream"

    go = cases[1].median_ms
    print(f"docker-credential-idp `make bench` — {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {args.rounds} interleaved rounds\n")
    print(f"{'case':44} {'median':>9} {'× ecr-login':>12} {'peak RSS':>9}")
    for case in cases:
        print(f"{case.label:44} {case.median_ms:7.1f} ms {case.median_ms / go:11.2f}× {case.peak_mb:6.1f} MB")

    print("\n32 parallel cold gets (empty caches, one ECR registration):")
    cold = {}
    for label, path in ours.items():
        helper(path, ecr_home, "cache", "clear")
        before = ecr_api.count()
        wall = parallel([path, "get"], ECR_HOST.encode(), ecr_home, 32)
        cold[label] = (wall, ecr_api.count() - before)
    shutil.rmtree(work / "go" / ".ecr", ignore_errors=True)
    before = proxy.count()
    wall = parallel([ecr_login, "get"], ECR_HOST.encode(), go_env, 32)
    cold["ecr-login (Go)"] = (wall, proxy.count() - before)
    for label, (wall, calls) in cold.items():
        print(f"  {label:42} {wall * 1000:7.0f} ms wall   {calls:3d} upstream call{'s' if calls != 1 else ''}")

    print("\nTargets:")
    verdicts = []
    for label in ours:
        hit = {c.label: c for c in cases}
        static, ecr = hit[f"static, 10 regs [{label}]"], hit[f"cached ECR token [{label}]"]
        many = hit[f"static, 10,000 regs [{label}]"]
        pattern = hit[f"cached ECR token, pattern [{label}]"]
        verdicts += [
            (f"a pattern's cache hit ≤ {TARGET_PATTERN:g}× a plain one [{label}]",
             pattern.median_ms / ecr.median_ms <= TARGET_PATTERN, f"{pattern.median_ms / ecr.median_ms:.2f}×"),
            (f"cache hit ≤ {TARGET_RATIO:g}× ecr-login [{label}]",
             max(static.median_ms, ecr.median_ms) / go <= TARGET_RATIO,
             f"static {static.median_ms / go:.2f}×, ECR {ecr.median_ms / go:.2f}×"),
            (f"peak memory of a cache hit ≤ {TARGET_MEMORY_MB:g} MB [{label}]",
             max(static.peak_mb, ecr.peak_mb) <= TARGET_MEMORY_MB, f"{max(static.peak_mb, ecr.peak_mb):.1f} MB"),
            (f"10,000 registrations ≤ {TARGET_SCALE:g}× 10 [{label}]",
             many.median_ms / static.median_ms <= TARGET_SCALE, f"{many.median_ms / static.median_ms:.2f}×"),
            (f"one upstream call for 32 parallel cold callers [{label}]", cold[label][1] == 1, f"{cold[label][1]} calls"),
        ]
    for name, met, figure in verdicts:
        print(f"  {'met   ' if met else 'MISSED'} {name}: {figure}")
    print(f"\n  floor: the interpreter alone (python -c pass) is {cases[0].median_ms / go:.2f}× ecr-login")
    bench_agent(args, ours, ecr_login, go_env, ecr_api, proxy, work)  # the section at the end of this file
    return 0


def parallel(argv: list[str], stdin: bytes, env: dict[str, str], count: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda _: subprocess.run(argv, input=stdin, env=env, capture_output=True), range(count)))
    wall = time.perf_counter() - started
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise SystemExit(f"bench: {len(failed)} of {count} parallel gets failed: {failed[0].stdout[:200]!r}")
    return wall


# -- the resident agent (issue 22 §2): a hit and a warm fetch through `agent start`, beside ecr-login ---------------

TARGET_AGENT_HIT = 3.0  # a cache hit through the agent ≤ 3× ecr-login's cache hit
TARGET_AGENT_FETCH = 2.0  # a fetch the agent has warm SDKs for ≤ 2× ecr-login's cold fetch


class ColdCase(Case):
    """A case whose every run starts from an empty answer cache: `before` empties it (not timed)."""

    def __init__(self, label: str, argv: list[str], stdin: bytes, env: dict[str, str], expect: bytes,
                 before: object) -> None:
        super().__init__(label, argv, stdin, env, expect)
        self.before = before

    def run(self) -> None:
        self.before()  # type: ignore[operator]
        super().run()


def bench_agent(args, ours, ecr_login, go_env, ecr_api, proxy, work) -> None:  # noqa: ANN001
    """Per build of ours, a home with 10 registrations and an ECR one, served by its agent: a cache hit through the
    agent and the same hit with the agent turned off; a fetch with the answer cache emptied before each run (the
    agent has loaded boto3 once); ecr-login's cache hit and its cold fetch (its cache file removed) in the same
    interleaved rounds."""
    cases: list[Case] = [Case("ecr-login cache hit (Go)", [ecr_login, "get"], ECR_HOST.encode(), go_env,
                              b"bench-ecr-password"),
                         ColdCase("ecr-login cold fetch (Go)", [ecr_login, "get"], ECR_HOST.encode(), go_env,
                                  b"bench-ecr-password",
                                  lambda: shutil.rmtree(work / "go" / ".ecr", ignore_errors=True))]
    homes = []
    for number, (label, path) in enumerate(ours.items()):
        env = base_env(work / f"agent-{number}")
        fill_vault(env, 10)
        helper(path, {**env, "KEY": AWS_KEYS["AWS_SECRET_ACCESS_KEY"]}, "registry", "add", "ecr", "--prefix",
               ECR_HOST, "--type", "ecr", "--endpoint-url", ecr_api.url, "--access-key-id",
               AWS_KEYS["AWS_ACCESS_KEY_ID"], "--secret-access-key-env", "KEY")
        helper(path, env, "agent", "start", "--idle-timeout", "1h")
        homes.append((path, env))
        helper(path, env, "get", stdin=ECR_HOST.encode())  # the agent loads boto3 and caches the token
        off = {**env, "DOCKER_CREDENTIAL_IDP_AGENT": "off"}
        tokens = Path(env["DOCKER_CREDENTIAL_IDP_HOME"]) / "tokens.bin"
        cases += [
            Case(f"static hit, agent [{label}]", [path, "get"], STATIC_HOST.encode(), env, b"static-password"),
            Case(f"cached ECR token, agent [{label}]", [path, "get"], ECR_HOST.encode(), env, b"bench-ecr-password"),
            Case(f"cached ECR token, no agent [{label}]", [path, "get"], ECR_HOST.encode(), off,
                 b"bench-ecr-password"),
            ColdCase(f"ECR fetch, agent with boto3 warm [{label}]", [path, "get"], ECR_HOST.encode(), env,
                     b"bench-ecr-password", lambda tokens=tokens: tokens.unlink(missing_ok=True)),
            ColdCase(f"ECR fetch, no agent [{label}]", [path, "get"], ECR_HOST.encode(), off, b"bench-ecr-password",
                     lambda tokens=tokens: tokens.unlink(missing_ok=True)),
        ]
    try:
        for case in cases:
            case.run()
            case.walls.clear()
        for _ in range(args.rounds):
            for case in cases:
                case.run()
        by_label = {case.label: case for case in cases}
        gets = [json.loads(helper(path, env, "agent", "status", "--json"))["gets"] for path, env in homes]
    finally:
        for path, env in homes:
            subprocess.run([path, "agent", "stop"], env=env, capture_output=True, check=False)
    go_hit, go_cold = by_label["ecr-login cache hit (Go)"].median_ms, by_label["ecr-login cold fetch (Go)"].median_ms
    print(f"\nThrough the agent (agent start; {args.rounds} interleaved rounds; the agents answered "
          f"{', '.join(str(g) for g in gets)} gets):")
    print(f"{'case':44} {'median':>9} {'× ecr-login hit':>16} {'× ecr-login cold':>17}")
    for case in cases:
        print(f"{case.label:44} {case.median_ms:7.1f} ms {case.median_ms / go_hit:15.2f}× "
              f"{case.median_ms / go_cold:16.2f}×")
    print("\nTargets (agent):")
    for label in ours:
        hit = max(by_label[f"static hit, agent [{label}]"].median_ms,
                  by_label[f"cached ECR token, agent [{label}]"].median_ms) / go_hit
        fetch = by_label[f"ECR fetch, agent with boto3 warm [{label}]"].median_ms / go_cold
        print(f"  {'met   ' if hit <= TARGET_AGENT_HIT else 'MISSED'} a cache hit through the agent ≤ "
              f"{TARGET_AGENT_HIT:g}× ecr-login [{label}]: {hit:.2f}×")
        print(f"  {'met   ' if fetch <= TARGET_AGENT_FETCH else 'MISSED'} a fetch with warm SDKs ≤ "
              f"{TARGET_AGENT_FETCH:g}× ecr-login's cold fetch [{label}]: {fetch:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
