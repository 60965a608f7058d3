"""The plugin as containerd runs it: env + stdin, JSON on stdout, the spec's exit codes."""
import json
import subprocess
import sys


def exec_plugin(command, stdin):
    env = {"CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "vpcnet.cni.plugin"], input=stdin, capture_output=True,
                          text=True, env=env)
    return done.returncode, json.loads(done.stdout)


def test_version_lists_every_supported_spec_version():
    rc, out = exec_plugin("VERSION", '{"cniVersion": "1.0.0"}')
    assert rc == 0 and out["cniVersion"] == "1.0.0" and "1.1.0" in out["supportedVersions"]


def test_add_without_daemon_is_try_again_later_and_bad_json_is_decode_error():
    rc, out = exec_plugin("ADD", '{"cniVersion": "1.1.0", "name": "vpcnet", "type": "vpcnet-cni"}')
    assert rc == 1 and out["code"] == 11
    rc, out = exec_plugin("ADD", "{not json")
    assert rc == 1 and out["code"] == 6
    rc, out = exec_plugin("FROB", "{}")
    assert rc == 1 and out["code"] == 4 and "FROB" in out["msg"]
