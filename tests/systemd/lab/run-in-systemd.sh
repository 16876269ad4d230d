#!/bin/bash
# Boot a throw-away systemd, run one scenario in it, power it off.
#
# systemd (the machine's own /lib/systemd/systemd) runs as PID 1 in new mount,
# PID, UTS, IPC, cgroup and network namespaces, on a tmpfs overlay of the
# machine's / : whatever the lab writes is gone at power-off, and no mount is
# ever made on the machine itself. The lab gets the units, drop-ins, users,
# directories and files named by the options below, boots basic.target, then
# runs the scenario (a POSIX sh script) inside as root, in /lab, with
# $LAB_LIB (the helpers of lib.sh) and $LAB_PAYLOAD set. The scenario's output
# is this script's output, its exit status this script's exit status.
#
# Needs root, util-linux (unshare, nsenter, setpriv, pivot_root, findmnt), the
# Debian package systemd, overlayfs and a cgroup v2 hierarchy. When one is
# missing it exits 77 with the reason on the last line of stderr, so test
# suites can skip.
#
# By hand, as root, from the repository root:
#   printf 'systemctl is-system-running\n' >/tmp/up.sh
#   tests/systemd/lab/run-in-systemd.sh --scenario /tmp/up.sh     # prints "running"
#
# Options (all but --payload-at, --scenario, --timeout and --log-dir repeat):
#   --payload DIR --payload-at PATH  mount DIR read-only at PATH ($LAB_PAYLOAD)
#   --unit FILE                      install into /etc/systemd/system/
#   --user-unit FILE                 install into /etc/systemd/user/
#   --dropin UNIT:FILE               install into /etc/systemd/system/UNIT.d/
#   --sysusers LINE                  a sysusers.d(5) line, applied first
#   --dir PATH[:MODE[:OWNER[:GROUP]]]       then directories (0755 root)
#   --file SRC:DST[:MODE[:OWNER[:GROUP]]]   then files (0644 root)
#   --scenario FILE                  the script to run once the system is up
#   --timeout SECONDS                boot and scenario together (default 120)
#   --log-dir DIR                    keep journal.txt and staging.log there
# OWNER alone means OWNER's own group; names are those of the lab, so users
# from --sysusers can own things. Paths must not contain ':'.
#
# Exit status: the scenario's; 64 usage; 70 boot failed; 77 prerequisite
# missing; 124 timeout.
set -euo pipefail

readonly EXIT_USAGE=64 EXIT_BOOT=70 EXIT_SKIP=77 EXIT_TIMEOUT=124
readonly NAME=ocrwatch-lab
readonly LAB_DIR=/lab          # scenario and lib.sh, inside
readonly HOST_ROOT=/.host      # the machine's / while the lab is staged
readonly POWEROFF_SECONDS=20   # for a clean shutdown, then SIGKILL
readonly SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SELF=$(readlink -f -- "$0")
export PATH=$SYSTEM_PATH # the system's own tools, whatever the caller's PATH

say() { echo "$NAME: $*" >&2; }
fail() { local status=$1; shift; say "$*"; exit "$status"; }
skip() { fail "$EXIT_SKIP" "skipped: $*"; }

# A host file's absolute path, or a usage error.
existing() { # PATH TEST
    test "$2" "$1" || fail "$EXIT_USAGE" "no such file: $1"
    readlink -f -- "$1"
}

parse_arguments() {
    PAYLOAD='' PAYLOAD_AT=/opt/payload SCENARIO='' TIMEOUT=120 LOG_DIR=''
    UNITS=() USER_UNITS=() DROPINS=() SYSUSERS=() DIRS=() FILES=()
    while [ "$#" -gt 0 ]; do
        [ "$#" -ge 2 ] || fail "$EXIT_USAGE" "$1: missing value"
        case $1 in
            --payload) PAYLOAD=$(existing "$2" -d) ;;
            --payload-at) PAYLOAD_AT=$2 ;;
            --unit) UNITS+=("$(existing "$2" -f)") ;;
            --user-unit) USER_UNITS+=("$(existing "$2" -f)") ;;
            --dropin) DROPINS+=("${2%%:*}:$(existing "${2#*:}" -f)") ;;
            --sysusers) SYSUSERS+=("$2") ;;
            --dir) DIRS+=("$2") ;;
            --file) FILES+=("$(existing "${2%%:*}" -f):${2#*:}") ;;
            --scenario) SCENARIO=$(existing "$2" -f) ;;
            --timeout) TIMEOUT=$2 ;;
            --log-dir) LOG_DIR=$2 ;;
            *) fail "$EXIT_USAGE" "unknown option $1" ;;
        esac
        shift 2
    done
    [ -n "$SCENARIO" ] || fail "$EXIT_USAGE" "--scenario is required"
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || fail "$EXIT_USAGE" "--timeout takes whole seconds"
}

check_prerequisites() {
    [ "$(id -u)" = 0 ] || skip "needs root (it mounts file systems and creates namespaces)"
    [ -x /lib/systemd/systemd ] || skip "needs the Debian package systemd"
    local tool
    for tool in unshare nsenter setpriv pivot_root findmnt; do
        command -v "$tool" >/dev/null || skip "needs util-linux $tool"
    done
    unshare --mount --pid --fork --uts --ipc --cgroup --net true 2>/dev/null \
        || skip "cannot create namespaces here (needs CAP_SYS_ADMIN, not an unprivileged container)"
    CGROUP_ROOT=$(findmnt --list --noheadings --types cgroup2 --output TARGET | head -n 1)
    [ -n "$CGROUP_ROOT" ] || skip "needs a cgroup v2 hierarchy (none is mounted)"
}

# --- Inside the new namespaces, as their PID 1 -------------------------------

# Build the lab's root, stage it, and become systemd. Output goes to the
# staging log; its trace shows how far staging got if the boot fails.
inside() { # SCRATCH
    local scratch=$1 root node machine_pid
    # shellcheck source=/dev/null
    . "$scratch/spec"
    # /proc is still the machine's: this is our PID there, for nsenter.
    read -r machine_pid _ </proc/self/stat
    echo "$machine_pid" >"$scratch/pid1"
    PS4='+ staging: '
    set -x

    mount -t tmpfs "$NAME" "$scratch/layer"
    mkdir "$scratch/layer/upper" "$scratch/layer/work" "$scratch/layer/root"
    root=$scratch/layer/root
    mount -t overlay "$NAME" -o "lowerdir=/,upperdir=$scratch/layer/upper,workdir=$scratch/layer/work" "$root"

    # What a container manager provides: the machine's kernel settings stay
    # read-only, /dev holds only harmless nodes.
    mount -t proc proc "$root/proc"
    for node in "$root/proc/sys" "$root/proc/sysrq-trigger"; do
        [ -e "$node" ] || continue
        mount --bind "$node" "$node"
        mount -o remount,bind,ro "$node"
    done
    mount -t sysfs -o ro sysfs "$root/sys"
    mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
    mount -t tmpfs -o mode=0755,nosuid "$NAME" "$root/dev"
    for node in null zero full random urandom tty; do
        touch "$root/dev/$node"
        mount --bind "/dev/$node" "$root/dev/$node"
    done
    mkdir "$root/dev/pts" "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    ln -s pts/ptmx "$root/dev/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev "$NAME" "$root/dev/shm"
    mount -t tmpfs -o mode=0755,nosuid,nodev "$NAME" "$root/run"
    mount -t tmpfs -o mode=1777,nosuid,nodev "$NAME" "$root/tmp"

    cd "$root"
    mkdir ".$HOST_ROOT"
    pivot_root . ".$HOST_ROOT"
    cd /
    stage
    umount --lazy "$HOST_ROOT"
    rmdir "$HOST_ROOT"
    # systemd mounts credentials in a helper namespace; they reach the
    # service only if mounts propagate back.
    mount --make-rshared /
    set +x
    exec env -i container="$NAME" PATH="$SYSTEM_PATH" /lib/systemd/systemd \
        --unit=basic.target --log-target=journal
}

# Chown, then chmod: chown may clear the setgid bit.
set_owner_and_mode() { # PATH MODE OWNER GROUP
    if [ -n "$3" ]; then chown "$3:$4" "$1"; fi
    chmod "$2" "$1"
}

# Install what the options ask for; the machine's / is at $HOST_ROOT.
stage() {
    local item path mode owner group source units=/etc/systemd/system
    if [ -n "$PAYLOAD" ]; then
        mkdir -p "$PAYLOAD_AT"
        mount --bind "$HOST_ROOT$PAYLOAD" "$PAYLOAD_AT"
        mount -o remount,bind,ro "$PAYLOAD_AT"
    fi
    mkdir -p "$LAB_DIR"
    cp "$HOST_ROOT$SCENARIO" "$LAB_DIR/scenario"
    cp "$HOST_ROOT$(dirname "$SELF")/lib.sh" "$LAB_DIR/lib.sh"

    # Its own identity, hence its own, empty journal.
    systemd-id128 new >/etc/machine-id
    echo "$NAME" >/etc/hostname

    if [ "${#SYSUSERS[@]}" -gt 0 ]; then
        mkdir -p /etc/sysusers.d
        printf '%s\n' "${SYSUSERS[@]}" >/etc/sysusers.d/lab.conf
        systemd-sysusers /etc/sysusers.d/lab.conf
    fi
    for item in "${DIRS[@]}"; do
        IFS=: read -r path mode owner group <<<"$item"
        mkdir -p "$path"
        set_owner_and_mode "$path" "${mode:-0755}" "$owner" "$group"
    done
    for item in "${FILES[@]}"; do
        IFS=: read -r source path mode owner group <<<"$item"
        mkdir -p "$(dirname "$path")"
        cp "$HOST_ROOT$source" "$path"
        set_owner_and_mode "$path" "${mode:-0644}" "$owner" "$group"
    done

    # The machine's enabled timers would only add noise.
    rm -rf "$units/timers.target.wants"
    # Kernel modules are the machine's: never load them from the lab. (The
    # other units that would touch the machine skip themselves in a container
    # or under the read-only /proc/sys and /sys.)
    ln -s /dev/null "$units/systemd-modules-load.service"
    for item in "${UNITS[@]}"; do cp "$HOST_ROOT$item" "$units/"; done
    mkdir -p /etc/systemd/user
    for item in "${USER_UNITS[@]}"; do cp "$HOST_ROOT$item" /etc/systemd/user/; done
    for item in "${DROPINS[@]}"; do
        mkdir -p "$units/${item%%:*}.d"
        cp "$HOST_ROOT${item#*:}" "$units/${item%%:*}.d/"
    done
}

# --- On the machine ----------------------------------------------------------

lab_running() { kill -0 "$LAUNCHER" 2>/dev/null; }

staging_tail() {
    say "end of the staging log:"
    tail -n 30 "$SCRATCH/staging.log" | sed 's/^/  | /' >&2
}

# Poll until systemd says the boot is over.
wait_for_boot() {
    local state=''
    while :; do
        lab_running || { say "boot failed"; staging_tail; exit "$EXIT_BOOT"; }
        if [ -z "$PID1" ] && [ -s "$SCRATCH/pid1" ]; then
            PID1=$(<"$SCRATCH/pid1")
            # Runs a command in the lab, as root, in a clean environment. Time
            # limits go inside (timeout COMMAND): nsenter must live on to reap.
            IN_LAB=(nsenter --target "$PID1" --mount --pid --uts --ipc --net --cgroup --root
                --wdns="$LAB_DIR" env -i "${LAB_ENVIRONMENT[@]}")
        fi
        if [ -n "$PID1" ] && [ "$(cat "/proc/$PID1/comm" 2>/dev/null)" = systemd ]; then
            state=$("${IN_LAB[@]}" timeout 10 systemctl is-system-running 2>/dev/null) || true
            case $state in
                running) return ;;
                degraded)
                    say "booted degraded; failed units:"
                    "${IN_LAB[@]}" systemctl --failed --no-legend >&2
                    return ;;
            esac
        fi
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            say "timed out after ${TIMEOUT}s: system not up (state '${state:-none}')"
            staging_tail
            exit "$EXIT_TIMEOUT"
        fi
        sleep 0.2
    done
}

run_scenario() {
    "${IN_LAB[@]}" /bin/sh "$LAB_DIR/scenario" </dev/null &
    SCENARIO_PID=$!
    while kill -0 "$SCENARIO_PID" 2>/dev/null; do
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            say "timed out after ${TIMEOUT}s: scenario still running"
            stop_scenario
            return "$EXIT_TIMEOUT"
        fi
        sleep 0.2
    done
    local status=0
    wait "$SCENARIO_PID" || status=$?
    SCENARIO_PID=''
    return "$status"
}

# The scenario's shell is a child of nsenter, which lives outside the lab.
# End the shell before the power-off: systemd's shutdown stops every process
# in the lab with SIGSTOP before it kills them, nsenter then stops itself
# too, and a stopped nsenter never reaps the shell, so PID 1 never exits.
stop_scenario() {
    [ -n "$SCENARIO_PID" ] || return 0
    { # quiet: bash would report nsenter's end as "Killed"
        grep -l "^PPid:[[:space:]]*$SCENARIO_PID\$" /proc/[0-9]*/status |
            while IFS=/ read -r _ _ child _; do kill -KILL "$child"; done
        wait "$SCENARIO_PID"
    } 2>/dev/null || true
    SCENARIO_PID=''
}

save_journal() {
    if [ -n "$LOG_DIR" ] && lab_running; then
        mkdir -p "$LOG_DIR"
        "${IN_LAB[@]}" timeout 30 journalctl --boot --no-pager --output=short-monotonic \
            >"$LOG_DIR/journal.txt" 2>&1 || true
    fi
}

power_off() {
    lab_running || return 0
    [ -z "$PID1" ] || kill -s RTMIN+4 "$PID1" 2>/dev/null || true # systemd: start poweroff.target
    local end=$((SECONDS + POWEROFF_SECONDS))
    while lab_running && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
    if lab_running; then
        say "no clean power-off within ${POWEROFF_SECONDS}s: killing the lab"
        kill -KILL "$LAUNCHER" 2>/dev/null || true
    fi
    wait "$LAUNCHER" 2>/dev/null || true
}

# Kill whatever is left in a cgroup, then remove it and its children.
remove_cgroup() { # DIRECTORY
    [ -d "$1" ] || return 0
    [ ! -e "$1/cgroup.kill" ] || echo 1 >"$1/cgroup.kill"
    local tries=50
    until grep -q '^populated 0' "$1/cgroup.events" || [ "$tries" = 0 ]; do
        sleep 0.2
        tries=$((tries - 1))
    done
    find "$1" -depth -type d -exec rmdir {} + || say "could not remove $1"
}

# A run killed outright (SIGKILL) takes its lab with it but leaves its
# scratch folder and empty cgroup behind: remove those of dead runs.
remove_leftovers() {
    local scratch owner
    for scratch in "${TMPDIR:-/tmp}/$NAME".*; do
        owner=$(cat "$scratch/owner" 2>/dev/null) || continue
        if kill -0 "$owner" 2>/dev/null; then continue; fi
        remove_cgroup "$CGROUP_ROOT/${scratch##*/}"
        rm -rf "$scratch"
    done
}

# Whatever happened: power off, then remove the cgroup and the scratch folder.
clean_up() {
    local status=$?
    set +e
    trap '' INT TERM
    stop_scenario
    save_journal
    power_off
    remove_cgroup "$CGROUP"
    if [ -n "$LOG_DIR" ]; then mkdir -p "$LOG_DIR" && cp "$SCRATCH/staging.log" "$LOG_DIR/"; fi
    rm -rf "$SCRATCH"
    exit "$status"
}

main() {
    parse_arguments "$@"
    check_prerequisites
    remove_leftovers
    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXXXX")
    echo "$$" >"$SCRATCH/owner"
    CGROUP=$CGROUP_ROOT/${SCRATCH##*/}
    PID1='' LAUNCHER='' SCENARIO_PID=''
    trap clean_up EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    mkdir "$SCRATCH/layer"
    : >"$SCRATCH/staging.log"
    LAB_ENVIRONMENT=(PATH="$SYSTEM_PATH" HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER=cat
        SYSTEMD_COLORS=0 LAB_LIB="$LAB_DIR/lib.sh")
    if [ -n "$PAYLOAD" ]; then LAB_ENVIRONMENT+=(LAB_PAYLOAD="$PAYLOAD_AT"); fi
    declare -p PAYLOAD PAYLOAD_AT SCENARIO UNITS USER_UNITS DROPINS SYSUSERS DIRS FILES >"$SCRATCH/spec"
    mkdir "$CGROUP"

    DEADLINE=$((SECONDS + TIMEOUT))
    # The lab lives in its own cgroup, which becomes its cgroup root. If this
    # script dies, even by SIGKILL, the parent-death signals take it down:
    # setpriv's on unshare, and unshare's (--kill-child) on the lab's PID 1.
    (
        echo "$BASHPID" >"$CGROUP/cgroup.procs"
        exec setpriv --pdeathsig KILL unshare --mount --pid --fork --kill-child --uts --ipc \
            --cgroup --net --propagation private "$SELF" --inside "$SCRATCH"
    ) </dev/null >"$SCRATCH/staging.log" 2>&1 &
    LAUNCHER=$!
    wait_for_boot

    local status=0
    run_scenario || status=$?
    if [ "$status" != 0 ] && [ "$status" != "$EXIT_TIMEOUT" ]; then
        say "scenario failed with exit status $status"
    fi
    exit "$status"
}

if [ "${1:-}" = --inside ]; then
    inside "$2"
else
    main "$@"
fi
