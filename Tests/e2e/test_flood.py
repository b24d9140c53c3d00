"""A flood of CreateVolume calls while Heketi does not answer: the controller of the real binary
stays up and bounded, answers every call, and recovers without duplicates when Heketi answers again.

Heketi "does not answer" the way a hung process does not: the test server is stopped with SIGSTOP,
so the kernel still accepts connections (up to the listen backlog) and nothing ever replies; SIGCONT
lets it answer again at once. (`response_delay_ms` would keep every request that arrived during the
flood asleep for its whole delay, so recovery would take the driver's 30 s request timeout.)
"""

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

import heketi_testlib
from conftest import driver_knows

GIB = 1 << 30
SECRETS = {"key": heketi_testlib.ADMIN_KEY}

CALLS = 1000
DISTINCT_NAMES = 800  # the other 200 calls repeat names 0..199 (a retrying provisioner does)
CALL_TIMEOUT = 5.0  # seconds; csi-provisioner's default is 10 s
ROUNDS = 3  # the flood, and two rounds of retries while Heketi still hangs
CAP = 64  # --max-controller-calls (its default, spelled out)

# Threads of the controller under the flood. Idle it has ~14 (main, the completion-queue thread,
# gRPC core's timer and executor threads, the cooperative pool of 2 cores, the signal thread). A
# running call holds one thread, and so does the Heketi operation a CreateVolume leaves running
# after its deadline (they share it, and the call's slot): at most CAP. Add ThreadCache's parked
# threads (at most 16), the deadline timer, and the short-lived threads that start calls taken
# from the queue: 14 + 64 + 16 + 1 leaves ~30 for those and for gRPC core. Measured: ~80. Before
# the cap, a thread per call (1,013 for the 1,000 calls; ~190 here, with the cap but
# without the operation keeping its slot, after three rounds).
MAX_THREADS = CAP + 60
# RSS growth over idle (~30 MB release, ~32 MB debug): each busy thread adds its touched stack and
# malloc arena pages, each waiting call its request (a few hundred bytes here). Measured: +6 MB
# (release), +10 MB (debug). Before the cap: +53 MB (release, bench/flood).
MAX_RSS_GROWTH_MB = 25

ANSWERS_DURING_FLOOD = {
    grpc.StatusCode.OK, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
}
RETRYABLE = ANSWERS_DURING_FLOOD - {grpc.StatusCode.OK}

pytestmark = pytest.mark.skipif(
    not driver_knows("--max-controller-calls"), reason="the binary under test has no --max-controller-calls")


def create_request(csi, name):
    capability = csi.pb.VolumeCapability(
        mount=csi.pb.VolumeCapability.MountVolume(),
        access_mode=csi.pb.VolumeCapability.AccessMode(mode=csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER),
    )
    return csi.pb.CreateVolumeRequest(
        name=name, capacity_range=csi.pb.CapacityRange(required_bytes=GIB), volume_capabilities=[capability],
        secrets=SECRETS,
    )


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, RSS in KiB) of a live process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Threads"][0]), int(fields["VmRSS"][0])


class Sampler(threading.Thread):
    """Peaks of the driver's thread count and RSS, sampled every 10 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_threads = 0
        self.peak_rss_kib = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                threads, rss = proc_status(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.peak_threads = max(self.peak_threads, threads)
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.join()


def wait_for_log(driver, text: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while text not in driver.log():
        assert time.monotonic() < deadline, f"'{text}' not in the driver log:\n{driver.log()[-3000:]}"
        time.sleep(0.05)


def flood(csi, stubs, names, while_waiting) -> Counter:
    """One CreateVolume per name, all at once; the answers by code. Every call must be answered,
    within its deadline, with a code that means "busy" or "retry" and a message."""
    futures = [stubs[index % len(stubs)].CreateVolume.future(create_request(csi, name), timeout=CALL_TIMEOUT)
               for index, name in enumerate(names)]
    deadline = time.monotonic() + CALL_TIMEOUT + 5
    while not all(future.done() for future in futures) and time.monotonic() < deadline:
        while_waiting()
        time.sleep(0.05)
    answers = Counter()
    for future in futures:
        try:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
            answers[grpc.StatusCode.OK] += 1
        except grpc.RpcError as error:
            assert error.code() in ANSWERS_DURING_FLOOD, (error.code(), error.details())
            assert error.details(), f"{error.code()} without a message"
            answers[error.code()] += 1
    return answers


def probe(csi, identity, capabilities) -> float:
    """Probe and ControllerGetCapabilities, which are never queued or refused: their time in ms."""
    before = time.monotonic()
    identity.Probe(csi.pb.ProbeRequest(), timeout=2)
    capabilities.ControllerGetCapabilities(csi.pb.ControllerGetCapabilitiesRequest(), timeout=2)
    return (time.monotonic() - before) * 1000


def volumes_by_name(server) -> Counter:
    state = server.test_api("GET", "/_test/state").json()
    return Counter(volume["name"] for volume in state["volumes"])


def test_a_flood_while_heketi_hangs_stays_bounded_and_recovers_without_duplicates(csi, start_heketi, start_driver):
    # Room for every name: 1 GiB replicate:3 volumes on three nodes.
    heketi = start_heketi("--device-size-gib", str(2 * DISTINCT_NAMES))
    driver = start_driver(
        "--mode", "controller", "--heketi-url", heketi.url, "--heketi-key-file", str(heketi.key_file),
        "--log-level", "info", "--max-controller-calls", str(CAP))
    # The index of Heketi's volumes is built at start; with it, a new name costs no scan.
    wait_for_log(driver, "volume index built")
    pid = driver.process.pid
    idle_threads, idle_rss = proc_status(pid)
    channels = [driver.channel() for _ in range(4)]
    stubs = [csi.grpc.ControllerStub(channel) for channel in channels]
    identity = csi.grpc.IdentityStub(driver.channel())
    capabilities = csi.grpc.ControllerStub(driver.channel())
    names = [f"pvc-flood-{index % DISTINCT_NAMES:04d}" for index in range(CALLS)]

    sampler = Sampler(pid)
    sampler.start()
    os.kill(heketi.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answers = Counter()
        probe_ms = []
        # The provisioner retries what was refused while Heketi still hangs: each round must be
        # refused too (the Heketi operations the first round started hold their calls' slots).
        for _ in range(ROUNDS):
            answers += flood(csi, stubs, names, lambda: probe_ms.append(probe(csi, identity, capabilities)))
        flood_seconds = time.monotonic() - started
    finally:
        os.kill(heketi.proc.pid, signal.SIGCONT)
    thawed = time.monotonic()

    assert driver.process.poll() is None, f"the driver died:\n{driver.log()[-3000:]}"
    assert sum(answers.values()) == ROUNDS * CALLS
    # Beyond the cap and its queue, calls were refused at once, the queued ones after ~1 s.
    assert answers[grpc.StatusCode.ABORTED] + answers[grpc.StatusCode.RESOURCE_EXHAUSTED] >= ROUNDS * (CALLS - 2 * CAP)
    assert probe_ms and max(probe_ms) < 1000, probe_ms

    # Heketi answers again: a provisioner's retries (32 at a time, backing off on "busy") create
    # every name exactly once.
    def provision(name: str) -> str:
        stub = stubs[hash(name) % len(stubs)]
        delay = 0.05
        deadline = time.monotonic() + 45
        while True:
            try:
                return stub.CreateVolume(create_request(csi, name), timeout=10).volume.volume_id
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(1.0, delay * 2)

    with ThreadPoolExecutor(max_workers=32) as pool:
        volume_ids = list(pool.map(provision, sorted(set(names))))
    recovered_seconds = time.monotonic() - thawed
    sampler.stop()

    per_name = volumes_by_name(heketi)
    duplicates = {name: count for name, count in per_name.items() if count > 1}
    print(f"\n{ROUNDS} floods of {CALLS} CreateVolume ({DISTINCT_NAMES} names) with Heketi stopped: answers "
          f"{ {code.name: count for code, count in answers.most_common()} } in {flood_seconds:.1f} s; "
          f"threads idle {idle_threads} peak {sampler.peak_threads} (bound {MAX_THREADS}); "
          f"RSS idle {idle_rss / 1024:.1f} MB peak {sampler.peak_rss_kib / 1024:.1f} MB "
          f"(bound idle + {MAX_RSS_GROWTH_MB}); "
          f"Probe during the flood max {max(probe_ms):.1f} ms; all {len(volume_ids)} names created "
          f"{recovered_seconds:.1f} s after Heketi answered again; duplicates {len(duplicates)}")
    assert len(set(volume_ids)) == DISTINCT_NAMES
    assert duplicates == {}
    assert len(per_name) == DISTINCT_NAMES
    assert sampler.peak_threads <= MAX_THREADS, (idle_threads, sampler.peak_threads)
    assert sampler.peak_rss_kib <= idle_rss + MAX_RSS_GROWTH_MB * 1024, (idle_rss, sampler.peak_rss_kib)
    assert driver.process.poll() is None
