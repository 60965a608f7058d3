"""The `vpcnet` command line: talks to the controller API (except `check`, `controller`, `demo`)."""
from __future__ import annotations

import argparse
import os
import sys

from vpcnet.app import intent, output
from vpcnet.app.controller import DEFAULT_STATE_DIR, add_arguments as controller_arguments, run as run_controller


# A read answers in moments; a write (apply, delete, fabric sync) is answered when its outcome is
# known, which for a large change can take minutes (app/store.py WRITE_TIMEOUT): wait past it.
READ_TIMEOUT = 60.0
WRITE_TIMEOUT = 660.0


def _client(args, timeout: float = READ_TIMEOUT):
    from vpcnet.app.api import Client
    address = args.api or os.environ.get("VPCNET_API") or f"unix:{os.path.join(args.state_dir, 'api.sock')}"
    return Client(address, token=args.api_token, cafile=args.cacert, timeout=timeout)


def _call(args, method, path, body=None):
    timeout = READ_TIMEOUT if method == "GET" else WRITE_TIMEOUT
    try:
        status, payload = _client(args, timeout).request(method, path, body)
    except TimeoutError:
        raise SystemExit(f"error: the controller API gave no answer within {timeout:g} s; "
                         + ("a change may still be applied: check with `vpcnet get`" if method != "GET" else
                            "it may be overloaded"))
    except (ConnectionError, FileNotFoundError, OSError) as exc:
        raise SystemExit(f"error: cannot reach the controller API ({exc}); is `vpcnet controller` running? "
                         f"(--api / --state-dir)")
    if status >= 400:
        for line in payload.get("errors", [f"HTTP {status}"]):
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(1)
    return payload


def _load(paths) -> list[dict]:
    docs: list[dict] = []
    for path in paths:
        if path == "-":
            docs += intent.parse_documents(sys.stdin.read(), "<stdin>")
        else:
            docs += intent.load_path(path)
    return docs


def cmd_apply(args):
    try:
        docs = _load(args.filename)
    except intent.ValidationError as exc:
        return _fail(exc.errors)
    payload = _call(args, "POST", "/v1/apply", {"documents": docs, "source": ",".join(args.filename)})
    for r in payload["results"]:
        print(f"{r['ref'].lower()} {r['result']}")
    return 0


def cmd_delete(args):
    if args.filename:
        try:
            body = {"documents": _load(args.filename)}
        except intent.ValidationError as exc:
            return _fail(exc.errors)
    elif args.kind and args.names:
        body = {"refs": [{"kind": args.kind, "namespace": args.namespace, "name": n} for n in args.names]}
    else:
        return _fail(["delete: give -f FILE or KIND NAME..."])
    payload = _call(args, "POST", "/v1/delete", body)
    missing = 0
    for r in payload["results"]:
        print(f"{r['ref'].lower()} {r['result']}")
        missing += r["result"] == "not found"
    return 1 if (missing and not args.filename) else 0


def cmd_get(args):
    if args.kind.lower() in ("ip-history", "iphistory", "ip"):
        if not args.name:
            return _fail(["get ip-history: give an ADDRESS"])
        items = _call(args, "GET", f"/v1/ip-history/{args.name}")["items"]
        if args.output in ("json", "yaml"):
            print(output.dump(items, args.output))
        elif not items:
            print(f"no allocation of {args.name} on record")
        else:
            print(output.history_table(items))
        return 0
    try:
        info = intent.resolve_kind(args.kind)
    except intent.ValidationError as exc:
        return _fail(exc.errors)
    query = ""
    if info.namespaced and not args.all_namespaces:
        query = f"?namespace={args.namespace or 'default'}"
    if args.name:
        items = [_call(args, "GET", f"/v1/objects/{info.plural}/{args.name}{query}")]
    else:
        items = _call(args, "GET", f"/v1/objects/{info.plural}{query}")["items"]
    if args.output in ("json", "yaml"):
        data = items[0] if args.name else {"apiVersion": "vpcnet.io/v1", "kind": "List", "items": items}
        print(output.dump(data, args.output))
    elif not items:
        print(f"no {info.plural} found" + (f" in namespace {args.namespace or 'default'}" if query else ""))
    else:
        print(output.objects_table(info.kind, items, wide=args.output == "wide"))
    return 0


def cmd_describe(args):
    try:
        info = intent.resolve_kind(args.kind)
    except intent.ValidationError as exc:
        return _fail(exc.errors)
    query = f"?namespace={args.namespace or 'default'}" if info.namespaced else ""
    print(output.describe(_call(args, "GET", f"/v1/objects/{info.plural}/{args.name}{query}")))
    return 0


def cmd_check(args):
    try:
        objs = intent.validate_all(_load(args.filename), ",".join(args.filename))
    except intent.ValidationError as exc:
        return _fail(exc.errors)
    for obj in objs:
        print(f"{obj.ref.lower()} valid")
    print(f"{len(objs)} objects valid")
    return 0


def cmd_flows(args):
    import urllib.parse
    query = {k: v for k, v in (("table", args.table), ("owner", args.owner)) if v}
    if args.installed:
        query["installed"] = "1"
    path = f"/v1/flows/{urllib.parse.quote(args.node)}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    payload = _call(args, "GET", path)
    for line in payload["flows"]:
        print(line)
    for line in payload.get("unrecognised", []):
        print(f"NOT VPCNET'S OR DRIFTED: {line}")
    return 0


def cmd_fabric(args):
    """`vpcnet fabric plan|sync [LEAF...]`: what the leaves would get / apply it. Exit 1 when a leaf
    failed (plan: could not be read; sync: refused or unreachable), 2 when plan found changes and
    --detailed-exitcode was given (as terraform does, for scripts)."""
    import urllib.parse
    if args.action == "plan":
        query = f"?leaf={urllib.parse.quote(','.join(args.leaves))}" if args.leaves else ""
        payload = _call(args, "GET", f"/v1/fabric/plan{query}")
    else:
        payload = _call(args, "POST", "/v1/fabric/sync", {"leaves": args.leaves or None})
    failed = changed = 0
    for leaf in payload["leaves"]:
        if leaf["error"]:
            failed += 1
            print(f"leaf {leaf['leaf']} ({leaf['model']}): ERROR {leaf['error']}")
            continue
        changed += bool(leaf["changes"])
        text = leaf["text"].rstrip("\n")
        if args.action == "sync":
            text = text.replace(" change(s)", " change(s) applied", 1) if leaf["applied"] else text
        print(text + (f"  [{leaf['seconds']:.2f}s]" if args.action == "sync" else ""))
    if failed:
        return 1
    return 2 if args.action == "plan" and changed and args.detailed_exitcode else 0


def cmd_demo(args):
    from vpcnet.app.demo import run_demo
    return run_demo(args)


def _fail(errors) -> int:
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vpcnet", description="vpcnet: container network for Kubernetes on OVS + EVPN")
    p.add_argument("--api", help="controller API: unix:PATH or HOST:PORT (default unix:STATE_DIR/api.sock)")
    p.add_argument("--api-token", default=os.environ.get("VPCNET_API_TOKEN"), help="bearer token for a TCP API")
    p.add_argument("--cacert", help="CA bundle to verify a TLS API")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where the embedded controller keeps its socket")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("controller", help="run the controller (state database, IPAM, API, OpenFlow, metrics)")
    controller_arguments(c)
    c.set_defaults(func=run_controller)

    n = sub.add_parser("node", help="run the node daemon: br-int, pod plumbing for vpcnet-cni")
    from vpcnet.cni.daemon import add_arguments as node_arguments, run as run_node
    node_arguments(n)
    n.set_defaults(func=run_node)

    a = sub.add_parser("apply", help="create or update objects from files (idempotent)")
    a.add_argument("-f", "--filename", action="append", required=True, help="file, directory or - (repeatable)")
    a.set_defaults(func=cmd_apply)

    d = sub.add_parser("delete", help="delete objects (-f FILE, or KIND NAME...)")
    d.add_argument("-f", "--filename", action="append")
    d.add_argument("kind", nargs="?")
    d.add_argument("names", nargs="*")
    d.add_argument("-n", "--namespace", default="default")
    d.set_defaults(func=cmd_delete)

    g = sub.add_parser("get", help="list objects, or one: get KIND [NAME]; get ip-history ADDRESS")
    g.add_argument("kind")
    g.add_argument("name", nargs="?")
    g.add_argument("-n", "--namespace")
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-o", "--output", choices=["json", "yaml", "wide"])
    g.set_defaults(func=cmd_get)

    s = sub.add_parser("describe", help="show one object with its status")
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("-n", "--namespace")
    s.set_defaults(func=cmd_describe)

    k = sub.add_parser("check", help="validate files offline (no controller needed)")
    k.add_argument("-f", "--filename", action="append", required=True)
    k.set_defaults(func=cmd_check)

    f = sub.add_parser("flows", help="a node's br-int flows in canonical text: compiled, or --installed "
                                     "(read back from the switch)")
    f.add_argument("node")
    f.add_argument("--table", help="only this table (by name, e.g. l2_fwd)")
    f.add_argument("--owner", help="only this owner's flows (e.g. pod/NS/NAME, subnet/NAME, vpc/NAME, base)")
    f.add_argument("--installed", action="store_true", help="read the flows back from the switch")
    f.set_defaults(func=cmd_flows)

    fb = sub.add_parser("fabric", help="leaf configuration over NETCONF: plan (show, send nothing) or sync (apply)")
    fb.add_argument("action", choices=("plan", "sync"))
    fb.add_argument("leaves", nargs="*", help="leaf names (default: every NETCONF leaf)")
    fb.add_argument("--detailed-exitcode", action="store_true", help="plan: exit 2 when a leaf needs changes")
    fb.set_defaults(func=cmd_fabric)

    from vpcnet.sim.cli import add_lab_commands
    add_lab_commands(sub)

    m = sub.add_parser("demo", help="start a controller on a private state database, apply examples/, show the result")
    m.add_argument("--examples", default=None, help="manifests to apply (default: the bundled examples/)")
    m.add_argument("--keep", action="store_true", help="keep the controller running after the demo")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
