"""Choosing native or polled watching from the mount table."""

from __future__ import annotations

from pathlib import Path

from ocrwatch.config import InboxConfig, WatchSetting
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.watcher import choose_mode, filesystem_of

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv/share rw,relatime shared:9 - cifs //nas/scans rw,vers=3.0
31 22 0:41 / /srv/nfs rw,relatime shared:10 - nfs4 nas:/export rw
32 22 0:42 / /home/me/remote rw,nosuid shared:11 - fuse.sshfs me@host: rw
33 22 0:43 / /srv/with\\040space rw shared:12 - nfs nas:/x rw
"""


def inbox(path: str, watch: WatchSetting = "auto") -> InboxPlan:
    config = InboxConfig(path=Path(path), watch=watch)
    return InboxPlan.of(config, index=0, rules=Rules(engine="tesseract"), engine_reason="")


def test_longest_mount_point_wins() -> None:
    """A folder on a CIFS share is on cifs, not on the root ext4."""
    assert ("cifs", "/srv/share") == filesystem_of(Path("/srv/share/inbox"), MOUNTINFO)
    assert ("ext4", "/") == filesystem_of(Path("/srv/sharex"), MOUNTINFO)
    assert ("nfs", "/srv/with space") == filesystem_of(Path("/srv/with space/in"), MOUNTINFO)


def test_network_and_fuse_are_polled_local_is_native() -> None:
    """SMB, NFS and FUSE inboxes poll; local disks use inotify; the log reason names the file system."""
    assert "poll" == choose_mode(inbox("/srv/share/in"), MOUNTINFO).kind
    assert "poll" == choose_mode(inbox("/srv/nfs/in"), MOUNTINFO).kind
    assert "poll" == choose_mode(inbox("/home/me/remote/in"), MOUNTINFO).kind
    local = choose_mode(inbox("/var/scans"), MOUNTINFO)
    assert ("native", "local ext4 file system at /") == (local.kind, local.reason)
    assert "cifs file system at /srv/share" in choose_mode(inbox("/srv/share/in"), MOUNTINFO).reason


def test_config_overrides_detection() -> None:
    """`watch: native` on a share and `watch: poll` on a local disk are honoured."""
    assert "native" == choose_mode(inbox("/srv/share/in", watch="native"), MOUNTINFO).kind
    assert "poll" == choose_mode(inbox("/var/scans", watch="poll"), MOUNTINFO).kind
