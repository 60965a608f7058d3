#!/usr/bin/env bash
# vpcnet installer: Debian 12 packages + a virtualenv with the Python packages.
# Idempotent: safe to re-run. Used by the README, CI and the lab.
#   bash install.sh            install everything into ./.venv
#   VPCNET_VENV=/path bash install.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${VPCNET_VENV:-$here/.venv}

debs=(
  python3 python3-venv python3-dev python3-openvswitch
  openvswitch-switch openvswitch-vtep openvswitch-common
  mininet frr netconfd openssh-server prometheus
  iperf3 ethtool iproute2 iputils-ping tcpdump libyang2-tools openssl
  gcc git procps psmisc iptables
)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3 (3.11) with system site packages: sees Debian's `ovs` (C JSON parser) and `mininet`.
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.vpcnet-installed"
if [ ! -f "$stamp" ] || [ "$here/setup.cfg" -nt "$stamp" ] || [ "$here/install.sh" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --upgrade "pip>=23" "setuptools>=68" wheel
  "$venv/bin/python" -m pip install -q -e "$here[test]"
  touch "$stamp"
fi
"$venv/bin/python" - <<'PY'
import ovs.json, ovsdbapp, os_ken  # noqa: F401
if ovs.json.PARSER != "C":
    print("install.sh: warning: ovs JSON parser is", ovs.json.PARSER, "(Debian's C parser expected)")
PY
echo "install.sh: ready ($venv)"
