"""Trying hard to break it: parallel writers, writers killed mid-write, random bytes on every verb's stdin and in
the vault file, and every kind of provider fault."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docker_credential_idp.paths import home_dir
from docker_credential_idp.vault import HEADER_BYTES, MAGIC, Vault

from .conftest import Clock, add_basic, assert_one_line_error, call_main, get_at, run_helper
from .setups import PREFIXES, StandIns

HOST = "registry.example.com"


def vault_path() -> Path:
    return home_dir(os.environ) / "vault.bin"


def table() -> dict:
    return Vault(home_dir(os.environ), os.environ).registrations()


# -- parallel writers ------------------------------------------------------------------------------------------------


def test_fifty_parallel_writers_lose_no_acknowledged_write():
    for i in range(10):
        add_basic(f"gone-{i}", f"gone-{i}.example.com", "u", f"gone-password-{i}")
    jobs = ([("store", i) for i in range(20)] + [("add", i) for i in range(20)] + [("remove", i) for i in range(10)])
    random.Random(7).shuffle(jobs)

    def write(job):
        kind, i = job
        if kind == "store":
            return job, run_helper("store", stdin=json.dumps(
                {"ServerURL": f"stored-{i}.example.com", "Username": f"user-{i}", "Secret": f"stored-secret-{i}"}))
        if kind == "add":
            return job, run_helper("registry", "add", f"added-{i}", "--prefix", f"added-{i}.example.com/team",
                                   "--type", "basic", "--username", f"user-{i}", "--password-stdin",
                                   stdin=f"added-secret-{i}")
        return job, run_helper("registry", "remove", f"gone-{i}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(write, jobs))
    acknowledged = [job for job, result in results if result.code == 0]
    assert len(acknowledged) == 50, [r for _, r in results if r.code]
    after = table()
    by_prefix = {r.prefix: r for r in after.values()}
    for kind, i in acknowledged:
        if kind == "store":
            stored = by_prefix[f"stored-{i}.example.com"]
            assert stored.secrets["password"] == f"stored-secret-{i}" and stored.settings["username"] == f"user-{i}"
        elif kind == "add":
            assert after[f"added-{i}"].secrets["password"] == f"added-secret-{i}"
        else:
            assert f"gone-{i}" not in after
    assert len(after) == 40


# -- writers killed mid-write -----------------------------------------------------------------------------------------

WRITER = """
import os, sys
from pathlib import Path
from docker_credential_idp.model import Registration, Secrets
from docker_credential_idp.vault import Vault

vault = Vault(Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]), os.environ)
start = int(sys.argv[1])
print("ready", flush=True)
for n in range(start, 200):
    def change(table, n=n):
        table[f"w{n}"] = Registration(f"w{n}", f"w{n}.example.com", "basic", {"username": "u"},
                                      Secrets({"password": f"kill-test-secret-{n}"}))
    vault.update(change)
    print(f"ack {n}", flush=True)
"""


def test_sigkill_at_random_moments_during_200_writes_never_loses_the_vault(tmp_path):
    rng = random.Random(2024)
    acknowledged, kills = 0, 0
    # A writer killed before its first acknowledgement makes no progress; on a busy machine that can happen many times
    # in a row, so each such kill doubles the window (up to 2 s, where a writer always gets a write through) and the
    # number of writers started is bounded.
    window = 0.03
    for _ in range(400):
        if acknowledged >= 200:
            break
        before = acknowledged
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(acknowledged)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, window))
        writer.send_signal(signal.SIGKILL)
        output, _ = writer.communicate(timeout=30)
        kills += writer.returncode == -signal.SIGKILL
        acks = [int(line.split()[1]) for line in output.splitlines() if line.startswith("ack ")]
        acknowledged = max(acks, default=acknowledged - 1) + 1
        # The vault opens, every time, with every acknowledged write and at most the one in flight.
        ids = set(table())
        expected = {f"w{n}" for n in range(acknowledged)}
        assert expected <= ids <= expected | {f"w{acknowledged}"}, (acknowledged, sorted(ids - expected))
        window = 0.03 if len(ids) > before else min(window * 2, 2.0)
        acknowledged = len(ids)
    assert acknowledged >= 200, f"only {acknowledged} writes in 400 writers"
    assert kills >= 5  # it did die mid-run, repeatedly
    # A killed writer's temp file is swept by the next write; none is left, and none was ever readable by others.
    add_basic("last", "last.example.com", "u", "last-password-1")
    assert sorted(p.name for p in home_dir(os.environ).iterdir() if p.name.endswith(".tmp")) == []


KILLED_WRITING_THE_KEY = """
import os, signal
from pathlib import Path
from docker_credential_idp.vault import Vault

def killed(*args, **kwargs):  # the first bytes a new home's first write puts on disk are the key file's
    os.kill(os.getpid(), signal.SIGKILL)

os.write = os.fdopen = killed
Vault(Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"]), os.environ).update(lambda table: None)
"""


def test_a_first_writer_killed_while_it_writes_the_key_file_leaves_a_home_that_works():
    """A new home's key file appears whole or not at all: a kill between creating it and writing it must not leave
    an empty key file that every later call refuses."""
    writer = subprocess.run([sys.executable, "-c", KILLED_WRITING_THE_KEY], capture_output=True, timeout=60, check=False)
    assert writer.returncode == -signal.SIGKILL, writer
    add_basic("after", "after.example.com", "u", "after-kill-password-1")
    assert table()["after"].secrets["password"] == "after-kill-password-1"
    assert sorted(p.name for p in home_dir(os.environ).iterdir() if p.name.endswith(".tmp")) == []


# -- random input on every verb ----------------------------------------------------------------------------------------


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=3), max_leaves=8)
store_like = st.fixed_dictionaries({}, optional={"ServerURL": json_values | st.text(max_size=40),
                                                  "Username": json_values, "Secret": json_values}).map(json.dumps)
stdin_bytes = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), store_like.map(str.encode),
                        st.sampled_from([b"", b"\n", b" ", b"\x00", b"https://", b"[::1", b"a" * 2_000_000]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(verb=st.sampled_from(["get", "store", "erase", "list", "version"]), stdin=stdin_bytes)
def test_any_stdin_gets_an_answer_or_one_clear_line(verb, stdin):
    if not vault_path().exists():
        add_basic("r", HOST, "robot", "fuzz-password-1")
    before = vault_path().read_bytes()
    status, out, err = call_main(verb, stdin=stdin)
    assert status in (0, 1) and b"Traceback" not in out + err
    if status == 1:
        lines = out.decode("utf-8").splitlines()
        assert len(lines) == 1 and lines[0].strip(), (verb, stdin[:80], out)
        assert "unexpected error" not in lines[0], lines[0]
        assert vault_path().read_bytes() == before
    elif verb == "get":
        assert set(json.loads(out)) == {"ServerURL", "Username", "Secret"}


def mutate(data: bytes, how: str, draw) -> bytes:
    if how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "flip":
        index = draw(st.integers(0, len(data) - 1))
        return data[:index] + bytes([data[index] ^ (1 << draw(st.integers(0, 7)))]) + data[index + 1 :]
    if how == "extend":
        return data + draw(st.binary(min_size=1, max_size=64))
    if how == "version":
        version = draw(st.integers(0, 255).filter(lambda v: v != data[len(MAGIC)]))  # any but the one written
        return data[: len(MAGIC)] + bytes([version]) + data[len(MAGIC) + 1 :]
    return data[:HEADER_BYTES] + draw(st.binary(max_size=64))  # a payload from somewhere else


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(["truncate", "flip", "extend", "version", "payload"]), data=st.data())
def test_damaged_vault_bytes_give_one_clear_line_and_stay_as_they_are(how, data):
    if not Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"], "pristine").exists():
        add_basic("r", HOST, "robot", "fuzz-password-2")
        assert call_main("get", stdin=HOST.encode())[0] == 0  # the answer is cached: the cache must not hide the damage
        Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"], "pristine").write_bytes(vault_path().read_bytes())
    pristine = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"], "pristine").read_bytes()
    damaged = mutate(pristine, how, data.draw)
    vault_path().write_bytes(damaged)
    for argv, stdin, stream in ((("get",), HOST.encode(), 1), (("list",), b"", 1),
                                (("store",), b'{"ServerURL":"x.io","Username":"u","Secret":"fuzz-store-secret"}', 1),
                                (("erase",), HOST.encode(), 1), (("registry", "list"), b"", 2)):
        status, out, err = call_main(*argv, stdin=stdin)
        text = (out if stream == 1 else err).decode("utf-8")
        assert status == 1, (how, argv, out, err)
        assert len(text.splitlines()) == 1 and "vault" in text and "unexpected" not in text, (how, argv, text)
        assert b"Traceback" not in out + err and b"fuzz-password-2" not in out + err
        assert vault_path().read_bytes() == damaged


def test_wrong_key_from_the_environment_is_one_clear_line():
    add_basic("r", HOST, "robot", "wrong-key-password")
    before = vault_path().read_bytes()
    result = run_helper("get", stdin=HOST, env={"DOCKER_CREDENTIAL_IDP_KEY": "A" * 43 + "="})
    assert_one_line_error(result, "does not open", stream="out")
    assert vault_path().read_bytes() == before


# -- provider faults ----------------------------------------------------------------------------------------------------

LIFETIME = 3600
TIMEOUT = 2
SLOW_ANSWER = 60  # a stand-in that answers this late has timed out, however busy the machine


class Sources:
    """One registration per token-issuing provider, each against its local endpoint with a token of LIFETIME
    seconds, so that the stale-token fallback can be shown too (on a clock moved by hand past its refresh point)."""

    def __init__(self, tmp_path: Path, key: dict) -> None:
        self.stand_ins = StandIns(tmp_path, key, "fault", lifetime=LIFETIME)
        self.servers = self.stand_ins.servers
        self.hosts = {name: PREFIXES[name] for name in self.servers}
        for name in self.servers:
            self.stand_ins.setup(name).register(name, "--timeout", str(TIMEOUT))

    def stop(self) -> None:
        self.stand_ins.stop()


@pytest.fixture
def sources(tmp_path, service_account_key):
    started = Sources(tmp_path, service_account_key)
    yield started
    started.stop()


FAULTS = {"401": "401", "503": "503", "garbage": "garbage", "timeout": None}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_of_every_source_is_one_clear_line_within_the_time_limit(sources, fault):
    for name, server in sources.servers.items():
        if fault == "timeout":
            server.delay = SLOW_ANSWER
        else:
            server.fault = FAULTS[fault]
        started = time.monotonic()
        result = run_helper("get", stdin=sources.hosts[name])
        elapsed = time.monotonic() - started
        line = assert_one_line_error(result, f"registration '{name}'", stream="out")
        # --timeout 2, plus the interpreter and SDK start on a busy machine: well before the answer would come.
        assert elapsed < TIMEOUT + 30 < SLOW_ANSWER, (name, fault, elapsed)
        assert "Traceback" not in result.err and "fault-" not in line


def test_metadata_service_unreachable_is_one_clear_line(tmp_path):
    assert run_helper("registry", "add", "adc", "--prefix", "gcr.io/p", "--type", "gcr", "--timeout", "3").code == 0
    env = {"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9", "CLOUDSDK_CONFIG": str(tmp_path)}
    started = time.monotonic()
    result = run_helper("get", stdin="gcr.io", env=env)
    assert_one_line_error(result, "registration 'adc' (gcr)", stream="out")
    assert time.monotonic() - started < 3 + 30  # --timeout 3, plus the interpreter and SDK start on a busy machine


def test_every_source_down_serves_its_still_valid_token(sources):
    """In process, on a clock moved by hand: the pipeline a `get` runs, with `now` injected."""
    clock = Clock()
    first = {name: get_at(clock, host, []) for name, host in sources.hosts.items()}
    # Past every token's refresh point (five minutes before its expiry), a minute before it expires.
    clock.now += LIFETIME - 60
    for name, server in sources.servers.items():
        server.fault = "503"
        warnings: list[str] = []
        assert get_at(clock, sources.hosts[name], warnings) == first[name], (name, warnings)
        assert len(warnings) == 1 and "serving the cached token" in warnings[0], warnings
        assert len(warnings[0].splitlines()) == 1
