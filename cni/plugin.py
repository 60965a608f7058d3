"""`vpcnet-cni`: the CNI plugin executable (standard library only; it is exec'd per call).

It answers VERSION itself. Every other command is forwarded to the node daemon over a unix
socket; until the daemon exists on this node (it lands with the CNI issue) the plugin answers
with the spec's code 11, "try again later", and never pretends a pod was attached.
"""
from __future__ import annotations

import json
import os
import sys

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
DAEMON_SOCKET = os.environ.get("VPCNET_CNI_SOCKET", "/run/vpcnet/cni.sock")


def error(code: int, msg: str, details: str = "", version: str = "1.1.0") -> dict:
    return {"cniVersion": version, "code": code, "msg": msg, "details": details}


def run(env: dict, stdin: str, stdout) -> int:
    command = env.get("CNI_COMMAND", "")
    try:
        config = json.loads(stdin) if stdin.strip() else {}
    except ValueError as exc:
        json.dump(error(6, "failed to decode network configuration from stdin", str(exc)), stdout)
        return 1
    version = config.get("cniVersion", "1.1.0") if isinstance(config, dict) else "1.1.0"
    if command == "VERSION":
        json.dump({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}, stdout)
        return 0
    if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
        json.dump(error(4, f"CNI_COMMAND: unknown command {command!r}", version=version), stdout)
        return 1
    json.dump(error(11, "vpcnet node daemon not reachable",
                    f"no node daemon at {DAEMON_SOCKET}; is `vpcnet node` running?", version), stdout)
    return 1


def main() -> None:
    sys.exit(run(dict(os.environ), sys.stdin.read() if not sys.stdin.isatty() else "", sys.stdout))

if __name__ == "__main__":
    main()
