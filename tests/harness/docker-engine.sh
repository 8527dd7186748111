#!/usr/bin/env bash
# The Docker engine the container lanes run on: one on cgroup v2, as users' hosts are (Docker Desktop
# since 4.3, every current Linux distribution).
#   docker-engine.sh          makes sure that engine answers (installs Debian's docker.io if needed)
#   docker-engine.sh --host   prints the DOCKER_HOST to reach it (the Makefile exports it)
#
# An engine that already answers on cgroup v2 (DOCKER_HOST's, or the default socket's: a user's
# laptop, a CI runner) is used as it is. Otherwise (no engine, or one on cgroup v1 as on these
# machines) the lab starts its own beside it: dockerd in a mount namespace of its own, where cgroup2
# is mounted on /sys/fs/cgroup. The machine's own cgroup mounts, which hold its limits, are left as
# they are, and so is any engine already running: the lab's has its own socket, data root, exec
# root and bridge. That v2 hierarchy has no controllers here (they stay on the machine's v1
# hierarchies): `--cpus` fails on it and `--memory` is ignored.
set -euo pipefail

lab_host=unix:///run/datadog-lab-docker.sock
lab_bridge=lab-docker0
lab_bridge_address=172.31.213.1/24

# The cgroup version of the engine DOCKER_HOST (or the default socket) names; "none" if none answers.
cgroup_version() { docker info --format '{{.CgroupVersion}}' 2>/dev/null || echo none; }

if [ "${1:-}" = --host ]; then
  if [ "$(cgroup_version)" = 2 ]; then
    echo "${DOCKER_HOST:-unix:///var/run/docker.sock}"
  else
    echo "$lab_host"
  fi
  exit 0
fi

if [ "$(cgroup_version)" = 2 ]; then
  exit 0
fi
if [ "${DOCKER_HOST:-}" != "$lab_host" ]; then
  echo "docker-engine: the engine at ${DOCKER_HOST:-the default socket} is not on cgroup v2;" \
    "run through make (it sets DOCKER_HOST=$lab_host)" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
# A bridge of its own, so that an engine already running keeps docker0.
if ! ip link show "$lab_bridge" >/dev/null 2>&1; then
  ip link add "$lab_bridge" type bridge
  ip addr add "$lab_bridge_address" dev "$lab_bridge"
  ip link set "$lab_bridge" up
fi
log=${DOCKERD_LOG:-/var/log/dockerd-datadog-lab.log}
echo "docker-engine: starting dockerd on cgroup v2 in its own mount namespace (socket ${lab_host#unix://}, log: $log)"
mkdir -p /var/lib/datadog-lab-docker /run/datadog-lab-docker
# A pid file left by an engine that was killed (a session's processes end before CI) would stop
# dockerd if its pid now belongs to another process.
pid=
[ ! -f /run/datadog-lab-docker.pid ] || pid=$(cat /run/datadog-lab-docker.pid)
if [ -n "$pid" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd -H $lab_host"; then
  rm -f /run/datadog-lab-docker.pid
fi
nohup unshare --mount --propagation private sh -c '
  mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
  exec dockerd -H "$1" --data-root /var/lib/datadog-lab-docker --exec-root /run/datadog-lab-docker \
    --pidfile /run/datadog-lab-docker.pid --bridge "$2"' sh "$lab_host" "$lab_bridge" >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if [ "$(cgroup_version)" = 2 ]; then
    echo "docker-engine: $(docker info --format 'Docker {{.ServerVersion}}, Cgroup Version: {{.CgroupVersion}}')"
    exit 0
  fi
  sleep 0.5
done
echo "docker-engine: dockerd did not answer on cgroup v2 within 30 s; see $log" >&2
exit 1
