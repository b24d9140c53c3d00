#!/usr/bin/env python3
"""Runs the Heketi test server (Tests/heketi-server/heketi_server.py, unchanged) for benchmarks,
with TCP_NODELAY on every accepted connection unless --stock is given.

Why: the test server writes each response in two send() calls (headers, then body). On a
kept-alive connection Nagle's algorithm holds the body back until the client acknowledges the
headers, and Linux clients delay that acknowledgement by ~40 ms. Every response with a body
(GET /volumes/{id}, GET /volumes) then takes ~44 ms instead of ~1 ms — on the driver's side and
on the direct side alike, which would drown what the benchmark compares. Go's net/http, which the
real Heketi uses, sets TCP_NODELAY on every connection, so this is the faithful setting.

    heketi_bench_server.py [--stock] <heketi_server.py options>
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests/heketi-server"))

import heketi_server  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--stock" in argv:
        argv.remove("--stock")
    else:
        # socketserver.StreamRequestHandler.setup() sets TCP_NODELAY when this is true.
        heketi_server.Handler.disable_nagle_algorithm = True
    sys.exit(heketi_server.main(argv))
