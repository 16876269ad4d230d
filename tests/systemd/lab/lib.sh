# shellcheck shell=sh
# Helpers for scenarios run by run-in-systemd.sh (POSIX sh): . "$LAB_LIB"
# Each returns non-zero when its check fails, so `set -e` stops the scenario.

# wait_until SECONDS COMMAND [ARGUMENT...]: poll COMMAND until it succeeds;
# fail with a line on stderr if it has not within SECONDS.
wait_until() {
    _lab_deadline=$(($(date +%s) + $1))
    shift
    until "$@"; do
        if [ "$(date +%s)" -ge "$_lab_deadline" ]; then
            echo "timed out waiting for: $*" >&2
            return 1
        fi
        sleep 0.2
    done
}

# prop UNIT PROPERTY: the value of one property of UNIT.
prop() {
    systemctl show --property="$2" --value -- "$1"
}

# as_user USER COMMAND [ARGUMENT...]: run COMMAND as USER, able to reach
# USER's own manager (systemctl --user) through $XDG_RUNTIME_DIR.
as_user() {
    _lab_user=$1
    shift
    setpriv --reuid="$_lab_user" --regid="$(id -g "$_lab_user")" --init-groups \
        env USER="$_lab_user" HOME="$(getent passwd "$_lab_user" | cut -d: -f6)" \
        XDG_RUNTIME_DIR="/run/user/$(id -u "$_lab_user")" "$@"
}
