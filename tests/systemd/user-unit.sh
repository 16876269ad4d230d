#!/bin/sh
# Runs inside a throw-away systemd (lab/run-in-systemd.sh, started by
# tests/integration/test_systemd.py): the user unit
# systemd/user/ocrwatch.service in the user manager of "tester", with its
# sandbox (user namespace), ocrwatch in ~/.local/bin as pipx puts it and the
# config in ~/.config/ocrwatch/config.yaml. Start, OCR, reload, stop; the test
# asserts on the "=== NAME" sections printed to stdout.
set -eu
# shellcheck source=/dev/null
. "$LAB_LIB"

user=tester
home=/home/$user
inbox=$home/Scans
section() { echo "=== $1"; }
user_ctl() { as_user "$user" systemctl --user "$@"; }
user_prop() { user_ctl show ocrwatch.service --property="$1" --value; }
daemon_lines() { journalctl --no-pager -o cat "_SYSTEMD_USER_UNIT=ocrwatch.service"; }
reloaded_logged() { daemon_lines | grep -q '^reloaded; '; }

systemctl start "user@$(id -u "$user").service"
user_ctl start ocrwatch.service
section started
user_ctl show ocrwatch.service --property=ActiveState,SubState,StatusText

# Written the way scanners and rsync do: a hidden temporary, then a rename into place.
cp /lab/page.tif "$inbox/.page.tif.part"
chown "$user:" "$inbox/.page.tif.part"
mv "$inbox/.page.tif.part" "$inbox/page.tif"
wait_until 120 test -e "$inbox/page.tif.json"
section text
cat "$inbox/page.tif.txt"

# systemd 252 returns from reload before the daemon is done: wait for its line.
user_ctl reload ocrwatch.service
wait_until 20 reloaded_logged
section reloaded
daemon_lines | grep '^reloaded; '

# $STATE_DIRECTORY: ~/.config/ocrwatch/state on 252, ~/.local/state/... later.
section state
find "$home/.config/ocrwatch" "$home/.local/state" -name state.sqlite3 2>/dev/null || true

user_ctl stop ocrwatch.service
section stopped
user_prop ActiveState
section journal
journalctl --no-pager -o short-monotonic "_SYSTEMD_USER_UNIT=ocrwatch.service"
section end
