#!/usr/bin/env bash
# Build the image with no network and check it: it answers the demo route, its
# HEALTHCHECK turns healthy, it runs as 10001 on a read-only root, and it drains and
# exits 0 on `docker stop`. Run by `make test-image` (needs root: it starts its own
# dockerd on a private socket and data root, next to any other Docker on the machine).
#
# No registry is needed: the base image is Debian bookworm made by debootstrap from the
# machine's apt mirror and `docker import`ed; the wheels come from a wheelhouse made
# beforehand for the base's Python. Both are cached in $IMAGE_CACHE.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
CACHE=${IMAGE_CACHE:-/var/tmp/llm-gateway-image}
BASE=gateway-base:bookworm
IMAGE=llm-gateway:test
PY=${PY:-.venv/bin/python}
mkdir -p "$CACHE"
RUN=$(mktemp -d /tmp/gateway-image.XXXXXX)
export DOCKER_HOST="unix://$RUN/docker.sock" DOCKER_BUILDKIT=0
NAME="gateway-image-test-$$"
step() { printf '[%3ds] %s\n' $((SECONDS - started)) "$*"; }

dockerd_pid=""
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  # dockerd leaves its network namespace mounted under the exec root.
  awk -v run="$RUN" 'index($2, run) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount" || true; done
  rm -rf "$RUN" || true
}
trap cleanup EXIT

# Polls `$@` every 0.5 s until it succeeds or `deadline` seconds pass.
until_ok() {
  local deadline=$1 what=$2; shift 2
  local end=$((SECONDS + deadline))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "timed out after ${deadline}s: $what" >&2; return 1; }
    sleep 0.5
  done
}

step "dockerd on $DOCKER_HOST (data root $CACHE/docker)"
dockerd --host "$DOCKER_HOST" --data-root "$CACHE/docker" --exec-root "$RUN/exec" \
  --pidfile "$RUN/dockerd.pid" --bridge=none --iptables=false >"$RUN/dockerd.log" 2>&1 &
dockerd_pid=$!
until_ok 120 "dockerd answers" docker version || { tail -20 "$RUN/dockerd.log"; exit 1; }

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if [ ! -f "$CACHE/bookworm-base.tar" ]; then
    # The mirror apt already uses (no host name written down here); none: Debian's.
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}' || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    step "debootstrap bookworm from ${mirror:-the default mirror}"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$RUN/rootfs" \
      ${mirror:+"$mirror"} >"$RUN/debootstrap.log" 2>&1 || { tail -20 "$RUN/debootstrap.log"; exit 1; }
    rm -rf "$RUN"/rootfs/var/cache/apt/archives/*.deb "$RUN"/rootfs/var/lib/apt/lists/*
    tar -C "$RUN/rootfs" -cf "$CACHE/bookworm-base.tar.tmp" .
    mv "$CACHE/bookworm-base.tar.tmp" "$CACHE/bookworm-base.tar"
    rm -rf "$RUN/rootfs"
  fi
  step "docker import $BASE"
  docker import - "$BASE" <"$CACHE/bookworm-base.tar" >/dev/null
fi

python_version=$(docker run --rm --network none "$BASE" \
  python3 -c 'import platform; print(platform.python_version())')
lock_sum=$(grep -v "^ *#" requirements.lock | sha256sum | cut -c1-16)  # the pins, not the comments
wheels="$CACHE/wheelhouse-$python_version-$lock_sum"
if [ ! -d "$wheels" ]; then
  step "wheelhouse for Python $python_version"
  "$PY" deploy/image/wheelhouse.py --python-version "$python_version" --dest "$wheels.tmp"
  mv "$wheels.tmp" "$wheels"
fi

step "docker build --network none --build-arg BASE=$BASE"
mkdir "$RUN/context"
cp -r Dockerfile .dockerignore pyproject.toml README.md requirements.lock gateway config deploy \
  "$RUN/context/"
cp -r "$wheels" "$RUN/context/wheelhouse"
docker build --quiet --network none --build-arg "BASE=$BASE" -t "$IMAGE" "$RUN/context" >/dev/null
[ "$(docker image inspect --format '{{.Config.User}}' "$IMAGE")" = "10001:10001" ]

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "docker run (read-only root, host network, port $port)"
docker run -d --name "$NAME" --network host --read-only --tmpfs /tmp \
  --health-interval 1s --health-start-period 60s -e GATEWAY_HEALTH_PORT="$port" \
  "$IMAGE" --config config/gateway.toml --host 127.0.0.1 --port "$port" >/dev/null
[ "$(docker exec "$NAME" python3 -c 'import os; print(os.getuid())')" = "10001" ]
docker exec "$NAME" sleep 0  # the Kubernetes preStop hook's command

answer() {
  "$PY" - "$port" <<'EOF'
import json, sys, urllib.request
body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hello"}]})
request = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/v1/chat/completions", body.encode(),
    {"Content-Type": "application/json"},
)
reply = json.load(urllib.request.urlopen(request, timeout=5))
assert reply["choices"][0]["message"]["content"], reply
print(reply["choices"][0]["message"]["content"])
EOF
}
until_ok 60 "the demo route answers" answer || { docker logs "$NAME" | tail -20; exit 1; }
step "demo route: $(answer)"
"$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
  "http://127.0.0.1:$port/readyz"  # the readinessProbe
healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$NAME")" = healthy ]; }
until_ok 90 "HEALTHCHECK healthy" healthy || { docker inspect --format '{{json .State.Health}}' "$NAME"; exit 1; }
step "HEALTHCHECK: healthy"

docker stop --time 60 "$NAME" >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { docker logs "$NAME" | tail -20; echo "exit code $code" >&2; exit 1; }
docker logs "$NAME" 2>&1 | grep -q "draining: /readyz answers 503"
step "stopped: drained and exited 0; image test passed in $((SECONDS - started))s"
