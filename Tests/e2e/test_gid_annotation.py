"""The controller's GID annotation reconciler (issue 15, item 1): the real binary against a fake
Kubernetes API (fake_kube_api.py) over HTTPS with a service-account directory, as in a pod.

What it must do: keep `pv.beta.kubernetes.io/gid` on every PV of this driver whose
`volumeAttributes.gid` is a decimal number, by listing (paged), watching (bookmarks, resuming from
the last resourceVersion, relisting on 410) and patching only what lacks or differs; other PVs
are never touched; API errors are retried with backoff and never hold up RPCs; off with
`--annotate-gid=false` and outside a cluster.

The first tests check the fake itself (they need no driver).
"""

import http.client
import json
import ssl
import statistics
import subprocess
import time

import pytest

import heketi_testlib
from conftest import controller_args
from fake_kube_api import GID_ANNOTATION, PV_PATH, FakeKubeAPI, make_pv

MERGE_PATCH = "application/merge-patch+json"
# The goal: the annotation lands within 1 s of the PV's creation.
LATENCY_GOAL = 1.0


@pytest.fixture
def start_kube():
    started = []

    def start(**options) -> FakeKubeAPI:
        api = FakeKubeAPI(**options).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def kube(start_kube):
    return start_kube()


def patch_body(gid: str) -> dict:
    return {"metadata": {"annotations": {GID_ANNOTATION: gid}}}


def start_reconciler(start_driver, kube, *extra, env=None, args=None):
    """A controller (no Heketi needed) pointed at the fake as if in a pod."""
    base = args if args is not None else ["--mode", "controller", "--log-level", "debug"]
    return start_driver(*base, *kube.driver_args(), *extra, env={**kube.driver_env(), **(env or {})})


def synced(kube, timeout=10.0):
    """Waits until the driver has listed and holds a watch open."""
    kube.wait_for(lambda: kube.open_watches >= 1, timeout, "the driver's watch")


def log_lines(driver, level=None):
    lines = driver.log().splitlines()
    if level is None:
        return lines
    return [line for line in lines if line.split(" ", 2)[1:2] == [level]]


def quiet(kube, kind, seconds):
    """Asserts that no request of `kind` arrives for `seconds`."""
    before = kube.count(kind)
    time.sleep(seconds)
    assert kube.count(kind) == before, kube.requests_of(kind)[before:]


def statuses(kube, name):
    return [r.status for r in kube.requests_of("patch", name)]


# --------------------------------------------------------------------------- the fake itself

class WatchClient:
    """A plain watch over http.client, reading events line by line from the chunked stream."""

    def __init__(self, kube, query, token=None):
        context = ssl.create_default_context(cafile=str(kube.sa_dir / "ca.crt"))
        self.connection = http.client.HTTPSConnection("127.0.0.1", kube.port, context=context, timeout=5)
        self.connection.request("GET", f"{PV_PATH}?{query}",
                                headers={"Authorization": f"Bearer {token or kube.token}"})
        self.response = self.connection.getresponse()

    def next(self):
        line = self.response.readline()
        return json.loads(line) if line else None

    def close(self):
        self.connection.close()


def call(kube, method, path, body=None, token=None, content_type=MERGE_PATCH):
    context = ssl.create_default_context(cafile=str(kube.sa_dir / "ca.crt"))
    connection = http.client.HTTPSConnection("127.0.0.1", kube.port, context=context, timeout=5)
    headers = {"Authorization": f"Bearer {token or kube.token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_fake_kube_api_tls_token_and_paging(kube):
    kube.create_pvs([make_pv(f"pv-{i}") for i in range(7)])
    sa = kube.sa_dir
    # curl (libcurl and OpenSSL, as the driver) trusts the service account's CA for 127.0.0.1.
    curl = ["curl", "-sS", "--max-time", "5", "--cacert", str(sa / "ca.crt"), f"{kube.url}{PV_PATH}?limit=3"]
    answer = subprocess.run([*curl, "-H", f"Authorization: Bearer {(sa / 'token').read_text()}"],
                            capture_output=True, text=True, timeout=10)
    assert answer.returncode == 0, answer.stderr
    first = json.loads(answer.stdout)
    assert [item["metadata"]["name"] for item in first["items"]] == ["pv-0", "pv-1", "pv-2"]
    assert first["metadata"]["continue"] and first["metadata"]["remainingItemCount"] == 4
    unauthorized = subprocess.run([*curl, "-w", "%{http_code}", "-o", "/dev/null"], capture_output=True, text=True,
                                  timeout=10)
    assert unauthorized.stdout == "401"
    untrusted = subprocess.run(["curl", "-sS", "--max-time", "5", f"{kube.url}{PV_PATH}"], capture_output=True,
                               timeout=10)
    assert untrusted.returncode == 60  # the server's certificate is not trusted by the system's CAs

    # The next pages continue the first one's snapshot: a PV created since is not in them.
    kube.create_pv(make_pv("pv-late"))
    names, page = [], first
    while page["metadata"].get("continue"):
        status, page = call(kube, "GET", f"{PV_PATH}?limit=3&continue={page['metadata']['continue']}")
        assert status == 200 and page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [item["metadata"]["name"] for item in page["items"]]
    assert names == ["pv-3", "pv-4", "pv-5", "pv-6"]
    status, page = call(kube, "GET", f"{PV_PATH}?limit=3")
    status, _ = call(kube, "GET", f"{PV_PATH}?limit=3&continue=nonsense")
    assert status == 410
    kube.create_pv(make_pv("pv-later"))
    kube.compact()  # the first page's revision is gone now
    status, expired = call(kube, "GET", f"{PV_PATH}?limit=3&continue={page['metadata']['continue']}")
    assert status == 410 and expired["reason"] == "Expired"
    assert [r.kind for r in kube.requests][-2:] == ["list", "list"]


def test_fake_kube_api_list_pages_are_one_consistent_snapshot(kube):
    kube.create_pvs([make_pv(f"pv-{i}") for i in range(5)])
    status, first = call(kube, "GET", f"{PV_PATH}?limit=2")
    kube.create_pv(make_pv("pv-0a"))
    kube.delete_pv("pv-4")
    names, page = [i["metadata"]["name"] for i in first["items"]], first
    while page["metadata"].get("continue"):
        status, page = call(kube, "GET", f"{PV_PATH}?limit=2&continue={page['metadata']['continue']}")
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == [f"pv-{i}" for i in range(5)]


def test_fake_kube_api_watch_events_bookmarks_and_expiry(start_kube):
    kube = start_kube(bookmark_interval=0.2)
    kube.create_pv(make_pv("pv-a"))
    _, listed = call(kube, "GET", PV_PATH)
    rv = listed["metadata"]["resourceVersion"]
    watch = WatchClient(kube, f"watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=30")
    assert watch.response.status == 200 and watch.response.getheader("Transfer-Encoding") == "chunked"
    kube.create_pv(make_pv("pv-b"))
    added = watch.next()
    assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "pv-b"
    status, patched = call(kube, "PATCH", f"{PV_PATH}/pv-b", patch_body("40000"))
    assert status == 200 and patched["metadata"]["annotations"][GID_ANNOTATION] == "40000"
    modified = watch.next()
    assert modified["type"] == "MODIFIED"
    assert int(modified["object"]["metadata"]["resourceVersion"]) > int(added["object"]["metadata"]["resourceVersion"])
    # A patch that changes nothing takes no resourceVersion and makes no event.
    status, same = call(kube, "PATCH", f"{PV_PATH}/pv-b", patch_body("40000"))
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    elsewhere = kube.bump_rv(50)
    bookmark = watch.next()
    assert bookmark == {"type": "BOOKMARK", "object": {"kind": "PersistentVolume", "apiVersion": "v1",
                                                       "metadata": {"resourceVersion": str(elsewhere),
                                                                    "creationTimestamp": None},
                                                       "spec": {}, "status": {}}}
    assert kube.close_watches() == 1
    assert watch.next() is None  # a clean end of the chunked stream
    watch.close()
    kube.compact()
    expired = WatchClient(kube, f"watch=true&resourceVersion={rv}")
    assert expired.response.status == 200
    error = expired.next()
    assert error["type"] == "ERROR" and error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    assert expired.next() is None
    expired.close()
    kube.expired_as = "status"
    status, body = call(kube, "GET", f"{PV_PATH}?watch=true&resourceVersion={rv}")
    assert status == 410 and body["kind"] == "Status"
    # From the compaction point on, watching works, and timeoutSeconds ends the stream.
    short = WatchClient(kube, f"watch=1&resourceVersion={kube.resource_version}&timeoutSeconds=1")
    started = time.monotonic()
    assert short.next() is None and 0.9 < time.monotonic() - started < 3
    short.close()
    live = WatchClient(kube, f"watch=true&resourceVersion={kube.resource_version}")
    assert kube.wait_for(lambda: kube.open_watches == 1, 5, "the watch") and kube.expire_watches() == 1
    assert live.next()["object"]["code"] == 410
    live.close()


def test_fake_kube_api_faults_conflicts_and_rotation(kube):
    kube.create_pv(make_pv("pv-a"))
    kube.fail_patches(1, 409)
    assert call(kube, "PATCH", f"{PV_PATH}/pv-a", patch_body("1"))[0] == 409
    assert call(kube, "PATCH", f"{PV_PATH}/pv-a", patch_body("1"))[0] == 200
    stale = {"metadata": {"resourceVersion": "1", "annotations": {GID_ANNOTATION: "2"}}}
    assert call(kube, "PATCH", f"{PV_PATH}/pv-a", stale)[0] == 409
    assert call(kube, "PATCH", f"{PV_PATH}/pv-a", patch_body("1"), content_type="application/json-patch+json")[0] == 415
    assert call(kube, "PATCH", f"{PV_PATH}/pv-gone", patch_body("1"))[0] == 404
    kube.fail_patches(1, 403)
    status, forbidden = call(kube, "PATCH", f"{PV_PATH}/pv-a", patch_body("1"))
    assert status == 403 and 'cannot patch resource "persistentvolumes"' in forbidden["message"]
    kube.fail("watch", 500, count=1, message="etcd is down", as_event=True)
    watch = WatchClient(kube, "watch=true")
    assert watch.response.status == 200 and watch.next()["object"]["message"] == "etcd is down"
    assert watch.next() is None
    watch.close()
    kube.fail("list", 500, seconds=0.3, message="etcd is slow")
    status, failed = call(kube, "GET", PV_PATH)
    assert status == 500 and failed["message"] == "etcd is slow" and call(kube, "GET", PV_PATH)[0] == 500
    time.sleep(0.35)
    assert call(kube, "GET", PV_PATH)[0] == 200
    old = kube.token
    new = kube.rotate_token()
    assert (kube.sa_dir / "token").read_text() == new != old
    assert call(kube, "GET", PV_PATH, token=old)[0] == 401
    assert call(kube, "GET", PV_PATH, token=new)[0] == 200
    assert [r.kind for r in kube.requests_of()][:2] == ["patch", "patch"]
    assert kube.patch_times().keys() == {"pv-a", "pv-gone"}


# --------------------------------------------------------------------------- the reconciler

def test_pvs_existing_at_start_are_annotated_over_three_list_pages_and_nothing_else(kube, start_driver):
    need = {}
    pvs = []
    for i in range(1100):
        pvs.append(make_pv(f"pvc-{i:04d}", gid=str(40000 + i)))
        need[f"pvc-{i:04d}"] = str(40000 + i)
    for i in range(10):  # an annotation that differs from the volume's GID is corrected
        pvs.append(make_pv(f"pvc-wrong-{i}", gid=str(45000 + i), annotations={GID_ANNOTATION: "1234"}))
        need[f"pvc-wrong-{i}"] = str(45000 + i)
    untouched = []
    untouched += [make_pv(f"pvc-right-{i}", gid=str(46000 + i), annotations={GID_ANNOTATION: str(46000 + i)})
                  for i in range(30)]
    untouched += [make_pv(f"pvc-nfs-{i}", driver="nfs.csi.k8s.io", gid=str(47000 + i)) for i in range(20)]
    untouched += [make_pv(f"pvc-nogid-{i}", gid=None) for i in range(20)]
    untouched += [make_pv(f"pvc-badgid-{value}", gid=gid) for value, gid in
                  [("empty", ""), ("word", "abc"), ("hex", "0x9c40"), ("float", "40000.5")]]
    untouched += [make_pv(f"pvc-intree-{i}", in_tree=True) for i in range(10)]
    untouched += [make_pv(f"pvc-nosource-{i}", driver=None) for i in range(6)]
    pvs += untouched
    assert len(pvs) == 1200
    kube.create_pvs(pvs)
    before = {pv["metadata"]["name"]: kube.pv(pv["metadata"]["name"])["metadata"]["resourceVersion"]
              for pv in untouched}

    started = time.monotonic()
    driver = start_reconciler(start_driver, kube)
    kube.wait_for(lambda: all(kube.annotations()[name] == gid for name, gid in need.items()), 120,
                  "every PV of the driver annotated", interval=0.05)
    elapsed = time.monotonic() - started
    print(f"\n1,110 PVs annotated (of 1,200 over 3 list pages) {elapsed:.2f}s after the driver started")
    synced(kube)
    quiet(kube, "patch", 1.5)  # the MODIFIED events of its own patches cause none

    lists = kube.requests_of("list")
    assert len(lists) == 3, lists
    assert lists[0].query == {"limit": "500"}
    for previous, page in zip(lists, lists[1:]):
        assert page.query == {"limit": "500", "continue": previous.response["metadata"]["continue"]}
    assert "continue" not in lists[2].response["metadata"]
    [watch] = kube.requests_of("watch")
    assert watch.query.get("watch") == "true" and watch.query.get("allowWatchBookmarks") == "true"
    assert watch.query["resourceVersion"] == lists[0].response["metadata"]["resourceVersion"]
    assert 300 <= int(watch.query["timeoutSeconds"]) <= 600, watch.query

    patches = kube.requests_of("patch")
    assert sorted(r.name for r in patches) == sorted(need), "one PATCH for each PV that needs one, no other"
    for request in patches:
        assert request.method == "PATCH" and request.path == f"{PV_PATH}/{request.name}"
        assert request.headers["content-type"].split(";")[0].strip() == MERGE_PATCH
        assert request.json() == patch_body(need[request.name])
        assert request.status == 200
    for request in kube.requests_of():
        assert request.headers["authorization"] == f"Bearer {kube.token}"
        assert request.headers.get("accept", "").startswith("application/json"), request.headers
        assert request.headers.get("user-agent", "").startswith("glusterfs-csi/"), request.headers
    for name, rv in before.items():
        assert kube.pv(name)["metadata"]["resourceVersion"] == rv, f"{name} was changed"
    [on] = [line for line in log_lines(driver) if "gid annotation on" in line]
    assert kube.url in on


def test_a_new_pv_is_annotated_within_a_second(kube, start_driver):
    start_reconciler(start_driver, kube)
    synced(kube)
    latencies = []
    for i in range(20):
        name = f"pvc-new-{i:02d}"
        kube.create_pv(make_pv(name, gid=str(41000 + i)))
        kube.wait_for(lambda: kube.annotation(name) == str(41000 + i), 10, f"{name} annotated")
        latencies.append(kube.patch_times()[name][0] - kube.created_at[name])
        time.sleep(0.05)
    # A burst, as when a StatefulSet's claims are provisioned together.
    burst = [f"pvc-burst-{i:03d}" for i in range(100)]
    kube.create_pvs([make_pv(name, gid=str(42000 + i)) for i, name in enumerate(burst)])
    kube.wait_for(lambda: all(kube.annotations()[name] for name in burst), 30, "the burst annotated")
    burst_latencies = [kube.patch_times()[name][0] - kube.created_at[name] for name in burst]
    print(f"\ncreation to PATCH, 20 PVs one by one: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms; 100 PVs at once: p50 {statistics.median(burst_latencies) * 1000:.1f} "
          f"ms, max {max(burst_latencies) * 1000:.1f} ms")
    assert max(latencies) < LATENCY_GOAL, latencies
    assert max(burst_latencies) < 2 * LATENCY_GOAL, burst_latencies
    assert all(len(times) == 1 for times in kube.patch_times().values())


def test_the_annotation_is_kept_when_someone_removes_or_changes_it(kube, start_driver):
    kube.create_pv(make_pv("pvc-kept", gid="40001"))
    start_reconciler(start_driver, kube)
    kube.wait_for(lambda: kube.annotation("pvc-kept") == "40001", 10, "the first annotation")
    kube.update_pv("pvc-kept", {"metadata": {"annotations": {GID_ANNOTATION: None}}})
    kube.wait_for(lambda: kube.annotation("pvc-kept") == "40001", 5, "the annotation back after removal")
    kube.update_pv("pvc-kept", {"metadata": {"annotations": {GID_ANNOTATION: "0"}}})
    kube.wait_for(lambda: kube.annotation("pvc-kept") == "40001", 5, "the annotation back after a change")
    # Changes that leave the annotation right cause no PATCH.
    kube.update_pv("pvc-kept", {"metadata": {"labels": {"team": "a"}}})
    kube.delete_pv("pvc-kept")
    quiet(kube, "patch", 1.0)
    assert statuses(kube, "pvc-kept") == [200, 200, 200]


def test_only_pvs_of_the_configured_driver_name(kube, start_driver):
    kube.create_pvs([make_pv("pvc-ours", driver="gluster.example.com", gid="40000"),
                     make_pv("pvc-default-name", gid="40001")])
    start_reconciler(start_driver, kube, "--driver-name", "gluster.example.com")
    kube.wait_for(lambda: kube.annotation("pvc-ours") == "40000", 10, "the PV of gluster.example.com")
    synced(kube)
    quiet(kube, "patch", 1.0)
    assert kube.annotation("pvc-default-name") is None


def test_watch_bookmarks_are_followed(start_kube, start_driver):
    kube = start_kube(bookmark_interval=0.3)
    kube.create_pv(make_pv("pvc-a", gid="40000"))
    start_reconciler(start_driver, kube)
    synced(kube)
    kube.wait_for(lambda: kube.annotation("pvc-a") == "40000", 5, "the first PV annotated")
    [first] = kube.watches()
    lists = kube.count("list")
    # Other kinds change: the revision moves on while PVs stay as they are; bookmarks carry it.
    moved = kube.bump_rv(1000)
    kube.wait_for(lambda: first.bookmarks_sent and first.bookmarks_sent[-1] >= moved, 5,
                  "a bookmark with the new revision")
    # History before the bookmark goes: resuming from anything older would be a 410 and a relist.
    kube.compact(moved)
    kube.close_watches()
    kube.wait_for(lambda: len(kube.requests_of("watch")) >= 2, 10, "the watch again")
    again = kube.requests_of("watch")[1]
    assert again.query["resourceVersion"] == str(first.bookmarks_sent[-1]), again.query
    assert again.status == 200 and kube.count("list") == lists
    kube.create_pv(make_pv("pvc-b", gid="40002"))
    kube.wait_for(lambda: kube.annotation("pvc-b") == "40002", 5, "a PV created after the re-watch")


def test_an_ended_stream_resumes_from_the_last_event_without_relisting(kube, start_driver):
    start_reconciler(start_driver, kube)
    synced(kube)
    lists = kube.count("list")
    kube.max_watch_seconds = 0.5  # the API server ends watches early (its own request timeout)
    kube.close_watches()
    kube.wait_for(lambda: len(kube.requests_of("watch")) >= 4, 10, "a few re-watches")
    # Events of a stream that ended before delivering them: the next watch starts before them.
    kube.max_watch_seconds = None
    kube.wait_for(lambda: kube.open_watches == 1, 5, "a long watch")
    kube.pause_watches()
    kube.create_pv(make_pv("pvc-between", gid="40003"))
    kube.close_watches()
    kube.resume_watches()
    kube.wait_for(lambda: kube.annotation("pvc-between") == "40003", 5, "the PV created between two watches")
    assert kube.count("list") == lists
    watches = kube.requests_of("watch")
    for previous, current in zip(watches, watches[1:]):
        assert int(current.query["resourceVersion"]) >= int(previous.query["resourceVersion"])


def test_a_reset_watch_connection_is_survived(kube, start_driver):
    driver = start_reconciler(start_driver, kube)
    synced(kube)
    watches = kube.count("watch")
    kube.close_watches(abrupt=True)  # no last chunk: the connection is shut down mid-stream
    kube.create_pv(make_pv("pvc-after-reset", gid="40004"))
    kube.wait_for(lambda: kube.annotation("pvc-after-reset") == "40004", 10, "the PV created after a reset")
    latency = kube.patch_times()["pvc-after-reset"][0] - kube.created_at["pvc-after-reset"]
    print(f"\nannotated {latency * 1000:.0f} ms after a reset watch connection; "
          f"{kube.count('list') - 1} relist(s), {kube.count('watch') - watches} new watch(es)")
    assert driver.process.poll() is None


def test_watches_that_end_at_once_are_not_retried_in_a_hot_loop(kube, start_driver):
    """A proxy or an API server on its way down may accept watches and end them at once, with no
    event; reconnecting at once each time would flood the API server."""
    start_reconciler(start_driver, kube)
    synced(kube)
    before = kube.count("watch")
    kube.max_watch_seconds = 0
    kube.close_watches()
    time.sleep(3)
    kube.max_watch_seconds = None
    during = kube.count("watch") - before
    print(f"\n{during} watch requests in 3 s while every watch ended at once")
    assert during <= 10, f"{during} watch requests in 3 s"
    kube.create_pv(make_pv("pvc-after", gid="40013"))
    kube.wait_for(lambda: kube.annotation("pvc-after") == "40013", 70, "a PV once watches last again")


def test_error_events_back_off(kube, start_driver):
    """An ERROR event other than 410 (the API server's way to report a failure after a watch
    started) is an error like any other: a warning with its status and message, then backoff."""
    driver = start_reconciler(start_driver, kube)
    synced(kube)
    before = kube.count("watch")
    kube.fail("watch", 500, seconds=3, message="etcd cluster is unavailable (fake)", as_event=True)
    kube.close_watches()
    time.sleep(3)
    during = kube.count("watch") - before
    print(f"\n{during} watch requests in 3 s while each got an ERROR event with 500")
    assert during <= 10, f"{during} watch requests in 3 s"
    warnings = [line for line in log_lines(driver, "warning") if "etcd cluster is unavailable (fake)" in line]
    assert warnings and "500" in warnings[0], log_lines(driver, "warning")[-3:]
    kube.create_pv(make_pv("pvc-after", gid="40014"))
    kube.wait_for(lambda: kube.annotation("pvc-after") == "40014", 70, "a PV once watches work again")


@pytest.mark.parametrize("how", ["http-410", "error-event", "error-event-mid-stream"])
def test_410_gone_relists_and_pvs_created_meanwhile_are_annotated(start_kube, start_driver, how):
    kube = start_kube(expired_as="status" if how == "http-410" else "event")
    kube.create_pvs([make_pv(f"pvc-{i}", gid=str(40000 + i)) for i in range(3)])
    driver = start_reconciler(start_driver, kube)
    synced(kube)
    kube.wait_for(lambda: all(kube.annotation(f"pvc-{i}") for i in range(3)), 10, "the first PVs")
    lists = kube.count("list")
    kube.pause_watches()  # the driver's watch sees nothing of what follows
    kube.create_pvs([make_pv(f"pvc-meanwhile-{i}", gid=str(41000 + i)) for i in range(3)])
    kube.delete_pv("pvc-0")
    kube.compact()
    if how == "error-event-mid-stream":
        kube.expire_watches()
    else:
        kube.close_watches()
    kube.resume_watches()
    kube.wait_for(lambda: all(kube.annotation(f"pvc-meanwhile-{i}") == str(41000 + i) for i in range(3)), 15,
                  "the PVs created while the watch was behind")
    relists = kube.requests_of("list")[lists:]
    assert relists and "continue" not in relists[0].query and "resourceVersion" not in relists[0].query
    # Then it watches from the new list's resourceVersion.
    kube.wait_for(lambda: kube.requests_of("watch")[-1].time > relists[-1].time, 5, "the watch after the relist")
    assert kube.requests_of("watch")[-1].query["resourceVersion"] == \
        relists[-1].response["metadata"]["resourceVersion"]
    assert statuses(kube, "pvc-1") == [200], "a relist patches only what still needs it"
    assert not [line for line in log_lines(driver) if " error " in line or " critical " in line]


def test_an_expired_continue_token_starts_the_list_again(kube, start_driver):
    kube.create_pvs([make_pv(f"pvc-{i:03d}", gid=str(40000 + i)) for i in range(600)])
    kube.fail("continue", 410, count=1)
    start_reconciler(start_driver, kube)
    kube.wait_for(lambda: all(kube.annotations().values()), 60, "all 600 annotated", interval=0.05)
    lists = kube.requests_of("list")
    assert [("continue" in r.query, r.status) for r in lists[:4]] == [(False, 200), (True, 410), (False, 200),
                                                                     (True, 200)], lists


def test_409_conflict_is_retried(kube, start_driver):
    start_reconciler(start_driver, kube)
    synced(kube)
    kube.fail_patches(2, 409)
    kube.create_pv(make_pv("pvc-conflict", gid="40005"))
    kube.wait_for(lambda: kube.annotation("pvc-conflict") == "40005", 10, "the PV annotated after two conflicts")
    assert statuses(kube, "pvc-conflict") == [409, 409, 200]
    times = kube.patch_times()["pvc-conflict"]
    print(f"\n409 retries after {(times[1] - times[0]) * 1000:.0f} ms and {(times[2] - times[1]) * 1000:.0f} ms")
    # A conflict says the PV changed (the fake changes it and sends MODIFIED), not that the API
    # server is unwell: retried at once or on that event, so the annotation still lands within
    # the goal.
    assert times[2] - kube.created_at["pvc-conflict"] < LATENCY_GOAL, times


def test_404_drops_the_pv(kube, start_driver):
    start_reconciler(start_driver, kube)
    synced(kube)
    kube.fail_patches(1, 404)
    kube.create_pv(make_pv("pvc-vanishing", gid="40006"))
    kube.wait_for(lambda: kube.requests_of("patch", "pvc-vanishing"), 5, "the PATCH")
    kube.delete_pv("pvc-vanishing")
    quiet(kube, "patch", 2.0)
    assert statuses(kube, "pvc-vanishing") == [404]
    kube.create_pv(make_pv("pvc-next", gid="40007"))
    kube.wait_for(lambda: kube.annotation("pvc-next") == "40007", 5, "the next PV")


def test_403_on_patch_warns_about_the_rbac_rule_and_retries_with_backoff(kube, start_driver):
    driver = start_reconciler(start_driver, kube)
    synced(kube)
    # A message of its own: the warning must name the permission, not echo the fake's default text.
    kube.fail_patches(3, 403, message="access denied by the test")
    kube.create_pv(make_pv("pvc-forbidden", gid="40008"))
    kube.wait_for(lambda: kube.annotation("pvc-forbidden") == "40008", 30, "the PV annotated once 403s stop")
    assert statuses(kube, "pvc-forbidden") == [403, 403, 403, 200]
    times = kube.patch_times()["pvc-forbidden"]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    print(f"\n403 retries after {', '.join(f'{gap:.2f}' for gap in gaps)} s")
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0, gaps  # 1 s doubling, some jitter
    warnings = [line for line in log_lines(driver, "warning") if "persistentvolumes" in line and "patch" in line]
    assert warnings, log_lines(driver, "warning")
    assert any("access denied by the test" in line for line in warnings), warnings


def test_list_errors_back_off_and_rpcs_are_answered_meanwhile(csi, kube, heketi, start_driver):
    kube.create_pvs([make_pv(f"pvc-{i}", gid=str(40000 + i)) for i in range(3)])
    kube.fail("list", 500, seconds=6, message="etcdserver: request timed out (fake)")
    started = time.monotonic()
    driver = start_driver(*controller_args(heketi, *kube.driver_args()), env=kube.driver_env())
    # While the API answers 500: Probe and a CreateVolume through Heketi are answered as ever.
    probe_started = time.monotonic()
    assert csi.grpc.IdentityStub(driver.channel()).Probe(csi.pb.ProbeRequest(), timeout=5).ready.value
    probe = time.monotonic() - probe_started
    capability = csi.pb.VolumeCapability(
        mount=csi.pb.VolumeCapability.MountVolume(),
        access_mode=csi.pb.VolumeCapability.AccessMode(mode=csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER))
    create_started = time.monotonic()
    created = csi.grpc.ControllerStub(driver.channel()).CreateVolume(csi.pb.CreateVolumeRequest(
        name="pvc-during-500s", capacity_range=csi.pb.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[capability], parameters={"gidMin": "40000", "gidMax": "50000"},
        secrets={"key": heketi_testlib.ADMIN_KEY}), timeout=30).volume
    create = time.monotonic() - create_started
    assert created.volume_context["gid"]
    assert time.monotonic() - started < 6, "the RPCs must have run while the list failed"
    print(f"\nwhile the list answered 500: Probe {probe * 1000:.0f} ms, CreateVolume {create * 1000:.0f} ms")
    kube.wait_for(lambda: all(kube.annotation(f"pvc-{i}") == str(40000 + i) for i in range(3)), 30,
                  "the PVs annotated once the list works")
    failed = [r for r in kube.requests_of("list") if r.status == 500]
    times = [r.time for r in failed]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    print(f"list retries after {', '.join(f'{gap:.2f}' for gap in gaps)} s")
    assert 2 <= len(failed) <= 5, failed  # retried, but no hot loop: about 0, 1, 3 s (then 7 s)
    assert all(gap >= 0.5 for gap in gaps), gaps
    warnings = [line for line in log_lines(driver, "warning") if "request timed out (fake)" in line]
    assert warnings and all("500" in line for line in warnings), log_lines(driver, "warning")


def test_watch_errors_back_off_and_recover(kube, start_driver):
    kube.fail("watch", 403, count=2)
    driver = start_reconciler(start_driver, kube)
    synced(kube, timeout=15)
    assert [r.status for r in kube.requests_of("watch")][:3] == [403, 403, 200]
    kube.create_pv(make_pv("pvc-after-403", gid="40009"))
    kube.wait_for(lambda: kube.annotation("pvc-after-403") == "40009", 5, "a PV after the watch recovered")
    kube.fail("watch", 503, count=1)
    kube.close_watches(abrupt=True)
    kube.create_pv(make_pv("pvc-after-503", gid="40010"))
    kube.wait_for(lambda: kube.annotation("pvc-after-503") == "40010", 15, "a PV after a 503")
    # The status and the API's message.
    assert [line for line in log_lines(driver, "warning") if "403" in line and 'cannot watch resource' in line], \
        log_lines(driver, "warning")
    assert driver.process.poll() is None


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_annotate_gid_false_makes_no_request(kube, start_driver, how):
    kube.create_pv(make_pv("pvc-a", gid="40000"))
    if how == "flag":
        driver = start_reconciler(start_driver, kube, "--annotate-gid=false")
    else:
        driver = start_reconciler(start_driver, kube, env={"GLUSTERFS_CSI_ANNOTATE_GID": "false"})
    time.sleep(1.5)
    assert kube.connections == 0 and kube.requests_of() == []
    lines = [line for line in log_lines(driver) if "gid annotation" in line]
    assert len(lines) == 1 and " info gid annotation off: --annotate-gid=false" in lines[0], lines


def test_outside_a_cluster_it_is_off_with_one_line(kube, start_driver, monkeypatch, short_dir):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    driver = start_driver("--mode", "controller", *kube.driver_args(),
                          env={"KUBERNETES_SERVICE_PORT": str(kube.port)})
    (short_dir / "empty-sa").mkdir()
    no_token = start_driver("--mode", "controller", "--kube-service-account-dir", str(short_dir / "empty-sa"),
                            env=kube.driver_env())
    time.sleep(1.5)
    assert kube.connections == 0
    for started in (driver, no_token):
        lines = [line for line in log_lines(started) if "gid annotation" in line]
        assert len(lines) == 1 and " info gid annotation off: not running in a cluster (" in lines[0], lines


def test_the_node_plugin_does_not_reconcile(kube, start_driver):
    driver = start_reconciler(start_driver, kube, args=["--mode", "node", "--node-id", "n1", "--log-level", "debug"])
    time.sleep(1.5)
    assert kube.connections == 0
    assert not [line for line in log_lines(driver) if "gid annotation on" in line]


def test_a_rotated_token_is_read_before_every_request(kube, start_driver):
    start_reconciler(start_driver, kube)
    synced(kube)
    old = kube.token
    # The open watch was authorized with the old token; the PATCH is a new request.
    new = kube.rotate_token()
    kube.create_pv(make_pv("pvc-new-token", gid="40011"))
    kube.wait_for(lambda: kube.annotation("pvc-new-token") == "40011", 5, "a PATCH with the new token")
    # The next watch too.
    newer = kube.rotate_token()
    kube.close_watches()
    kube.wait_for(lambda: kube.open_watches == 1 and kube.requests_of("watch")[-1].status == 200, 10, "a watch")
    kube.create_pv(make_pv("pvc-newer-token", gid="40012"))
    kube.wait_for(lambda: kube.annotation("pvc-newer-token") == "40012", 5, "a PATCH after the second rotation")
    assert [r for r in kube.requests_of() if r.status == 401] == []
    assert kube.requests_of("patch", "pvc-new-token")[0].headers["authorization"] == f"Bearer {new}"
    assert kube.requests_of("watch")[-1].headers["authorization"] == f"Bearer {newer}"
    assert old != new != newer


def test_sigterm_with_a_watch_open_exits_promptly(kube, start_driver):
    driver = start_reconciler(start_driver, kube)
    synced(kube)
    started = time.monotonic()
    assert driver.terminate(timeout=15) == 0
    print(f"\nexit {time.monotonic() - started:.2f}s after SIGTERM with a watch open")
    assert time.monotonic() - started < 10
