"""Persisted attachment records: one JSON file per (container id, ifname), fsync'ed.

A record is written (state "adding") *before* the controller is asked for the pod's address,
and rewritten with the result ("ready") before the ADD answers. So after a crash at any point,
DEL and GC find what may exist (port, veth, address) and remove it; and a restarted daemon knows
every attachment without asking anyone. The veth pair and the br-int port are created while the
"adding" record is being written (the ADD's latency): they need no record to be found, GC finds
them by their marks (br-int ports with ``external_ids:vpcnet-owner=pod``, host links named
``vp`` + 12 hex digits) and DEL by the pod's name (``pod_port_name``) from CNI_ARGS.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Record:
    container_id: str
    ifname: str
    netns: str
    namespace: str
    pod: str
    port: str
    state: str = "adding"            # adding | ready
    result: dict = field(default_factory=dict)
    created_ms: int = 0


class Records:
    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, container_id: str, ifname: str) -> Path:
        return self.dir / f"{container_id}-{ifname}.json"

    def save(self, rec: Record) -> None:
        path = self._path(rec.container_id, rec.ifname)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(rec), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self, container_id: str, ifname: str) -> Record | None:
        try:
            return Record(**json.loads(self._path(container_id, ifname).read_text()))
        except FileNotFoundError:
            return None

    def delete(self, container_id: str, ifname: str) -> None:
        try:
            self._path(container_id, ifname).unlink()
        except FileNotFoundError:
            pass

    def all(self) -> list[Record]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(Record(**json.loads(path.read_text())))
            except (ValueError, TypeError):
                continue   # a torn write cannot happen (rename), but never let one file stop GC
        return out
