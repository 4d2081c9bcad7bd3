#!/usr/bin/env bash
# `make docker-check`: build the Docker image and use it as the README says.
#
#   sudo scripts/docker_check.sh         # build, then check (below); ~1 min warm
#   sudo scripts/docker_check.sh clean   # remove what it keeps: images, build cache, logs
#
# 1. The image: `docker build --build-arg BASE=…` (default: the Dockerfile's CUDA PyTorch base).
#    Where that base cannot be pulled (no registry reachable), a stand-in is built: Debian made
#    with debootstrap from Debian's mirror and `docker import`ed, with the host's CA bundle (pip
#    inside the build reaches the package index through it) and torch in a venv
#    (scripts/docker/local-base.Dockerfile; a CPU wheel from $TORCH_WHEEL or pip's find-links
#    when there is one, else torch from the index: a CUDA build, a few GB more).
# 2. In the image: PID 1 is tini; `dopa-train --help`; the default user given a runs/ it cannot
#    write gets one `error:` line (exit 2); a SIGTERM in the first second ends the container at
#    once (no grace period wasted); a 2,000-step CartPole run as the calling user (an
#    unprivileged uid when called as root) into a bind-mounted runs/ that user owns; `docker
#    stop` (SIGTERM) after the first checkpoint must end in a checkpoint and exit code 3; the
#    same command again must resume from it and finish; every file in runs/ is the user's.
#
# Docker: a daemon that answers (DOCKER_HOST or the default socket) is used as it is. Otherwise,
# as root, one is started for the check and stopped by its PID at the end, pass or fail:
# installed with apt when missing, data in $DOCKER_CHECK_DIR (default /tmp/dopa-rl-docker; the
# build cache is kept there, so a second check is warm), and started so that the host's network
# stays as it was (no iptables rules, no bridge, no IP forwarding: builds and containers use the
# host's network); the check fails if the network state differs afterwards. The daemon runs
# under `nice`, and so do builds and containers.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${DOCKER_CHECK_DIR:-/tmp/dopa-rl-docker}"
IMAGE="${DOCKER_CHECK_IMAGE:-dopa-rl:check}"
BASE="${DOCKER_CHECK_BASE:-$(sed -n 's/^ARG BASE=//p' Dockerfile)}"
LOCAL_DEBIAN=dopa-rl-debian:bookworm
LOCAL_BASE=dopa-rl-local-base:bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STEPS=2000
NAME="dopa-rl-check-$$"
NEED_GB=8 # free disk for a cold check: base, dependencies, build layers
USAGE="usage: scripts/docker_check.sh [check|clean]"

OWN_DAEMON=0
DAEMON_PID=""

say() { echo "docker-check: $*"; }
die() {
    echo "error: docker-check: $*" >&2
    exit 1
}
elapsed() { echo "$((SECONDS - $1)) s"; }

need_root() {
    [[ $(id -u) -eq 0 ]] ||
        die "no Docker daemon answers, and starting one needs root: sudo make docker-check (or start Docker and set DOCKER_HOST)"
}

apt_install() {
    command -v apt-get >/dev/null || die "missing $* and no apt-get here: install them with your package manager"
    say "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # docker.io's install would start the system's dockerd (iptables rules, a bridge, IP
    # forwarding) where no policy-rc.d forbids it: forbid it for the install
    local policy=/usr/sbin/policy-rc.d added=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# scripts/docker_check.sh: no service starts during its apt-get\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } || rc=$?
    [[ $added -eq 0 ]] || rm -f "$policy"
    ((rc == 0)) || die "apt-get install $* failed"
}

# what "the host's network" is: links, addresses, routes, forwarding, firewall rules
net_state() {
    command -v ip >/dev/null || return 0
    ip -o link | sed 's/ state .*//'
    ip -o addr | sed -E 's/ (valid|preferred)_lft [^ ]+//g'
    ip route
    ip -6 route | sed -E 's/ expires [^ ]+//'
    sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding 2>/dev/null || true
    if command -v nft >/dev/null; then nft list ruleset 2>/dev/null || true; fi
    if command -v iptables-save >/dev/null; then iptables-save 2>/dev/null | grep -v '^#' || true; fi
}

start_daemon() {
    if docker info >/dev/null 2>&1; then
        say "using the Docker daemon that answers (left running)"
        return 0
    fi
    local sock="unix://$DIR/docker.sock"
    if DOCKER_HOST="$sock" docker info >/dev/null 2>&1; then
        export DOCKER_HOST="$sock"
        say "using the daemon already running on $DIR/docker.sock (left running)"
        return 0
    fi
    need_root
    command -v dockerd >/dev/null || apt_install docker.io
    command -v docker >/dev/null || apt_install docker.io
    mkdir -p "$DIR"
    net_state >"$DIR/net.before"
    OWN_DAEMON=1
    # its own data, exec root, socket and pid file: nothing of a system Docker is touched
    setsid nice -n 10 dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" \
        --pidfile "$DIR/dockerd.pid" --host "$sock" \
        --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
        >"$DIR/dockerd.log" 2>&1 </dev/null &
    DAEMON_PID=$!
    export DOCKER_HOST="$sock"
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 5 "$DIR/dockerd.log" >&2 || true
        die "dockerd did not start (log: $DIR/dockerd.log)"
    fi
    # the pid the daemon wrote itself (the same as $! unless setsid had to fork)
    [[ ! -s "$DIR/dockerd.pid" ]] || DAEMON_PID=$(<"$DIR/dockerd.pid")
    say "dockerd started (pid $DAEMON_PID, data in $DIR/data, host network only)"
}

stop_daemon() {
    [[ $OWN_DAEMON -eq 1 && -n "$DAEMON_PID" ]] || return 0
    if [[ "$(cat "/proc/$DAEMON_PID/comm" 2>/dev/null)" != dockerd ]]; then
        echo "error: docker-check: pid $DAEMON_PID is not the dockerd it started; nothing stopped" >&2
        return 1
    fi
    kill "$DAEMON_PID"
    for _ in $(seq 300); do
        [[ -e "/proc/$DAEMON_PID" ]] || break
        sleep 0.1
    done
    if [[ -e "/proc/$DAEMON_PID" ]]; then
        echo "error: docker-check: dockerd (pid $DAEMON_PID) still running after 30 s" >&2
        return 1
    fi
    release_mounts
    say "dockerd stopped"
}

# dockerd leaves mounts in its exec root (its handle on the host's network namespace,
# exec/netns/default) after it exits: unmount everything under $DIR
release_mounts() {
    local mount
    awk -v dir="$DIR/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r mount; do umount "$mount" || true; done
}

cleanup() {
    local rc=$?
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$DIR/work" "$DIR/rootfs" "$DIR/base-context"
    stop_daemon || rc=1
    if [[ $OWN_DAEMON -eq 1 ]]; then
        net_state >"$DIR/net.after"
        if ! diff -u "$DIR/net.before" "$DIR/net.after" >&2; then
            echo "error: docker-check: the host's network changed while the daemon ran (diff above)" >&2
            rc=1
        fi
    fi
    exit "$rc"
}

check_disk() {
    mkdir -p "$DIR"
    local free_gb
    free_gb=$(df -Pk "$DIR" | awk 'NR == 2 {print int($4 / 1048576)}')
    ((free_gb >= NEED_GB)) || die "$free_gb GB free under $DIR; a cold check needs about $NEED_GB GB"
}

# a CPU torch wheel for the stand-in base's Python (3.11, Debian bookworm), when one is at hand
torch_wheel() {
    if [[ -n "${TORCH_WHEEL:-}" ]]; then
        echo "$TORCH_WHEEL"
        return 0
    fi
    local dir links
    # pip's own find-links (environment or pip.conf): where a machine keeps local wheels
    links="${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true)"
    for dir in $links; do
        compgen -G "$dir/torch-*+cpu-cp311-*.whl" | sort | tail -n 1 && return 0
    done
    return 0
}

build_local_base() {
    if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        say "stand-in base $LOCAL_BASE (built before)"
        return 0
    fi
    local start=$SECONDS
    if ! docker image inspect "$LOCAL_DEBIAN" >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
        command -v debootstrap >/dev/null || apt_install debootstrap
        say "debootstrap Debian bookworm from $MIRROR (a few minutes; log $DIR/debootstrap.log)"
        rm -rf "$DIR/rootfs"
        nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$DIR/rootfs" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 ||
            { tail -n 5 "$DIR/debootstrap.log" >&2; die "debootstrap failed"; }
        rm -rf "$DIR"/rootfs/var/cache/apt/archives/*.deb "$DIR"/rootfs/var/lib/apt/lists/*
        tar -C "$DIR/rootfs" -c . | docker import - "$LOCAL_DEBIAN" >/dev/null
        rm -rf "$DIR/rootfs"
    fi
    local ctx="$DIR/base-context" wheel torch=torch
    rm -rf "$ctx"
    mkdir -p "$ctx/wheels"
    touch "$ctx/wheels/.keep"
    cp scripts/docker/local-base.Dockerfile "$ctx/Dockerfile"
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/host-ca-certificates.crt"
    wheel=$(torch_wheel)
    if [[ -n "$wheel" ]]; then
        cp "$wheel" "$ctx/wheels/"
        torch="/tmp/wheels/$(basename "$wheel")"
    fi
    say "building the stand-in base $LOCAL_BASE (torch: $torch; log $DIR/base-build.log)"
    docker build --network host --build-arg TORCH="$torch" -t "$LOCAL_BASE" "$ctx" \
        >"$DIR/base-build.log" 2>&1 ||
        { tail -n 20 "$DIR/base-build.log" >&2; die "stand-in base build failed"; }
    rm -rf "$ctx"
    say "stand-in base built in $(elapsed "$start")"
}

choose_base() {
    if docker image inspect "$BASE" >/dev/null 2>&1; then
        say "base $BASE (present)"
        return 0
    fi
    if [[ "${DOCKER_CHECK_LOCAL_BASE:-0}" != 1 ]]; then
        say "pulling $BASE"
        if timeout 1800 docker pull "$BASE" >"$DIR/pull.log" 2>&1; then
            return 0
        fi
        say "cannot pull $BASE ($(tail -n 1 "$DIR/pull.log" | cut -c1-160)): building on a local Debian base"
    fi
    build_local_base
    BASE=$LOCAL_BASE
}

# one container's exit code; fails the check with its log when it is not the expected one
expect_rc() {
    local want="$1" got="$2" what="$3" log="$4"
    if [[ "$got" != "$want" ]]; then
        tail -n 25 "$log" >&2
        die "$what: exit code $got, expected $want (log above: $log)"
    fi
}

check() {
    local start=$SECONDS t
    check_disk
    start_daemon
    choose_base
    t=$SECONDS
    say "docker build --build-arg BASE=$BASE -t $IMAGE . (log $DIR/build.log)"
    docker build --network host --build-arg BASE="$BASE" -t "$IMAGE" . >"$DIR/build.log" 2>&1 ||
        { tail -n 30 "$DIR/build.log" >&2; die "docker build failed"; }
    say "image built in $(elapsed "$t"): $(docker image inspect -f '{{.Size}}' "$IMAGE" |
        awk '{printf "%.2f GB", $1 / 1e9}')"
    # the images that this build replaced (only in the check's own daemon: not a user's)
    [[ $OWN_DAEMON -eq 0 ]] || docker image prune -f >/dev/null

    local work="$DIR/work" user
    rm -rf "$work"
    mkdir -p "$work/runs"
    # the calling user (sudo's, when called through sudo); root stands in for no user, so an
    # unprivileged uid that the image does not know plays the user then
    user="${SUDO_UID:-$(id -u)}:${SUDO_GID:-$(id -g)}"
    [[ "$user" != 0:0 ]] || user=4321:4321
    chown "$user" "$work/runs"
    local run=(docker run --network host -v "$work/runs:/app/runs")
    local train=(python scripts/train.py agent=qrdqn env=cartpole "train.total_env_steps=$STEPS"
        train.checkpoint_every_env_steps=500 torch_threads=1 hydra.run.dir=runs/cartpole)

    [[ "$(docker run --rm --network host "$IMAGE" cat /proc/1/comm)" == tini ]] ||
        die "PID 1 in the image is not tini"
    docker run --rm --network host "$IMAGE" dopa-train --help >"$DIR/help.log" 2>&1 ||
        { tail -n 20 "$DIR/help.log" >&2; die "dopa-train --help failed"; }
    grep -q "agent.lr=" "$DIR/help.log" || die "dopa-train --help does not list agent.lr="
    say "PID 1 is tini; dopa-train --help works"

    # the image's default user (uid 10001) cannot write the user's runs/: one line, exit 2
    if [[ "${user%%:*}" != 10001 ]]; then
        local rc=0
        "${run[@]}" --rm "$IMAGE" "${train[@]}" >"$DIR/unwritable.log" 2>&1 || rc=$?
        expect_rc 2 "$rc" "a runs/ the container cannot write" "$DIR/unwritable.log"
        if [[ $(grep -c '^error:' "$DIR/unwritable.log") -ne 1 ]] || grep -q Traceback "$DIR/unwritable.log"; then
            die "a runs/ the container cannot write: not one error line ($DIR/unwritable.log)"
        fi
        say "unwritable runs/: $(grep '^error:' "$DIR/unwritable.log" | cut -c1-110)…"
    fi

    # a SIGTERM before the trainer's handlers exist ends the container at once: PID 1 (tini)
    # passes it on (a bare python as PID 1 ignores it, and `docker stop` kills after the grace)
    local rc
    t=$SECONDS
    "${run[@]}" -d --name "$NAME" --user "$user" "$IMAGE" python scripts/train.py \
        hydra.run.dir=runs/early >/dev/null
    docker stop --time 60 "$NAME" >/dev/null
    rc=$(docker wait "$NAME")
    docker rm "$NAME" >/dev/null
    ((SECONDS - t < 30)) || die "an early SIGTERM took $(elapsed "$t") to end the container"
    [[ "$rc" == 143 || "$rc" == 3 ]] || die "an early SIGTERM: exit code $rc, expected 143 or 3"
    say "an early SIGTERM ends the container at once (exit code $rc, $(elapsed "$t"))"

    # the README's command (with --init: docker's init as PID 1, tini below it), as the user;
    # pre-empted after its first checkpoint
    t=$SECONDS
    "${run[@]}" -d --init --name "$NAME" --user "$user" "$IMAGE" "${train[@]}" >/dev/null
    local latest="$work/runs/cartpole/checkpoints/latest"
    for _ in $(seq 1200); do
        [[ -s "$latest" ]] && break
        [[ "$(docker inspect -f '{{.State.Running}}' "$NAME")" == true ]] || break
        sleep 0.25
    done
    [[ -s "$latest" ]] || { docker logs "$NAME" >"$DIR/preempt.log" 2>&1; tail -n 20 "$DIR/preempt.log" >&2; die "no checkpoint within 5 min"; }
    docker stop --time 120 "$NAME" >/dev/null # SIGTERM to tini, which forwards it to the trainer
    rc=$(docker wait "$NAME")
    docker logs "$NAME" >"$DIR/preempt.log" 2>&1
    docker rm "$NAME" >/dev/null
    expect_rc 3 "$rc" "the pre-empted run" "$DIR/preempt.log"
    local step
    step=$(<"$latest")
    ((step > 0 && step < STEPS)) || die "the pre-empted run's checkpoint is at step $step, not within (0, $STEPS)"
    say "SIGTERM: checkpoint at step $step, exit code 3 ($(elapsed "$t"))"

    t=$SECONDS
    rc=0
    "${run[@]}" --rm --init --user "$user" "$IMAGE" "${train[@]}" >"$DIR/resume.log" 2>&1 || rc=$?
    expect_rc 0 "$rc" "the same command again" "$DIR/resume.log"
    grep -q "resuming from .* at step $step" "$DIR/resume.log" ||
        { tail -n 20 "$DIR/resume.log" >&2; die "the same command again did not resume from step $step"; }
    [[ "$(<"$latest")" == "$STEPS" ]] || die "the resumed run ended at step $(<"$latest"), not $STEPS"
    ! grep -q "WARN.*tini" "$DIR/preempt.log" "$DIR/resume.log" ||
        die "tini warns under --init: $(grep -h "WARN.*tini" "$DIR/resume.log" | head -n 1)"
    local foreign
    foreign=$(find "$work/runs" ! -uid "${user%%:*}" | head -n 3)
    [[ -z "$foreign" ]] || die "files in runs/ not owned by the user ($user): $foreign"
    say "same command again: resumed at step $step, finished at $STEPS ($(elapsed "$t")); runs/ all owned by $user"
    say "passed in $(elapsed "$start")"
}

clean() {
    need_root
    [[ -d "$DIR" ]] || { say "nothing to clean ($DIR absent)"; return 0; }
    if DOCKER_HOST="unix://$DIR/docker.sock" docker info >/dev/null 2>&1; then
        die "a daemon is running on $DIR/docker.sock: stop it first"
    fi
    release_mounts
    rm -rf "$DIR"
    say "removed $DIR"
}

[[ $# -le 1 ]] || { echo "error: $USAGE" >&2; exit 2; }
case "${1:-check}" in
check)
    trap cleanup EXIT
    trap 'exit 143' TERM INT # stopped from outside: still clean up (the EXIT trap)
    check
    ;;
clean) clean ;;
*) echo "error: unknown command '$1'; $USAGE" >&2; exit 2 ;;
esac
