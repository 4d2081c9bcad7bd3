#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests and for trying the cluster path
# (`hydra/launcher=slurm`, pre-emption, requeue) on a laptop. Needs root (slurmd runs jobs as
# their users; apt installs the daemons when they are missing).
#
#   sudo scripts/slurm_local.sh start    # install if needed, start munged, slurmctld, slurmd
#   eval "$(scripts/slurm_local.sh env)" # SLURM_CONF and the sacct shim for this shell
#   scripts/slurm_local.sh status        # exit 0 when the node answers
#   sudo scripts/slurm_local.sh stop
#
# Everything (config, state, spool, logs, pid files) lives in $SLURM_LOCAL_DIR
# (default /tmp/dopa-rl-slurm); nothing is written to /etc/slurm.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/dopa-rl-slurm}"
CONF="$DIR/slurm.conf"
USAGE="usage: scripts/slurm_local.sh start|stop|status|env"

die() {
    echo "error: $*" >&2
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "'$1' needs root (slurmd must run as root): sudo $0 $1"
}

install_if_missing() {
    local missing=()
    for cmd in slurmctld slurmd sinfo munged; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null ||
        die "missing ${missing[*]} and no apt-get here: install SLURM and munge with your package manager"
    echo "installing slurmctld slurmd slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # slurmd drains a node that reports less memory than configured: stay below MemTotal
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/bin"
    chmod 755 "$DIR"
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster for tests; no accounting database.
ClusterName=dopa-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# linuxproc and task/none need no cgroups (containers, CI runners)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
# no slurmdbd: sacct cannot work, so say so instead of half-configuring it
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# a down node comes back on its own; finished jobs stay visible to squeue for 5 minutes
MinJobAge=300
KillWait=10
SlurmdTimeout=60
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$CONF"
}

# sacct needs an accounting database (slurmdbd) that this cluster does not run, and submitit
# polls `sacct -o JobID,State,NodeList --parsable2 -j ID…` for job states: without an answer it
# warns on every poll and never learns that a job died. This shim answers that query from
# squeue, which knows every job until MinJobAge after it ends. Other sacct uses are refused.
write_sacct_shim() {
    cat >"$DIR/bin/sacct" <<'EOF'
#!/usr/bin/env bash
# sacct for scripts/slurm_local.sh's cluster (no accounting database): job states from squeue.
set -euo pipefail
ids=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    -j | --jobs) ids+=("$2"); shift 2 ;;
    -o | --format) [[ "$2" == "JobID,State,NodeList" ]] || { echo "sacct shim: only -o JobID,State,NodeList" >&2; exit 1; }; shift 2 ;;
    --parsable2) shift ;;
    *) echo "sacct shim (no accounting on this cluster): unsupported argument $1" >&2; exit 1 ;;
    esac
done
echo "JobID|State|NodeList"
[[ ${#ids[@]} -eq 0 ]] && exit 0
joined=$(IFS=,; echo "${ids[*]}")
# an id squeue no longer knows is left out, as sacct leaves out ids it has no record of
squeue -h -t all -j "$joined" -o '%i|%T|%N' 2>/dev/null |
    # squeue shows transient flags where sacct shows the base state
    sed -E 's/\|(CONFIGURING|SIGNALING|STAGE_OUT|RESIZING|STOPPED)\|/|RUNNING|/; s/\|REQUEUE_(FED|HOLD)\|/|REQUEUED|/' || true
EOF
    chmod 755 "$DIR/bin/sacct"
}

node_state() {
    SLURM_CONF="$CONF" sinfo -h -N -n localhost -o '%T' 2>/dev/null || true
}

start_munge() {
    # reuse a munged that already answers (a system service); otherwise start our own
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || {
        if command -v mungekey >/dev/null; then mungekey --create; else create-munge-key -f; fi
    }
    mkdir -p /run/munge
    # --force: run as root with the key as the package installed it (owned by munge); log and
    # seed in $DIR, as /var/log/munge and /var/lib/munge belong to the munge user
    munged --force --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munged.seed"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not start (see $DIR/log/munged.log)"
}

start() {
    need_root start
    case "$(node_state)" in
    idle* | mixed* | allocated*) echo "already running ($CONF)"; return 0 ;;
    esac
    install_if_missing
    stop_daemons quiet
    # another cluster's daemons hold SLURM's ports: ours would not start
    local other
    other=$({ pgrep -x slurmctld; pgrep -x slurmd; } | xargs || true)
    [[ -z "$other" ]] || die "slurmctld/slurmd already running here (pid $other), not started by this script; stop them or use that cluster"
    write_conf
    write_sacct_shim
    start_munge
    slurmctld -f "$CONF"
    # -N: the node is named localhost whatever this machine's hostname is
    slurmd -f "$CONF" -N localhost
    local state=""
    for _ in $(seq 120); do
        state=$(node_state)
        case "$state" in
        idle*)
            echo "SLURM is up: node localhost idle ($(nproc) CPUs); config $CONF"
            echo "in your shell: eval \"\$($0 env)\""
            return 0
            ;;
        esac
        sleep 0.5
    done
    tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "node not idle after 60 s (state '${state:-none}'); logs in $DIR/log"
}

# kill the daemon named by a pid file, if it is still that daemon, and wait for it to go
stop_pidfile() {
    local file="$1" name="$2" pid
    [[ -s "$file" ]] || return 0
    pid=$(<"$file")
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
        kill "$pid"
        for _ in $(seq 100); do
            [[ -e "/proc/$pid" ]] || break
            sleep 0.1
        done
    fi
    rm -f "$file"
}

stop_daemons() {
    # slurmd first, so its jobs' ends are reported to the controller
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    stop_pidfile "$DIR/munged.pid" munged
    [[ "${1:-}" == quiet ]] || echo "SLURM stopped"
}

stop() {
    if ! compgen -G "$DIR/*.pid" >/dev/null; then
        echo "SLURM not running (no daemons of $DIR)"
        return 0
    fi
    need_root stop
    if [[ -s "$CONF" ]] && [[ -n "$(node_state)" ]]; then
        # cancel what is left so no job outlives the cluster
        local jobs=()
        mapfile -t jobs < <(SLURM_CONF="$CONF" squeue -h -o '%A' | sort -u)
        [[ ${#jobs[@]} -eq 0 ]] || SLURM_CONF="$CONF" scancel --full "${jobs[@]}" || true
    fi
    stop_daemons
    # state and spool are for this cluster's life only
    rm -rf "$DIR/state" "$DIR/spool"
}

status() {
    local state
    state=$(node_state)
    if [[ -z "$state" ]]; then
        echo "SLURM not running (no answer for $CONF)"
        return 1
    fi
    echo "node localhost: $state; config $CONF"
    SLURM_CONF="$CONF" squeue
}

env_lines() {
    echo "export SLURM_CONF='$CONF'"
    echo "export PATH='$DIR/bin':\"\$PATH\""
}

[[ $# -eq 1 ]] || { echo "error: one command expected; $USAGE" >&2; exit 2; }
case "$1" in
start) start ;;
stop) stop ;;
status) status ;;
env) env_lines ;;
*) echo "error: unknown command '$1'; $USAGE" >&2; exit 2 ;;
esac
