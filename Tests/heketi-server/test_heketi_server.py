"""Tests of the Heketi-compatible test server (itself test support, not product).

Every test runs the real server as a process on a loopback port and talks to it
over HTTP with an independent JWT implementation (heketi_testlib.py), so the
verifier and the minting code cannot share a bug. Expectations come from
shared/reference/heketi-api.md.

Run: python3 -m pytest -q Tests/heketi-server
The gluster-mode tests need root, FUSE and a running glusterd; they are skipped,
with the reason, when glusterd is not running (start it with scripts/start-glusterd).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from heketi_testlib import (ADMIN_KEY, KIB_PER_GIB, SERVER, USER_KEY, gluster_volume_exists, glusterd_problem, mint,
                            run, space_needed)


# =========================================================================== authentication

def test_missing_token_is_401_with_heketi_message(server):
    r = server.request("GET", "/volumes", auth=None)
    assert (r.status, r.text) == (401, "Required authorization token not found\n")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(server, scheme):
    r = server.request("GET", "/volumes", headers={"Authorization": f"{scheme} {mint('GET', '/volumes')}"})
    assert r.status == 200, r


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer a b"])
def test_other_scheme_or_malformed_header_is_400(server, value):
    r = server.request("GET", "/volumes", headers={"Authorization": value}, auth=None)
    assert r.status == 400, r


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_any_hmac_algorithm_is_accepted(server, alg):
    assert server.request("GET", "/volumes", token=mint("GET", "/volumes", alg=alg)).status == 200


def test_alg_none_is_401(server):
    r = server.request("GET", "/volumes", token=mint("GET", "/volumes", alg="none"))
    assert r.status == 401 and "Unexpected signing method: none" in r.text


@pytest.mark.parametrize("claims,drop,needle", [
    ({"iss": "root"}, (), "Unknown user"),
    ({}, ("iss",), "Token missing iss claim"),
    ({}, ("exp",), "Token is expired"),
    ({"exp": int(time.time()) - 30}, (), "Token is expired by"),
    ({}, ("qsh",), "Invalid qsh claim in token"),
])
def test_bad_claims_are_401(server, claims, drop, needle):
    r = server.request("GET", "/volumes", token=mint("GET", "/volumes", claims=claims, drop=drop))
    assert r.status == 401 and needle in r.text, r


def test_iat_leeway_is_120_seconds(server):
    assert server.request("GET", "/volumes", token=mint("GET", "/volumes", iat_in=100)).status == 200
    r = server.request("GET", "/volumes", token=mint("GET", "/volumes", iat_in=200))
    assert r.status == 401 and "Token used before issued" in r.text, r


def test_wrong_key_is_401_and_issuer_selects_the_key(server):
    r = server.request("GET", "/volumes", token=mint("GET", "/volumes", key="not-the-key"))
    assert r.status == 401 and "signature is invalid" in r.text
    # A user-issued token signed with the admin key does not verify: iss picks the user key.
    r = server.request("GET", "/volumes", token=mint("GET", "/volumes", iss="user", key=ADMIN_KEY))
    assert r.status == 401


def test_token_is_bound_to_method_and_exact_path(server):
    vid = server.create({"size": 1})
    tok = mint("GET", f"/volumes/{vid}")
    assert server.request("GET", f"/volumes/{vid}", token=tok).status == 200
    for method, path in (("DELETE", f"/volumes/{vid}"), ("GET", f"/volumes/{vid}/"), ("GET", "/volumes")):
        r = server.request(method, path, token=tok)
        assert (r.status, r.text) == (401, "Invalid qsh claim in token\n"), (method, path)
    # The query string is not part of the qsh.
    assert server.request("GET", f"/volumes/{vid}?x=1", token=tok).status == 200


def test_following_a_redirect_with_the_old_token_is_401(server):
    r = server.request("POST", "/volumes", {"size": 1})
    old = mint("POST", "/volumes")
    r2 = server.request("GET", r.header("Location"), token=old)
    assert (r2.status, r2.text) == (401, "Invalid qsh claim in token\n")


def test_user_role_may_only_list_and_create(server):
    assert server.request("GET", "/volumes", auth="user").status == 200
    r = server.request("POST", "/volumes", {"size": 1}, auth="user")
    assert r.status == 202
    queue = r.header("Location")
    vid = server.wait(queue).header("Location").rsplit("/", 1)[1]
    for method, path in (("GET", queue), ("GET", f"/volumes/{vid}"), ("DELETE", f"/volumes/{vid}"),
                         ("POST", f"/volumes/{vid}/expand"), ("GET", "/clusters"), ("GET", "/operations"),
                         ("GET", "/volumes/")):
        r = server.request(method, path, {"expand_size": 1} if method == "POST" else None, auth="user")
        assert (r.status, r.text) == (401, "Administrator access required\n"), (method, path)


def test_hello_and_metrics_need_no_auth(server):
    r = server.request("GET", "/hello", auth=None)
    assert (r.status, r.text) == (200, "Hello from Heketi")
    r = server.request("GET", "/metrics", auth=None)
    assert r.status == 200 and "heketi_up 1" in r.text and "heketi_device_free{" in r.text


def test_auth_runs_before_routing(server):
    assert server.request("GET", "/topology", auth=None).status == 401
    r = server.request("GET", "/topology")
    assert (r.status, r.text) == (404, "Invalid path or request\n")


def test_keys_and_tokens_never_reach_the_log(start_server):
    s = start_server()
    tokens = []
    for method, path in (("GET", "/volumes"), ("POST", "/volumes"), ("GET", "/clusters")):
        tok = mint(method, path)
        tokens.append(tok)
        s.request(method, path, {"size": 1} if method == "POST" else None, token=tok)
    s.request("GET", "/volumes", headers={"Authorization": f"Basic {ADMIN_KEY}"}, auth=None)
    s.stop()
    log = s.log()
    assert "GET /volumes" in log
    for secret in (ADMIN_KEY, USER_KEY, *tokens, tokens[0].split(".")[2]):
        assert secret not in log


def test_keys_may_come_from_flags(start_server, tmp_path):
    s = start_server("--admin-key", ADMIN_KEY, "--user-key", USER_KEY, env_keys=False)
    assert s.request("GET", "/volumes").status == 200


def test_missing_keys_refuse_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEKETI_")}
    proc = subprocess.run([sys.executable, str(SERVER), "--listen", "127.0.0.1:0"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "key" in proc.stderr


# =========================================================================== async queue

def test_create_queue_pending_then_303_then_delivered_once(server):
    server.faults(op_delay_ms=400)
    r = server.request("POST", "/volumes", {"size": 1, "name": "q1"})
    assert r.status == 202 and r.body == b""
    queue = r.header("Location")
    assert queue.startswith("/queue/") and len(queue.split("/")[2]) == 32
    p = server.request("GET", queue)
    assert (p.status, p.header("X-Pending"), p.body) == (200, "true", b"")
    done = server.wait(queue)
    assert done.status == 303
    vid = done.header("Location").split("/volumes/")[1]
    assert server.volume(vid)["name"] == "q1"
    again = server.request("GET", queue)
    assert (again.status, again.text) == (404, "Id not found\n")


def test_pending_create_is_hidden_but_holds_its_name(server):
    server.faults(op_delay_ms=800)
    r = server.request("POST", "/volumes", {"size": 1, "name": "held"})
    assert r.status == 202
    assert server.request("GET", "/volumes").json() == {"volumes": []}
    dup = server.request("POST", "/volumes", {"size": 3, "name": "held"})
    assert (dup.status, dup.text) == (500, "Failed to allocate new volume: Volume name 'held' already in use\n")
    vid = server.wait(r.header("Location")).header("Location").rsplit("/", 1)[1]
    assert server.request("GET", "/volumes").json() == {"volumes": [vid]}


def test_delete_queue_gives_204_and_volume_is_gone(server):
    vid = server.create({"size": 1})
    free_before_delete = server.free_kib()
    r = server.request("DELETE", f"/volumes/{vid}")
    assert r.status == 202 and r.header("Location").startswith("/queue/")
    done = server.wait(r.header("Location"))
    assert done.status == 204 and done.body == b""
    assert server.request("GET", r.header("Location")).status == 404
    g = server.request("GET", f"/volumes/{vid}")
    assert (g.status, g.text) == (404, "Id not found\n")
    assert server.free_kib() == free_before_delete + space_needed(KIB_PER_GIB)  # none: one brick


def test_executor_failure_is_500_text_and_rolls_back(server):
    free = server.free_kib()
    server.faults(fail_next_executor=1, executor_error="volume create: boom: failed: injected")
    r = server.request("POST", "/volumes", {"size": 2, "name": "boom", "durability": {"type": "replicate"}})
    done = server.wait(r.header("Location"))
    assert (done.status, done.text) == (500, "volume create: boom: failed: injected\n")
    assert server.request("GET", r.header("Location")).status == 404
    assert server.request("GET", "/volumes").json()["volumes"] == []
    assert server.free_kib() == free
    assert server.create({"size": 2, "name": "boom"})  # the name was freed


def test_peers_down_fails_create_and_delete_through_the_queue(server):
    vid = server.create({"size": 1, "name": "pd"})
    server.faults(peers_down=True)
    r = server.request("POST", "/volumes", {"size": 1, "name": "pd2"})
    done = server.wait(r.header("Location"))
    assert done.status == 500 and "Peer in Cluster" in done.text
    r = server.request("DELETE", f"/volumes/{vid}")
    done = server.wait(r.header("Location"))
    assert done.status == 500 and "Some of the peers are down" in done.text
    assert server.volume(vid)["name"] == "pd"  # the failed delete was rolled back
    server.faults(peers_down=False)
    assert server.wait(server.request("DELETE", f"/volumes/{vid}").header("Location")).status == 204


def test_racing_creates_of_one_name_make_exactly_one_volume(server):
    server.faults(op_delay_ms=200)
    results = []

    def create():
        results.append(server.request("POST", "/volumes", {"size": 1, "name": "race"}))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == [202] + [500] * 7
    ok = next(r for r in results if r.status == 202)
    assert server.wait(ok.header("Location")).status == 303
    assert len(server.request("GET", "/volumes").json()["volumes"]) == 1


def test_duplicate_name_is_refused_whatever_the_size(server):
    server.create({"size": 1, "name": "dup"})
    for size in (1, 2):
        r = server.request("POST", "/volumes", {"size": size, "name": "dup"})
        assert (r.status, r.text) == (500, "Failed to allocate new volume: Volume name 'dup' already in use\n")


def test_throttling_429_reserves_nothing(start_server):
    s = start_server("--max-inflight", "2")
    s.faults(op_delay_ms=1500)
    free = s.free_kib()
    a = s.request("POST", "/volumes", {"size": 1, "name": "t1"})
    b = s.request("POST", "/volumes", {"size": 1, "name": "t2"})
    c = s.request("POST", "/volumes", {"size": 1, "name": "t3"})
    assert (a.status, b.status) == (202, 202)
    assert (c.status, c.text) == (429, "Server busy. Retry operation later.\n")
    assert c.header("Retry-After") is None
    assert s.request("GET", "/volumes").status == 200  # reads are never throttled
    assert s.request("GET", "/operations").json()["in_flight"] == 2
    vid = s.wait(a.header("Location")).header("Location").rsplit("/", 1)[1]
    s.wait(b.header("Location"))
    assert s.free_kib() == free - 2 * space_needed(KIB_PER_GIB)
    s.faults(op_delay_ms=0)
    s.create({"size": 1, "name": "t3"})  # nothing was reserved for the refused request
    s.faults(busy_next=1)
    r = s.request("DELETE", f"/volumes/{vid}")
    assert r.status == 429
    assert s.request("DELETE", f"/volumes/{vid}").status == 202


def test_delete_while_a_delete_is_pending_is_500_conflict(server):
    vid = server.create({"size": 1})
    server.faults(op_delay_ms=600)
    first = server.request("DELETE", f"/volumes/{vid}")
    assert first.status == 202
    second = server.request("DELETE", f"/volumes/{vid}")
    assert (second.status, second.text) == (
        500, "Failed to set up volume delete: The target exists, contains other items, or is in use.\n")
    assert server.wait(first.header("Location")).status == 204
    gone = server.request("DELETE", f"/volumes/{vid}")
    assert (gone.status, gone.text) == (404, "Id not found\n")


# =========================================================================== restart / stale operations

def test_simulated_restart_makes_in_flight_creates_stale(server):
    server.faults(op_delay_ms=700)
    r = server.request("POST", "/volumes", {"size": 1, "name": "stale1"})
    assert r.status == 202
    info = server.test_api("POST", "/_test/restart").json()
    assert len(info["stale_operations"]) == 1
    assert server.request("GET", r.header("Location")).status == 404  # the queue was lost
    time.sleep(1.0)  # the old executor run finishes; it must not complete the stale op
    ops = server.request("GET", "/operations").json()
    assert ops == {"total": 1, "in_flight": 0, "stale": 1, "failed": 0, "new": 0}
    pending = server.request("GET", "/operations/pending").json()["pendingoperations"]
    assert [(p["type_name"], p["status"]) for p in pending] == [("create-volume", "stale")]
    assert server.request("GET", "/volumes").json()["volumes"] == []
    dup = server.request("POST", "/volumes", {"size": 1, "name": "stale1"})
    assert (dup.status, dup.text) == (500, "Failed to allocate new volume: Volume name 'stale1' already in use\n")
    server.faults(op_delay_ms=0)
    free = server.free_kib()
    c = server.request("POST", "/operations/pending/cleanup", {})
    assert c.status == 202
    assert server.wait(c.header("Location")).status == 204
    assert server.request("GET", "/operations").json()["total"] == 0
    assert server.free_kib() == free + space_needed(KIB_PER_GIB)
    server.create({"size": 1, "name": "stale1"})


def test_process_restart_keeps_volumes_and_makes_pending_ops_stale(start_server, tmp_path):
    state = tmp_path / "state.json"
    s = start_server(state_file=state)
    vid = s.create({"size": 2, "name": "keep", "durability": {"type": "replicate"}, "gid": 2001})
    before = s.volume(vid)
    s.faults(op_delay_ms=5000)
    r = s.request("POST", "/volumes", {"size": 1, "name": "interrupted"})
    assert r.status == 202
    s.stop()
    s2 = start_server(state_file=state)
    assert s2.volume(vid) == before
    assert s2.request("GET", "/volumes").json()["volumes"] == [vid]
    assert s2.request("GET", r.header("Location")).status == 404
    assert s2.request("GET", "/operations").json()["stale"] == 1
    dup = s2.request("POST", "/volumes", {"size": 1, "name": "interrupted"})
    assert dup.status == 500 and "already in use" in dup.text
    c = s2.request("POST", "/operations/pending/cleanup", {})
    assert s2.wait(c.header("Location")).status == 204
    s2.create({"size": 1, "name": "interrupted"})


def test_cleanup_validates_its_body(server):
    assert server.request("POST", "/operations/pending/cleanup", raw=b"").status == 422
    r = server.request("POST", "/operations/pending/cleanup", {"operations": ["xyz"]})
    assert r.status == 400 and "is not a valid UUID" in r.text


# =========================================================================== volume rules

@pytest.mark.parametrize("body,status,text", [
    ({}, 400, "validation failed: size: cannot be blank."),
    ({"size": 0}, 400, "validation failed: size: cannot be blank."),
    ({"size": -1}, 400, "validation failed: size: must be no less than 1."),
    ({"size": "5"}, 422, "request unable to be parsed"),
    ({"size": 1.5}, 422, "request unable to be parsed"),
    ({"size": 1, "name": "bad name"}, 400, "validation failed: name: must be in a valid format."),
    ({"size": 1, "name": "a.b"}, 400, "validation failed: name: must be in a valid format."),
    ({"size": 1, "durability": {"type": "raid5"}}, 400, "Unknown durability type"),
    ({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 4}}}, 400, "Invalid replica value"),
    ({"size": 3, "durability": {"type": "disperse", "disperse": {"data": 3, "redundancy": 1}}}, 400,
     "Invalid dispersion combination: 3+1"),
    ({"size": 1, "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}}, 400,
     "Requested volume size (1 GB) is smaller than the minimum supported volume size (2097152)"),
    ({"size": 1, "gid": -1}, 400, "Bad group id less than zero"),
    ({"size": 1, "gid": 2147483647}, 400, "Bad group id equal or greater than 2**32"),
    ({"size": 1, "clusters": ["0123456789abcdef0123456789abcdef"]}, 400,
     "Cluster id 0123456789abcdef0123456789abcdef not found"),
    ({"size": 1, "snapshot": {"enable": True, "factor": 0}}, 400, "Invalid snapshot factor"),
    ({"size": 1, "snapshot": {"enable": True, "factor": 101}}, 400, "Invalid snapshot factor"),
    ({"size": 1, "glustervolumeoptions": "a b"}, 422, "request unable to be parsed"),
])
def test_create_validation(server, body, status, text):
    r = server.request("POST", "/volumes", body)
    assert (r.status, r.text) == (status, text + "\n")


def test_create_refuses_unparsable_json(server):
    r = server.request("POST", "/volumes", raw=b"{size: 1")
    assert (r.status, r.text) == (422, "request unable to be parsed\n")


def test_create_defaults_and_echo(server):
    vid = server.create({"size": 1})
    v = server.volume(vid)
    assert v["name"] == f"vol_{vid}"
    assert v["durability"] == {"type": "none", "replicate": {}, "disperse": {}}
    assert "gid" not in v
    assert v["glustervolumeoptions"] == ["", ""]
    assert v["snapshot"] == {"enable": False, "factor": 1}
    assert len(v["bricks"]) == 1
    vid = server.create({"size": 2, "name": "rep", "durability": {"type": "replicate"}, "gid": 2147483646,
                         "glustervolumeoptions": ["performance.read-ahead off"],
                         "snapshot": {"enable": True, "factor": 1.5}})
    v = server.volume(vid)
    assert v["durability"] == {"type": "replicate", "replicate": {"replica": 3}, "disperse": {}}
    assert v["gid"] == 2147483646
    assert v["glustervolumeoptions"] == ["", "performance.read-ahead off", ""]
    assert v["snapshot"] == {"enable": True, "factor": 1.5}
    assert len(v["bricks"]) == 3 and len({b["node"] for b in v["bricks"]}) == 3


def test_units_gib_volumes_kib_bricks_and_devices(server):
    total_before = [d["storage"] for d in server.devices()]
    assert all(s["total"] == 100 * KIB_PER_GIB and s["free"] == s["total"] and s["used"] == 0 for s in total_before)
    vid = server.create({"size": 5, "durability": {"type": "replicate", "replicate": {"replica": 3}},
                         "snapshot": {"enable": True, "factor": 2}})
    v = server.volume(vid)
    assert v["size"] == 5
    assert [b["size"] for b in v["bricks"]] == [5 * KIB_PER_GIB] * 3
    for d in server.devices():
        st = d["storage"]
        assert st["used"] == space_needed(5 * KIB_PER_GIB, 2) and st["free"] + st["used"] == st["total"]
        assert [b["volume"] for b in d["bricks"]] == [vid]


def test_mount_info_lists_all_hosts_and_the_others_as_backup(server):
    v = server.volume(server.create({"size": 1, "name": "m1"}))
    hosts = v["mount"]["glusterfs"]["hosts"]
    assert sorted(hosts) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert v["mount"]["glusterfs"]["device"] == f"{hosts[0]}:m1"
    assert v["mount"]["glusterfs"]["options"] == {"backup-volfile-servers": ",".join(hosts[1:])}


def test_no_space(start_server):
    s = start_server("--device-size-gib", "10")
    msg = "Failed to allocate new volume: No space\n"
    r = s.request("POST", "/volumes", {"size": 10, "durability": {"type": "replicate"}})
    assert (r.status, r.text) == (500, msg)  # 10 GiB bricks plus metadata exceed 10 GiB devices
    r = s.request("POST", "/volumes", {"size": 8, "durability": {"type": "disperse",
                                                                 "disperse": {"data": 4, "redundancy": 2}}})
    assert (r.status, r.text) == (500, msg)  # a 4+2 set needs 6 distinct nodes, there are 3
    s.create({"size": 2, "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}})
    s.create({"size": 8, "durability": {"type": "replicate"}})
    r = s.request("POST", "/volumes", {"size": 1, "durability": {"type": "replicate"}})
    assert (r.status, r.text) == (500, msg)
    assert s.request("GET", "/operations").json()["total"] == 0


def test_none_durability_splits_into_smaller_bricks_when_needed(start_server):
    s = start_server("--device-size-gib", "10")
    v = s.volume(s.create({"size": 25}))
    assert len(v["bricks"]) == 8 and sum(b["size"] for b in v["bricks"]) == 25 * KIB_PER_GIB


def test_hex_id_rules(server):
    cases = [("GET", "/volumes/xyz", "Invalid path or request"), ("GET", "/volumes/abc123", "Id not found"),
             ("DELETE", "/volumes/abc123", "Id not found"), ("GET", "/queue/nothex", "Invalid path or request"),
             ("GET", "/queue/abc", "Id not found"), ("GET", "/clusters/abc", "Id not found"),
             ("GET", "/nodes/abc", "Id not found"), ("GET", "/volumes/abc/extra", "Invalid path or request")]
    for method, path, text in cases:
        r = server.request(method, path)
        assert (r.status, r.text) == (404, text + "\n"), (method, path)


def test_no_topology_nodes_or_devices_lists(server):
    assert server.request("GET", "/topology").status == 404
    assert server.request("GET", "/nodes").status == 405
    assert server.request("GET", "/devices").status == 405
    assert server.request("PUT", "/volumes").status == 405


def test_trailing_slash_redirects(server):
    r = server.request("GET", "/volumes/")
    assert (r.status, r.header("Location")) == (301, "/volumes")


def test_list_returns_ids_only(server):
    a = server.create({"size": 1, "name": "a"})
    b = server.create({"size": 1, "name": "b"})
    assert server.request("GET", "/volumes").json() == {"volumes": sorted([a, b])}


def test_clusters_and_nodes(server):
    clusters = server.request("GET", "/clusters").json()["clusters"]
    assert len(clusters) == 1
    vid = server.create({"size": 1})
    c = server.request("GET", f"/clusters/{clusters[0]}").json()
    assert c["volumes"] == [vid] and len(c["nodes"]) == 3 and c["file"] is True and c["block"] is True
    n = server.request("GET", f"/nodes/{c['nodes'][0]}").json()
    assert n["cluster"] == clusters[0] and n["state"] == "online" and n["hostnames"]["storage"][0].startswith("127.")
    assert set(n["devices"][0]["storage"]) == {"total", "free", "used"}


def test_custom_topology_file(start_server, tmp_path):
    topo = {"clusters": [{"nodes": [
        {"node": {"hostnames": {"manage": [f"n{i}"], "storage": [f"127.0.1.{i}"]}, "zone": i},
         "devices": [{"name": "/dev/sdb", "size_gib": 5}, "/dev/sdc"]} for i in (1, 2)]}]}
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(topo))
    s = start_server("--topology", str(path), "--device-size-gib", "7")
    sizes = sorted(d["storage"]["total"] for d in s.devices())
    assert sizes == [5 * KIB_PER_GIB] * 2 + [7 * KIB_PER_GIB] * 2
    r = s.request("POST", "/volumes", {"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}})
    assert (r.status, r.text) == (500, "Failed to allocate new volume: No space\n")  # 3 distinct nodes needed


# =========================================================================== expand / clone

def test_expand(server):
    vid = server.create({"size": 1, "durability": {"type": "replicate"}})
    for body, status, text in (({}, 400, "validation failed: expand_size: cannot be blank."),
                               ({"expand_size": 0}, 400, "validation failed: expand_size: cannot be blank."),
                               ({"expand_size": "1"}, 422, "request unable to be parsed")):
        r = server.request("POST", f"/volumes/{vid}/expand", body)
        assert (r.status, r.text) == (status, text + "\n")
    r = server.request("POST", "/volumes/abcdef/expand", {"expand_size": 1})
    assert (r.status, r.text) == (404, "Id not found\n")
    r = server.request("POST", f"/volumes/{vid}/expand", {"expand_size": 2})
    assert r.status == 202
    done = server.wait(r.header("Location"))
    assert (done.status, done.header("Location")) == (303, f"/volumes/{vid}")
    v = server.volume(vid)
    assert v["size"] == 3 and len(v["bricks"]) == 6


def test_expand_until_maximum_number_of_bricks(server):
    vid = server.create({"size": 1, "durability": {"type": "replicate"}})
    for _ in range(9):  # 3 bricks per expansion: 30 bricks
        r = server.request("POST", f"/volumes/{vid}/expand", {"expand_size": 1})
        assert server.wait(r.header("Location")).status == 303
    r = server.request("POST", f"/volumes/{vid}/expand", {"expand_size": 1})
    assert (r.status, r.text) == (500, "Failed to allocate volume expansion: Maximum number of bricks reached.\n")
    assert server.volume(vid)["size"] == 10


def test_clone(server):
    src = server.create({"size": 2, "name": "src", "durability": {"type": "replicate"}, "gid": 3000,
                         "glustervolumeoptions": ["performance.read-ahead off"]})
    assert server.request("POST", f"/volumes/{src}/clone", raw=b"").status == 422
    r = server.request("POST", f"/volumes/{src}/clone", {})
    done = server.wait(r.header("Location"))
    assert done.status == 303
    cid = done.header("Location").rsplit("/", 1)[1]
    assert cid != src
    c, s = server.volume(cid), server.volume(src)
    assert c["name"] == f"vol_{cid}"
    for key in ("size", "durability", "gid", "glustervolumeoptions", "cluster"):
        assert c[key] == s[key], key
    # Duplicate clone names are not rejected.
    names = []
    for _ in range(2):
        r = server.request("POST", f"/volumes/{src}/clone", {"name": "twin"})
        names.append(server.volume(server.wait(r.header("Location")).header("Location").rsplit("/", 1)[1])["name"])
    assert names == ["twin", "twin"]
    r = server.request("POST", "/volumes", {"size": 1, "name": "twin"})
    assert r.status == 500 and "already in use" in r.text


# =========================================================================== ops, metrics, test API

def test_operations_and_metrics(server):
    server.faults(op_delay_ms=600)
    r = server.request("POST", "/volumes", {"size": 1})
    ops = server.request("GET", "/operations").json()
    assert ops == {"total": 1, "in_flight": 1, "stale": 0, "failed": 0, "new": 1}
    pending = server.request("GET", "/operations/pending").json()["pendingoperations"]
    assert pending[0]["type_name"] == "create-volume" and pending[0]["sub_status"] == "in-flight"
    metrics = server.request("GET", "/metrics", auth=None).text
    assert "heketi_operations_inFlight_count 1" in metrics
    server.wait(r.header("Location"))
    metrics = server.request("GET", "/metrics", auth=None).text
    assert "heketi_volumes_count{cluster=" in metrics and "heketi_operations_total_count 0" in metrics


def test_request_counter_counts_heketi_calls_per_endpoint(server):
    server.test_api("POST", "/_test/reset")
    server.faults(op_delay_ms=300)
    r = server.request("POST", "/volumes", {"size": 1})
    polls = 0
    while True:
        polls += 1
        p = server.request("GET", r.header("Location"))
        if p.status != 200:
            break
        time.sleep(0.05)
    server.request("GET", "/volumes/zzz")
    counts = server.test_api("GET", "/_test/requests").json()
    assert counts["counts"]["POST /volumes"] == 1
    assert counts["counts"]["GET /queue/{id}"] == polls
    assert counts["counts"]["GET /volumes/zzz"] == 1
    assert counts["total"] == polls + 2
    server.test_api("POST", "/_test/reset")
    assert server.test_api("GET", "/_test/requests").json() == {"counts": {}, "total": 0}
    assert server.test_api("GET", "/_test/faults").json()["op_delay_ms"] == 0


def test_test_api_rejects_unknown_faults(server):
    r = server.test_api("POST", "/_test/faults", {"nope": 1})
    assert r.status == 400 and "unknown fault" in r.text
    assert server.test_api("POST", "/_test/faults", {"op_delay_ms": -1}).status == 400
    assert server.test_api("GET", "/_test/nothing").status == 404


def test_reset_can_wipe_volumes(server):
    server.create({"size": 1})
    free = server.free_kib()
    assert server.test_api("POST", "/_test/reset", {"volumes": True}).json() == {"volumes_removed": 1}
    assert server.request("GET", "/volumes").json()["volumes"] == []
    assert server.free_kib() == free + space_needed(KIB_PER_GIB)

# =========================================================================== gluster mode (real volumes)

_GLUSTER_PROBLEM = glusterd_problem()
needs_glusterd = pytest.mark.skipif(_GLUSTER_PROBLEM is not None, reason=str(_GLUSTER_PROBLEM))


def _mount(server, v: dict, where: Path):
    g = v["mount"]["glusterfs"]
    where.mkdir(parents=True, exist_ok=True)
    server.mounts.append(where)
    backup = g["options"]["backup-volfile-servers"].replace(",", ":")
    run("mount", "-t", "glusterfs", "-o", f"backup-volfile-servers={backup}", g["device"], str(where))
    assert os.path.ismount(where)


@needs_glusterd
def test_gluster_create_mount_write_expand_delete(gluster_server, tmp_path):
    s = gluster_server
    name = f"hkt-{secrets.token_hex(4)}"
    s.names.append(name)
    vid = s.create({"size": 1, "name": name, "durability": {"type": "replicate", "replicate": {"replica": 3}},
                    "gid": 2000, "glustervolumeoptions": ["performance.read-ahead off"]})
    v = s.volume(vid)
    assert v["mount"]["glusterfs"]["device"].endswith(f":{name}")
    info = run("gluster", "--mode=script", "volume", "info", name).stdout
    assert "Status: Started" in info and "Number of Bricks: 1 x 3 = 3" in info
    assert "performance.read-ahead: off" in info and f"user.heketi.id: {vid}" in info

    mnt = tmp_path / "mnt"
    _mount(s, v, mnt)
    st = os.stat(mnt)
    assert st.st_gid == 2000 and (st.st_mode & 0o7777) == 0o2775
    payload = f"written through FUSE {secrets.token_hex(8)}\n"
    (mnt / "hello.txt").write_text(payload)
    for b in v["bricks"]:
        assert Path(b["path"], "hello.txt").read_text() == payload, b["path"]
    run("umount", str(mnt))

    r = s.request("POST", f"/volumes/{vid}/expand", {"expand_size": 1})
    assert s.wait(r.header("Location")).status == 303
    info = run("gluster", "--mode=script", "volume", "info", name).stdout
    assert "Number of Bricks: 2 x 3 = 6" in info
    assert s.volume(vid)["size"] == 2

    paths = [b["path"] for b in s.volume(vid)["bricks"]]
    r = s.request("DELETE", f"/volumes/{vid}")
    assert s.wait(r.header("Location")).status == 204
    assert not gluster_volume_exists(name)
    assert not any(os.path.exists(p) for p in paths)


@needs_glusterd
def test_gluster_clone_copies_data_and_failure_rolls_back(gluster_server, tmp_path):
    s = gluster_server
    name = f"hkt-{secrets.token_hex(4)}"
    s.names += [name, f"{name}-c"]
    vid = s.create({"size": 1, "name": name, "durability": {"type": "replicate", "replicate": {"replica": 2}}})
    v = s.volume(vid)
    _mount(s, v, tmp_path / "m1")
    (tmp_path / "m1" / "data.bin").write_bytes(b"x" * 4096)
    run("umount", str(tmp_path / "m1"))
    r = s.request("POST", f"/volumes/{vid}/clone", {"name": f"{name}-c"})
    done = s.wait(r.header("Location"))
    assert done.status == 303, done
    clone = s.volume(done.header("Location").rsplit("/", 1)[1])
    _mount(s, clone, tmp_path / "m2")
    assert (tmp_path / "m2" / "data.bin").read_bytes() == b"x" * 4096
    run("umount", str(tmp_path / "m2"))

    # A real gluster failure comes back through the queue: here gluster refuses the name
    # because a volume of that name, unknown to Heketi, already exists.
    clash = f"{name}-x"
    s.names.append(clash)
    d = tmp_path / "clash" / "b"
    d.mkdir(parents=True)
    host = v["mount"]["glusterfs"]["hosts"][0]
    run("gluster", "--mode=script", "volume", "create", clash, f"{host}:{d}", "force")
    r = s.request("POST", "/volumes", {"size": 1, "name": clash})
    done = s.wait(r.header("Location"))
    assert done.status == 500 and "already exists" in done.text, done
    assert s.request("GET", "/operations").json()["total"] == 0
    assert clash not in [s.volume(i)["name"] for i in s.request("GET", "/volumes").json()["volumes"]]
    # The rollback left the foreign volume alone.
    assert gluster_volume_exists(clash)
    run("gluster", "--mode=script", "volume", "delete", clash)


@needs_glusterd
def test_gluster_disperse_and_distribute_layouts(gluster_server):
    s = gluster_server
    name = f"hkt-{secrets.token_hex(4)}"
    s.names += [f"{name}-ec", f"{name}-d"]
    ec = s.create({"size": 2, "name": f"{name}-ec",
                   "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}})
    info = run("gluster", "--mode=script", "volume", "info", f"{name}-ec").stdout
    assert "Type: Disperse" in info and "1 x (2 + 1) = 3" in info
    assert [b["size"] for b in s.volume(ec)["bricks"]] == [KIB_PER_GIB] * 3  # 2 GiB over 2 data bricks
    dist = s.create({"size": 1, "name": f"{name}-d"})
    info = run("gluster", "--mode=script", "volume", "info", f"{name}-d").stdout
    assert "Type: Distribute" in info and "Number of Bricks: 1" in info
    for vid, vname in ((ec, f"{name}-ec"), (dist, f"{name}-d")):
        assert s.wait(s.request("DELETE", f"/volumes/{vid}").header("Location")).status == 204
        assert not gluster_volume_exists(vname)
