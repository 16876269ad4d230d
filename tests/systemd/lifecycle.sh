#!/bin/sh
# Runs inside a throw-away systemd (lab/run-in-systemd.sh, started by
# tests/integration/test_systemd.py): the life of ocrwatch@lab.service
# installed as docs/service.md says. Start with the local engine, OCR a page
# and fail a broken file, reload into a config that adds an ocr.space inbox (a
# fake server inside the lab, the key from the credential), stop. Waits here;
# the test asserts on the "=== NAME" sections printed to stdout. Exits
# non-zero when a wait times out.
set -eu
# shellcheck source=/dev/null
. "$LAB_LIB"

unit=ocrwatch@lab.service
inbox=/srv/ocrwatch/lab
shared=/srv/scans/lab
venv=$LAB_PAYLOAD
key_file=/etc/credstore/ocrwatch-lab.ocrspace-api-key
fake_port=8099
fake_text="Text from the fake ocr.space inside the lab"

section() { echo "=== $1"; }

status_matches() { # PATTERN: the unit's StatusText matches the shell pattern
    # shellcheck disable=SC2254 # $1 is a pattern on purpose
    case $(prop "$unit" StatusText) in
        $1) return 0 ;;
    esac
    return 1
}

wait_status() { # SECONDS PATTERN
    wait_until "$1" status_matches "$2" || {
        echo "FAIL: StatusText '$(prop "$unit" StatusText)' never matched '$2'" >&2
        return 1
    }
}

differs() { [ "$1" != "$2" ]; }

port_open() {
    "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $fake_port), 1).close()" 2>/dev/null
}

show() { # MORE_PROPERTIES: what the test compares, as KEY=VALUE lines
    systemctl show "$unit" --property=ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,NRestarts,StatusText,"$1"
}

# 1. Start: Type=notify, so this returns after READY=1 (or fails).
systemctl start "$unit"
section started
show MemoryDenyWriteExecute,PrivateUsers,ProtectSystem,User,SupplementaryGroups
section credential
stat -c '%a %U' "/run/credentials/$unit/ocrspace-api-key"
section sandbox
grep -E '^(Uid|NoNewPrivs|Seccomp|CapEff|CapBnd):' "/proc/$(prop "$unit" MainPID)/status"
section live-exposure
systemd-analyze security --no-pager "$unit" | tail -n 1

# 2. A rendered page for the local engine (tesserocr under MemoryDenyWriteExecute)
#    and a file that is not an image.
cp /lab/page.tif "$inbox/page.tif"
printf 'not an image at all' >"$inbox/broken.png"
wait_until 120 test -e "$inbox/page.tif.json"
wait_until 30 test -e "$inbox/broken.png.error.json"
wait_status 20 '*1 done, 1 failed*'
section local-text
cat "$inbox/page.tif.txt"
section local-status
prop "$unit" StatusText
watchdog_before=$(prop "$unit" WatchdogTimestampMonotonic)

# 3. The fake ocr.space server, as a transient unit. It reads the key itself:
#    on its command line the key would reach the journal (_CMDLINE) and spoil
#    the check at the end.
systemd-run --quiet --unit=fake-ocrspace --description="fake ocr.space server" \
    "$venv/bin/python" -c '
import sys
from pathlib import Path
sys.path.insert(0, "/lab")
from tests.support import ocrspace_server
port, text, key_file = sys.argv[1:]
sys.exit(ocrspace_server.main(["--port", port, "--mode", "text", "--text", text,
                               "--api-key", Path(key_file).read_text().strip()]))
' "$fake_port" "$fake_text" "$key_file"
wait_until 60 port_open

# 4. Reload into a config with a second inbox. On systemd 252 `reload` returns
#    before the daemon has read the file: wait for its new status.
cp /lab/lab-reloaded.yaml /etc/ocrwatch/lab.yaml
systemctl reload "$unit"
wait_status 20 '*2 inbox(es)*'
section reloaded-status
prop "$unit" StatusText

# 5. A file in the group-owned inbox goes through ocr.space (first endpoint
#    refused: a warning, then the second one), with the credential's key.
cp /lab/page.tif "$shared/shared.tif"
wait_until 60 test -e "$shared/shared.tif.json"
wait_status 20 '*2 done, 1 failed*'
section ocrspace-text
cat "$shared/shared.tif.txt"
section shared-sidecar
stat -c '%U:%G %a' "$shared/shared.tif.txt" "$shared/shared.tif.json"

# 6. The watchdog pings arrived while all this ran (WatchdogSec=6s in
#    observe.conf).
wait_until 10 differs "$(prop "$unit" WatchdogTimestampMonotonic)" "$watchdog_before"
section running
show WatchdogUSec

# 7. A clean stop: SIGTERM, STOPPING=1, exit 0. The exit facts come from the
#    ExecStopPost= line of observe.conf: the stopped instance is unloaded.
systemctl stop "$unit"
section stopped
prop "$unit" ActiveState
journalctl -u "$unit" --no-pager -o cat --grep '^stop-post:'

# 8. A broken config fails the start at once: exit 2, no restart loop, and no
#    credential trouble although this instance has no key file. A failed
#    instance stays loaded, so its properties are still there.
systemctl start ocrwatch@broken.service || true
section broken
systemctl show ocrwatch@broken.service --property=ActiveState,Result,ExecMainStatus,NRestarts
section broken-journal
journalctl -u ocrwatch@broken.service --no-pager -o json --output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER

# 9. Positive control: the same sandbox setting really refuses W+X memory here,
#    so the OCR above ran with the protection on.
section mdwe-control
systemd-run --quiet --wait --pipe -p User=ocrwatch -p MemoryDenyWriteExecute=yes \
    "$venv/bin/python" -c '
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError as error:
    print("refused:", error)
else:
    print("allowed")
' || true

# 10. The journal: every line with its priority, and where the key shows up.
section journal
journalctl -u "$unit" --no-pager -o short-monotonic
section journal-json
journalctl -u "$unit" --no-pager -o json --output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER
section journal-warning
journalctl -u "$unit" --no-pager -o cat -p warning
section key-occurrences
key=$(cat "$key_file")
echo "journal: $(journalctl -b --no-pager -o export | grep -c -F -- "$key" || true)"
echo "files: $(grep -r -l -F -- "$key" /srv /var/lib/ocrwatch | wc -l)"
echo "credential store: $(grep -c -F -- "$key" "$key_file")"
section end
