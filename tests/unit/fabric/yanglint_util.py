"""Run the real ``yanglint`` (libyang2-tools) against the vendored OpenConfig modules."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path


YANG_DIR = Path(__file__).resolve().parent / "yang"
OPENCONFIG = YANG_DIR / "openconfig"
MODULES = ("openconfig-network-instance.yang", "openconfig-if-ip.yang")
# ietf-netconf (for nc:operation in edit payloads) ships with netconfd (yuma123), see install.sh
IETF_NETCONF = Path("/usr/share/yuma/modules/ietf/ietf-netconf@2011-06-01.yang")
# install.sh installs libyang2-tools and netconfd: these tests never skip (a missing tool fails them).
YANGLINT = shutil.which("yanglint")



def yanglint(*xml_files: Path, mode: str = "config") -> subprocess.CompletedProcess:
    """``yanglint -ii -Q -p openconfig <modules> -t <mode> FILE...``; returncode 0 = all valid.

    Each file is validated on its own (no ``--merge``); yanglint stops at the first invalid one.
    """
    cmd = [YANGLINT or "yanglint", "-ii", "-Q", "-p", str(OPENCONFIG)]
    cmd += [str(OPENCONFIG / m) for m in MODULES]
    if mode == "edit":
        cmd += ["-p", str(IETF_NETCONF.parent), str(IETF_NETCONF)]
    cmd += ["-t", mode, *map(str, xml_files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
