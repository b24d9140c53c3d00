#!/usr/bin/env bash
# Test support: make sure glusterd runs on this machine so the gluster-mode tests of the
# Heketi test server can run. Installs glusterfs from Debian packages when it is missing.
# Idempotent; needs root. systemd is usually not running here, so glusterd is started directly
# (it daemonizes itself).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "start-glusterd.sh: must run as root" >&2
    exit 1
fi

if ! command -v gluster >/dev/null 2>&1 || ! command -v glusterd >/dev/null 2>&1; then
    echo "start-glusterd.sh: installing glusterfs-server and glusterfs-client"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq glusterfs-server glusterfs-client
fi

if timeout 30 gluster --mode=script pool list >/dev/null 2>&1; then
    echo "start-glusterd.sh: glusterd already running"
    exit 0
fi

timeout 60 glusterd
for _ in $(seq 1 30); do
    if timeout 10 gluster --mode=script pool list >/dev/null 2>&1; then
        echo "start-glusterd.sh: glusterd started"
        exit 0
    fi
    sleep 1
done
echo "start-glusterd.sh: glusterd did not answer; see /var/log/glusterfs/glusterd.log" >&2
exit 1
