"""Benign traffic: the hosts and process specs of the fleet (drawn once), and the event
builders (process, network, DNS, file, authentication, web) that every line, benign or
planted, is made from."""

from __future__ import annotations

import base64
import random
import shlex
import time
from typing import Any

from .text import flatten_into, has_guard_literal, win_split
from .vocabulary import (
    BEATS_VERSIONS,
    DOMAINS,
    ENDPOINT_VERSIONS,
    LINUX_CMDS,
    LINUX_EXE,
    LINUX_OS,
    LINUX_PARENTS,
    LINUX_USERS,
    NETWORK_WORDS,
    USER_AGENTS,
    WIN_CMDS,
    WIN_COMPANY,
    WIN_EXE,
    WIN_PARENTS,
    WIN_USERS,
    WINDOWS_OS,
    WORDS,
    Filler,
    Spec,
)

EPOCH_START = 1714953600  # 2024-05-06T00:00:00Z
SPAN_SECONDS = 7 * 86400  # @timestamp spreads over about a week, whatever the size
AVG_LINE_BYTES = 1120  # measured average, only used to spread timestamps over the span


class BenignEvents:
    """The fleet and its benign events, drawn from one random stream (`self.r`)."""

    def __init__(self, seed: int, size: int) -> None:
        self.r = random.Random(seed)
        self.size = size
        self.filler = Filler(self)
        r = self.r
        self.public_ips = [self._public_ip() for _ in range(600)]
        self.linux_specs = [self._linux_spec(r.choice(LINUX_CMDS)) for _ in range(4000)]
        self.win_specs = [self._win_spec(r.choice(WIN_CMDS)) for _ in range(3000)]
        self.linux_parents = [self._linux_spec(r.choice(LINUX_PARENTS)) for _ in range(300)]
        self.win_parents = [self._win_spec(r.choice(WIN_PARENTS)) for _ in range(200)]
        self.linux_net_specs = [
            s
            for s in self.linux_specs
            if s.name
            in (
                "curl",
                "wget",
                "python3",
                "java",
                "node",
                "git",
                "apt-get",
                "docker",
                "aws",
                "gsutil",
                "rsync",
                "psql",
                "redis-cli",
                "kubectl",
                "sshd",
                "elastic-agent",
                "filebeat",
                "amazon-ssm-agent",
                "ssm-agent-worker",
                "google_guest_agent",
                "dockerd",
                "kubelet",
                "npm",
            )
        ]
        self.win_net_specs = [
            s
            for s in self.win_specs
            if s.name
            in (
                "chrome.exe",
                "msedge.exe",
                "svchost.exe",
                "OUTLOOK.EXE",
                "Teams.exe",
                "powershell.exe",
                "git.exe",
                "Code.exe",
                "amazon-ssm-agent.exe",
                "elastic-agent.exe",
                "MpCmdRun.exe",
                "WindowsAzureGuestAgent.exe",
                "WaAppAgent.exe",
                "sqlservr.exe",
            )
        ]
        for pool in (self.linux_specs, self.win_specs, self.linux_parents, self.win_parents):
            for s in pool:
                if has_guard_literal(s.cmd) or any(has_guard_literal(a) for a in s.args):
                    raise AssertionError(f"vocabulary contains a rule literal: {s.cmd!r}")
        self.hosts = [self._host(i) for i in range(48)]
        self.linux_hosts = [h for h in self.hosts if not h["win"]]
        self.win_hosts = [h for h in self.hosts if h["win"]]
        self.web_hosts = [h for h in self.linux_hosts if h["web"]]
        self.sensor = self._host(99, sensor=True)
        self.seq = 0
        self.log_offset = 0
        est_lines = max(1, size // AVG_LINE_BYTES)
        self.step_ms = max(2, (SPAN_SECONDS * 1000) // est_lines)
        self.t_ms = EPOCH_START * 1000 + r.randrange(3_600_000)
        self._sec = -1
        self._iso = ""
        self._clf = ""

    # ---------------------------------------------------------------- vocabulary helpers
    def private_ip(self) -> str:
        r = self.r
        k = r.randrange(3)
        if k == 0:
            return f"10.{r.randrange(0, 40)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        if k == 1:
            return f"172.{r.randrange(16, 32)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        return f"192.168.{r.randrange(0, 20)}.{r.randrange(1, 255)}"

    def _public_ip(self) -> str:
        r = self.r
        if r.random() < 0.15:
            a, b, c = (r.randrange(1, 0xFFFF) for _ in range(3))
            return f"2600:1f18:{a:x}:{b:x}::{c:x}"
        first = r.choice((3, 13, 18, 20, 34, 35, 40, 52, 54, 104, 140, 142, 151, 185, 199, 203))
        return f"{first}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def _linux_spec(self, template: str) -> Spec:
        cmd = template.format_map(self.filler)
        if cmd.startswith("sshd: ") or cmd == "-bash":
            args = [cmd]
            name = "sshd" if cmd.startswith("sshd") else "bash"
        else:
            args = shlex.split(cmd)
            name = args[0].rsplit("/", 1)[-1]
        exe = args[0] if args[0].startswith("/") else LINUX_EXE.get(name, "/usr/bin/" + name)
        if name == "sshd":
            exe = "/usr/sbin/sshd"
        elif name == "bash":
            exe = "/usr/bin/bash"
        s = Spec(name, exe, args, cmd, False)
        s.hashes = {"sha256": f"{self.r.getrandbits(256):064x}"}
        return s

    def _win_spec(self, template: str) -> Spec:
        cmd = template.format_map(self.filler)
        args = win_split(cmd)
        argv0 = args[0]
        name = argv0.rsplit("\\", 1)[-1]
        exe = argv0 if "\\" in argv0 else WIN_EXE.get(name, "C:\\Windows\\System32\\" + name)
        s = Spec(name, exe, args, cmd, True)
        r = self.r
        s.hashes = {"sha256": f"{r.getrandbits(256):064x}"}
        company, product = WIN_COMPANY.get(
            name, ("Microsoft Corporation", "Microsoft® Windows® Operating System")
        )
        s.pe = {
            "original_file_name": name.upper() if r.random() < 0.3 else name,
            "company": company,
            "product": product,
        }
        s.sig = {"subject_name": company, "trusted": True}
        return s

    def linux_spec_from(self, cmd: str, name: str | None = None) -> Spec:
        args = shlex.split(cmd)
        n = name or args[0].rsplit("/", 1)[-1]
        exe = args[0] if args[0].startswith("/") else LINUX_EXE.get(n, "/usr/bin/" + n)
        s = Spec(n, exe, args, cmd, False)
        s.hashes = {"sha256": f"{self.r.getrandbits(256):064x}"}
        return s

    def win_spec_from(self, cmd: str, name: str | None = None) -> Spec:
        s = self._win_spec(cmd.replace("{", "{{").replace("}", "}}"))
        if name:
            s.name = name
        return s

    def _host(self, i: int, sensor: bool = False) -> dict[str, Any]:
        r = self.r
        win = not sensor and i % 4 == 3
        if sensor:
            name = "zeek-sensor-01"
            os_d = LINUX_OS[2]
        elif win:
            name = r.choice(("WIN-", "WS-FIN-", "SQL-PROD-", "DC0", "JUMP-", "FS0")) + (
                "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(7))
                if r.random() < 0.4
                else str(r.randrange(1, 9))
            )
            os_d = r.choice(WINDOWS_OS)
        else:
            style = r.randrange(4)
            if style == 0:
                a, b, c = r.randrange(0, 40), r.randrange(256), r.randrange(1, 255)
                name = f"ip-10-{a}-{b}-{c}.ec2.internal"
            elif style == 1:
                name = f"gke-prod-default-pool-{r.getrandbits(32):08x}-{r.getrandbits(16):04x}"
            else:
                name = r.choice(
                    ("web-prod-", "api-prod-", "db-", "ci-runner-", "bastion-", "k8s-node-")
                ) + (f"{r.randrange(1, 20):02d}")
            os_d = r.choice(LINUX_OS)
        ip = self.private_ip()
        host = {
            "os": {k: os_d[k] for k in ("type", "family", "name", "version", "kernel")},
            "ip": [ip]
            if r.random() < 0.7
            else [
                ip,
                "fe80::{:x}:{:x}:{:x}:{:x}".format(*tuple(r.randrange(0x10000) for _ in range(4))),
            ],
            "name": name.lower() if not win else name,
        }
        g1, g2, g3, g4, g5 = (r.getrandbits(n) for n in (32, 16, 16, 16, 48))
        agent_id = f"{g1:08x}-{g2:04x}-{g3:04x}-{g4:04x}-{g5:012x}"
        bver = r.choice(BEATS_VERSIONS)
        ever = r.choice(ENDPOINT_VERSIONS)
        beat = lambda t: {"name": host["name"], "type": t, "version": bver}  # noqa: E731
        return {
            "win": win,
            "web": (not win) and name.startswith(("web-", "api-", "ip-")),
            "endpoint_linux": (not win) and r.random() < 0.35,
            "host": host,
            "ip": ip,
            "auditbeat": beat("auditbeat"),
            "filebeat": beat("filebeat"),
            "endpoint": {"id": agent_id, "type": "endpoint", "version": ever},
            "ecs_beats": {"version": "1.12.0" if bver.startswith("7.") else "8.0.0"},
            "ecs_endpoint": {"version": "8.10.0"},
            "users": WIN_USERS if win else LINUX_USERS,
        }

    # ---------------------------------------------------------------- per-line helpers
    def tick(self) -> str:
        r = self.r
        self.t_ms += 1 + r.randrange(self.step_ms * 2)
        sec, ms = divmod(self.t_ms, 1000)
        if sec != self._sec:
            self._sec = sec
            tm = time.gmtime(sec)
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
            self._clf = time.strftime("%d/%b/%Y:%H:%M:%S +0000", tm)
        return f"{self._iso}.{ms:03d}Z"

    def cat(self, *values: str) -> list[str] | str:
        """event.category / event.type: an array, sometimes a bare string when single."""
        if len(values) == 1 and self.r.random() < 0.15:
            return values[0]
        return list(values)

    def entity_id(self) -> str:
        return base64.b64encode(self.r.getrandbits(192).to_bytes(24, "big")).decode()

    def user_for(self, h: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        r = self.r
        if h["win"]:
            n = name or (r.choice(h["users"]) if r.random() < 0.6 else "SYSTEM")
            if n == "SYSTEM":
                return {"name": n, "domain": "NT AUTHORITY", "id": "S-1-5-18"}
            return {
                "name": n,
                "domain": "CORP",
                "id": "S-1-5-21-%d-%d-1%03d"  # noqa: UP031
                % (r.randrange(10**9), r.randrange(10**9), r.randrange(1000)),
            }
        n = name or r.choice(h["users"])
        uid = "0" if n == "root" else str(1000 + sum(map(ord, n)) % 900)
        return {"name": n, "id": uid, "group": {"id": uid, "name": n}}

    # ---------------------------------------------------------------- event builders
    def _filebeat(self, h: dict[str, Any], path: str, fileset: str, service: str) -> dict[str, Any]:
        """The fields Filebeat adds to a line it read from a log file, in its order."""
        return {
            "log": {"file": {"path": path}, "offset": self._offset()},
            "fileset": {"name": fileset},
            "service": {"type": service},
            "host": h["host"],
            "agent": h["filebeat"],
            "ecs": h["ecs_beats"],
        }

    def process_event(
        self,
        h: dict[str, Any],
        ts: str,
        spec: Spec,
        etype: Any = None,
        ecat: Any = None,
        flavor: str | None = None,
        parent: Spec | None = None,
        user: str | None = None,
        no_cmdline: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Returns (doc, written_by_a_beat)."""
        r = self.r
        win = h["win"]
        if flavor is None:
            flavor = (
                "endpoint"
                if (win or h["endpoint_linux"])
                else r.choice(("system", "system", "auditd"))
            )
        if parent is None:
            parent = r.choice(self.win_parents if win else self.linux_parents)
        start = etype is None
        if etype is None:
            etype = self.cat("start") if r.random() < 0.72 else self.cat("end")
        if ecat is None:
            ecat = self.cat("process")
        is_end = etype == "end" or etype == ["end"]
        if is_end and flavor == "auditd":
            flavor = "system"  # auditd has no process-end record
        pid = r.randrange(300, 4_000_000 if not win else 60000)
        ppid = r.randrange(1, pid)
        proc: dict[str, Any]
        if flavor == "endpoint":
            proc = {
                "parent": {
                    "pid": ppid,
                    "name": parent.name,
                    "executable": parent.exe,
                    "command_line": parent.cmd,
                },
                "pid": pid,
                "entity_id": self.entity_id(),
                "executable": spec.exe,
                "name": spec.name,
                "args": spec.args,
                "args_count": len(spec.args),
                "command_line": spec.cmd,
                "working_directory": (
                    "C:\\Windows\\system32" if win else r.choice(("/", "/root", "/srv", "/tmp"))
                ),
            }
            if win:
                proc["hash"] = spec.hashes
                proc["pe"] = spec.pe
                proc["code_signature"] = spec.sig
                proc["Ext"] = {
                    "token": {"integrity_level_name": r.choice(("high", "medium", "system"))}
                }
            if is_end:
                proc["exit_code"] = r.choice((0, 0, 0, 1, 2, 130))
            if no_cmdline:
                del proc["command_line"]
            action = ("end" if is_end else "start") if win else ("end" if is_end else "exec")
            doc = {
                "@timestamp": ts,
                "agent": h["endpoint"],
                "process": proc,
                "event": {
                    "kind": "event",
                    "module": "endpoint",
                    "action": action,
                    "id": self.entity_id()[:20],
                    "category": ecat,
                    "type": etype,
                    "dataset": "endpoint.events.process",
                },
                "user": self.user_for(h, user),
                "host": h["host"],
                "ecs": h["ecs_endpoint"],
                "data_stream": {
                    "namespace": "default",
                    "type": "logs",
                    "dataset": "endpoint.events.process",
                },
            }
            return doc, False
        u = self.user_for(h, user)
        if flavor == "system":
            proc = {
                "pid": pid,
                "parent": {"pid": ppid},
                "name": spec.name,
                "executable": spec.exe,
                "args": spec.args,
                "working_directory": r.choice(("/", "/root", "/srv", "/home/" + u["name"])),
                "start": ts,
                "entity_id": self.entity_id()[:16],
                "hash": {"sha1": spec.hashes["sha256"][:40]},
            }
            if r.random() < 0.5 and not no_cmdline:
                proc["command_line"] = spec.cmd
            verb = "STOPPED" if is_end else "STARTED"
            doc = {
                "@timestamp": ts,
                "event": {
                    "kind": "event",
                    "category": ecat,
                    "type": etype,
                    "action": "process_stopped" if is_end else "process_started",
                    "module": "system",
                    "dataset": "process",
                },
                "message": f"Process {spec.name} (PID: {pid}) by user {u['name']} {verb}",
                "process": proc,
                "user": {
                    "id": u["id"],
                    "name": u["name"],
                    "group": u["group"],
                    "effective": {"id": u["id"], "group": {"id": u["id"]}},
                },
                "service": {"type": "system"},
                "host": h["host"],
                "agent": h["auditbeat"],
                "ecs": h["ecs_beats"],
            }
            return doc, True
        # auditd EXECVE record
        seq = self._seq()
        title = " ".join(spec.args)
        proc = {
            "pid": pid,
            "parent": {"pid": ppid},
            "title": title[:128],
            "name": spec.name,
            "executable": spec.exe,
            "args": spec.args,
            "working_directory": "/home/" + u["name"],
        }
        if start and not no_cmdline and r.random() < 0.2:
            proc["command_line"] = spec.cmd
        if is_end:
            proc.pop("args")
        doc = {
            "@timestamp": ts,
            "auditd": {
                "data": {
                    "syscall": "execve",
                    "a0": f"{r.getrandbits(44):x}",
                    "a1": f"{r.getrandbits(44):x}",
                    "tty": r.choice(("pts0", "pts1", "(none)")),
                    "exit": "0",
                    "arch": "x86_64",
                },
                "message_type": "syscall",
                "sequence": seq,
                "result": "success",
                "session": str(r.randrange(1, 3000)),
                "summary": {
                    "actor": {"primary": u["name"], "secondary": u["name"]},
                    "object": {"type": "file", "primary": spec.exe},
                    "how": spec.exe,
                },
            },
            "event": {
                "kind": "event",
                "category": ecat,
                "type": etype,
                "action": "executed",
                "module": "auditd",
                "outcome": "success",
                "sequence": seq,
            },
            "process": proc,
            "user": {"id": u["id"], "name": u["name"], "audit": {"id": u["id"], "name": u["name"]}},
            "tags": ["execve"] if r.random() < 0.5 else ["execve", "exec"],
            "service": {"type": "auditd"},
            "host": h["host"],
            "agent": h["auditbeat"],
            "ecs": h["ecs_beats"],
        }
        return doc, True

    def _seq(self) -> int:
        self.seq += 1 + self.r.randrange(40)
        return self.seq

    def network_event(
        self,
        h: dict[str, Any],
        ts: str,
        spec: Spec | None,
        dip: Any,
        dport: int,
        daddr: Any = "same",
        ecat: Any = None,
        etype: Any = None,
        flavor: str | None = None,
        url_domain: str | None = None,
        transport: str = "tcp",
    ) -> tuple[dict[str, Any], bool]:
        r = self.r
        win = h["win"]
        if flavor is None:
            flavor = "endpoint" if (win or h["endpoint_linux"]) else "socket"
        if ecat is None:
            ecat = self.cat("network")
        if daddr == "same":
            daddr = dip
        sip = h["ip"]
        sport = r.randrange(32768, 61000)
        dest: dict[str, Any] = {}
        if daddr is not None:
            dest["address"] = daddr
        if dip is not None:
            dest["ip"] = dip
        dest["port"] = dport
        family = "ipv6" if isinstance(dip, str) and ":" in dip else "ipv4"
        if flavor == "endpoint":
            proc: dict[str, Any] = {"pid": r.randrange(300, 60000), "entity_id": self.entity_id()}
            if spec is not None:
                proc["name"] = spec.name
                proc["executable"] = spec.exe
            doc = {
                "@timestamp": ts,
                "agent": h["endpoint"],
                "process": proc,
                "destination": dest,
                "source": {"address": sip, "ip": sip, "port": sport},
                "message": "Endpoint network event",
                "network": {"direction": "egress", "type": family, "transport": transport},
                "event": {
                    "kind": "event",
                    "module": "endpoint",
                    "action": "connection_attempted",
                    "id": self.entity_id()[:20],
                    "category": ecat,
                    "type": etype if etype is not None else self.cat("start"),
                    "dataset": "endpoint.events.network",
                },
                "user": self.user_for(h),
                "host": h["host"],
                "ecs": h["ecs_endpoint"],
                "data_stream": {
                    "namespace": "default",
                    "type": "logs",
                    "dataset": "endpoint.events.network",
                },
            }
            if url_domain is not None:
                doc["url"] = {"domain": url_domain}
            return doc, False
        if flavor == "socket":
            u = self.user_for(h)
            sb, db = r.randrange(60, 90000), r.randrange(60, 4_000_000)
            sp, dp = max(1, sb // 700), max(1, db // 1200)
            proc = {"pid": r.randrange(300, 4_000_000), "created": ts}
            if spec is not None:
                proc["name"] = spec.name
                proc["executable"] = spec.exe
                proc["args"] = spec.args
            dest.update(bytes=db, packets=dp)
            doc = {
                "@timestamp": ts,
                "event": {
                    "kind": "event",
                    "category": ecat,
                    "type": etype if etype is not None else ["connection", "start"],
                    "action": "network_flow",
                    "module": "system",
                    "dataset": "socket",
                    "duration": r.randrange(10**6, 10**10),
                },
                "process": proc,
                "user": {"id": u["id"], "name": u["name"]},
                "source": {"ip": sip, "port": sport, "bytes": sb, "packets": sp},
                "destination": dest,
                "network": {
                    "direction": "egress",
                    "type": family,
                    "transport": transport,
                    "bytes": sb + db,
                    "packets": sp + dp,
                    "community_id": "1:"
                    + base64.b64encode(r.getrandbits(160).to_bytes(20, "big")).decode(),
                },
                "related": {
                    "ip": [sip] + ([dip] if isinstance(dip, str) else []),
                    "user": [u["name"]],
                },
                "service": {"type": "system"},
                "host": h["host"],
                "agent": h["auditbeat"],
                "ecs": h["ecs_beats"],
            }
            if url_domain is not None:
                doc["url"] = {"domain": url_domain}
            return doc, True
        # zeek via filebeat: conn or http
        sensor = self.sensor
        sb, db = r.randrange(60, 90000), r.randrange(60, 4_000_000)
        uid = "C" + base64.b64encode(r.getrandbits(102).to_bytes(13, "big")).decode()[:17]
        dest.update(bytes=db, packets=max(1, db // 1200))
        doc = {
            "@timestamp": ts,
            "zeek": {
                "session_id": uid,
                "connection": {
                    "state": "SF",
                    "history": "ShADadFf",
                    "local_orig": True,
                    "local_resp": False,
                    "missed_bytes": 0,
                },
            },
            "event": {
                "kind": "event",
                "category": ecat,
                "type": etype if etype is not None else ["connection"],
                "module": "zeek",
                "dataset": "zeek.connection",
                "duration": r.randrange(10**6, 10**10),
                "id": uid,
            },
            "source": {
                "address": sip,
                "ip": sip,
                "port": sport,
                "bytes": sb,
                "packets": max(1, sb // 700),
            },
            "destination": dest,
            "network": {
                "transport": transport,
                "protocol": "http" if url_domain else "ssl",
                "direction": "outbound",
                "bytes": sb + db,
            },
            **self._filebeat(sensor, "/opt/zeek/logs/current/conn.log", "connection", "zeek"),
        }
        if url_domain is not None:
            doc["event"]["dataset"] = "zeek.http"
            doc["fileset"]["name"] = "http"
            doc["log"]["file"]["path"] = "/opt/zeek/logs/current/http.log"
            doc["url"] = {"domain": url_domain, "original": "/" + self.filler["path"]}
            doc["http"] = {
                "request": {"method": "GET", "body": {"bytes": 0}},
                "response": {"status_code": 200, "body": {"bytes": db}},
                "version": "1.1",
            }
            doc["user_agent"] = {"original": r.choice(USER_AGENTS)}
        return doc, True

    def _offset(self) -> int:
        self.log_offset += self.r.randrange(90, 600)
        return self.log_offset

    def dns_event(
        self, h: dict[str, Any], ts: str, qname: str, resolver: str | None = None, ecat: Any = None
    ) -> tuple[dict[str, Any], bool]:
        r = self.r
        qtype = r.choice(("A", "A", "AAAA", "CNAME", "TXT")) if ecat is None else "A"
        ans_ip = r.choice(self.public_ips)
        if ecat is None:
            ecat = self.cat("network")
        if h["win"]:
            spec = r.choice(self.win_net_specs)
            doc = {
                "@timestamp": ts,
                "agent": h["endpoint"],
                "process": {
                    "pid": r.randrange(300, 60000),
                    "entity_id": self.entity_id(),
                    "name": spec.name,
                    "executable": spec.exe,
                },
                "dns": {"question": {"name": qname, "type": qtype}, "resolved_ip": [ans_ip]},
                "message": "Endpoint DNS event",
                "network": {"protocol": "dns"},
                "event": {
                    "kind": "event",
                    "module": "endpoint",
                    "action": "lookup_result",
                    "id": self.entity_id()[:20],
                    "category": ecat,
                    "type": ["protocol", "info"],
                    "dataset": "endpoint.events.network",
                },
                "user": self.user_for(h),
                "host": h["host"],
                "ecs": h["ecs_endpoint"],
                "data_stream": {
                    "namespace": "default",
                    "type": "logs",
                    "dataset": "endpoint.events.network",
                },
            }
            return doc, False
        sensor = self.sensor
        if resolver is None:
            resolver = r.choice(("10.0.0.2", "169.254.169.253", "10.96.0.10", "8.8.8.8", "1.1.1.1"))
        parts = qname.split(".")
        uid = "C" + base64.b64encode(r.getrandbits(102).to_bytes(13, "big")).decode()[:17]
        doc = {
            "@timestamp": ts,
            "zeek": {
                "session_id": uid,
                "dns": {"rcode": 0, "RD": True, "RA": True, "rejected": False},
            },
            "event": {
                "kind": "event",
                "category": ecat,
                "type": ["connection", "info", "protocol"],
                "module": "zeek",
                "dataset": "zeek.dns",
                "id": uid,
            },
            "dns": {
                "question": {
                    "name": qname,
                    "type": qtype,
                    "registered_domain": ".".join(parts[-2:]),
                },
                "resolved_ip": [ans_ip],
                "response_code": "NOERROR",
                "type": "answer",
                "id": r.randrange(65536),
            },
            "source": {"address": h["ip"], "ip": h["ip"], "port": r.randrange(32768, 61000)},
            "destination": {"address": resolver, "ip": resolver, "port": 53},
            "network": {"transport": "udp", "protocol": "dns", "direction": "outbound"},
            **self._filebeat(sensor, "/opt/zeek/logs/current/dns.log", "dns", "zeek"),
        }
        return doc, True

    def file_event(
        self,
        h: dict[str, Any],
        ts: str,
        path: str | None = None,
        spec: Spec | None = None,
        ecat: Any = None,
        etype: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        r = self.r
        win = h["win"]
        if path is None:
            f = self.filler
            if win:
                path = (
                    r.choice(
                        (
                            "C:\\Users\\{wuser}\\AppData\\Local\\Temp\\{hex8}.tmp",
                            "C:\\Users\\{wuser}\\Documents\\{wfile}",
                            "C:\\Users\\{wuser}\\Downloads\\{wfile}",
                            "C:\\Windows\\Prefetch\\{exeu}-{hex8u}.pf",
                            "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History"
                            "\\Service\\{hex8}.log",
                            "C:\\Windows\\Temp\\{word}-{ver}.msi",
                        )
                    )
                    .replace("{hex8}", f"{r.getrandbits(32):08x}")
                    .replace("{hex8u}", f"{r.getrandbits(32):08X}")
                    .replace(
                        "{exeu}",
                        r.choice(("CMD.EXE", "POWERSHELL.EXE", "CHROME.EXE", "SVCHOST.EXE")),
                    )
                    .format_map(f)
                )
            else:
                path = (
                    r.choice(
                        (
                            "/var/log/{svc}/{word}.log",
                            "/etc/{svc}/{svc}.conf",
                            "/home/{user}/.bash_history",
                            "/tmp/tmp{hex8}",
                            "/srv/{app}/releases/{date}/app.tar.gz",
                            "/var/lib/dpkg/info/{deb}.list",
                            "/etc/passwd",
                            "/etc/shadow",
                            "/root/.ssh/authorized_keys",
                            "/usr/local/bin/{word}-healthcheck.sh",
                        )
                    )
                    .replace("{hex8}", f"{r.getrandbits(32):08x}")
                    .format_map(f)
                )
        sep = "\\" if win else "/"
        fname = path.rsplit(sep, 1)[-1]
        ext = fname.rsplit(".", 1)[-1] if "." in fname else None
        if ecat is None:
            ecat = self.cat("file")
        kind = r.randrange(3)
        if etype is None:
            etype = self.cat(("creation", "change", "deletion")[kind])
        fobj: dict[str, Any] = {"path": path, "name": fname}
        if ext:
            fobj["extension"] = ext
        if win or h["endpoint_linux"]:
            if spec is None:
                spec = r.choice(self.win_specs if win else self.linux_specs)
            fobj["Ext"] = {"header_bytes": f"{r.getrandbits(128):032x}"} if kind == 0 else {}
            fobj["size"] = r.randrange(0, 5_000_000)
            doc = {
                "@timestamp": ts,
                "agent": h["endpoint"],
                "process": {
                    "pid": r.randrange(300, 60000),
                    "entity_id": self.entity_id(),
                    "name": spec.name,
                    "executable": spec.exe,
                },
                "file": fobj,
                "message": "Endpoint file event",
                "event": {
                    "kind": "event",
                    "module": "endpoint",
                    "action": ("creation", "modification", "deletion")[kind],
                    "id": self.entity_id()[:20],
                    "category": ecat,
                    "type": etype,
                    "dataset": "endpoint.events.file",
                },
                "user": self.user_for(h),
                "host": h["host"],
                "ecs": h["ecs_endpoint"],
                "data_stream": {
                    "namespace": "default",
                    "type": "logs",
                    "dataset": "endpoint.events.file",
                },
            }
            return doc, False
        u = self.user_for(h)
        fobj.update(
            inode=str(r.randrange(10**5, 10**8)),
            uid=u["id"],
            gid=u["id"],
            owner=u["name"],
            group=u["name"],
            mode=r.choice(("0644", "0600", "0755", "0640")),
            size=r.randrange(0, 5_000_000),
            mtime=ts,
            ctime=ts,
            type="file",
        )
        if kind != 2:
            fobj["hash"] = {
                "sha1": f"{r.getrandbits(160):040x}",
                "sha256": f"{r.getrandbits(256):064x}",
            }
        doc = {
            "@timestamp": ts,
            "event": {
                "kind": "event",
                "category": ecat,
                "type": etype,
                "action": [("created", "updated", "deleted")[kind]],
                "module": "file_integrity",
                "dataset": "file",
            },
            "file": fobj,
            "service": {"type": "file_integrity"},
            "host": h["host"],
            "agent": h["auditbeat"],
            "ecs": h["ecs_beats"],
        }
        return doc, True

    def auth_event(self, h: dict[str, Any], ts: str) -> tuple[dict[str, Any], bool]:
        r = self.r
        ok = r.random() < 0.7
        src = r.choice(self.public_ips) if r.random() < 0.5 else self.private_ip()
        if h["win"]:
            user = r.choice(h["users"])
            doc = {
                "@timestamp": ts,
                "agent": h["endpoint"],
                "process": {
                    "pid": r.randrange(500, 900),
                    "name": "lsass.exe",
                    "executable": "C:\\Windows\\System32\\lsass.exe",
                    "entity_id": self.entity_id(),
                },
                "source": {"ip": src},
                "message": "Endpoint security event",
                "event": {
                    "kind": "event",
                    "module": "endpoint",
                    "action": "log_on",
                    "id": self.entity_id()[:20],
                    "category": ["authentication", "session"],
                    "type": self.cat("start"),
                    "outcome": "success" if ok else "failure",
                    "dataset": "endpoint.events.security",
                },
                "user": {"name": user, "domain": "CORP"},
                "host": h["host"],
                "ecs": h["ecs_endpoint"],
                "data_stream": {
                    "namespace": "default",
                    "type": "logs",
                    "dataset": "endpoint.events.security",
                },
            }
            return doc, False
        user = (
            r.choice(h["users"])
            if ok
            else r.choice(("admin", "test", "oracle", "ubuntu", "root", "git", "pi"))
        )
        port = r.randrange(1024, 65535)
        method = r.choice(("publickey", "password"))
        fp = base64.b64encode(r.getrandbits(256).to_bytes(32, "big")).decode().rstrip("=")
        if ok:
            msg = f"Accepted {method} for {user} from {src} port {port} ssh2" + (
                f": ED25519 SHA256:{fp}" if method == "publickey" else ""
            )
        else:
            msg = f"Failed password for invalid user {user} from {src} port {port} ssh2"
        doc = {
            "@timestamp": ts,
            "event": {
                "kind": "event",
                "category": self.cat("authentication"),
                "type": self.cat("info"),
                "action": "ssh_login",
                "outcome": "success" if ok else "failure",
                "module": "system",
                "dataset": "system.auth",
                "timezone": "+00:00",
            },
            "message": msg,
            "system": {
                "auth": {"ssh": {"method": method, "event": "Accepted" if ok else "Failed"}}
            },
            "user": {"name": user},
            "source": {"ip": src, "port": port},
            "process": {"name": "sshd", "pid": r.randrange(300, 4_000_000)},
            "related": {"user": [user], "ip": [src]},
            **self._filebeat(h, "/var/log/auth.log", "auth", "system"),
        }
        return doc, True

    def web_event(
        self, h: dict[str, Any], ts: str, target: str | None = None, domain: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        r = self.r
        src = r.choice(self.public_ips)
        if target is None:
            target = (
                r.choice(
                    (
                        "/",
                        "/index.html",
                        "/api/v1/orders/{n}",
                        "/api/v2/{word}?page={n}&limit=50",
                        "/static/js/app.{hex8}.js",
                        "/login?next=/{word}",
                        "/healthz",
                        "/search?q={word}&sort=desc",
                        "/wp-login.php",
                        "/.env",
                        "/images/{word}.png",
                    )
                )
                .replace("{hex8}", f"{r.getrandbits(32):08x}")
                .format_map(self.filler)
            )
        status = r.choice((200, 200, 200, 304, 404, 301, 500, 403))
        nbytes = r.randrange(0, 90000)
        ua = r.choice(USER_AGENTS)
        method = "POST" if r.random() < 0.15 else "GET"
        path, _, query = target.partition("?")
        url: dict[str, Any] = {"original": target, "path": path}
        if query:
            url["query"] = query
        if domain is not None:
            url["domain"] = domain
        doc = {
            "@timestamp": ts,
            "event": {
                "kind": "event",
                "category": self.cat("web"),
                "type": self.cat("access"),
                "module": "nginx",
                "dataset": "nginx.access",
                "created": ts,
                "outcome": "success" if status < 400 else "failure",
            },
            "message": f'{src} - - [{self._clf}] "{method} {target} HTTP/1.1" '
            f'{status} {nbytes} "-" "{ua}"',
            "source": {"address": src, "ip": src},
            "url": url,
            "http": {
                "request": {"method": method},
                "response": {"status_code": status, "body": {"bytes": nbytes}},
                "version": "1.1",
            },
            "user_agent": {"original": ua},
            "related": {"ip": [src]},
            **self._filebeat(h, "/var/log/nginx/access.log", "access", "nginx"),
        }
        return doc, True

    # ---------------------------------------------------------------- benign mix
    def benign(self) -> tuple[dict[str, Any], bool]:
        r = self.r
        ts = self.tick()
        u = r.random()
        if u < 0.40:
            h = r.choice(self.hosts)
            spec = r.choice(self.win_specs if h["win"] else self.linux_specs)
            return self.process_event(h, ts, spec)
        if u < 0.64:
            h = r.choice(self.hosts)
            spec = r.choice(self.win_net_specs) if h["win"] else r.choice(self.linux_net_specs)
            k = r.random()
            if k < 0.55:
                dip, dport = r.choice(self.public_ips), r.choice((443, 443, 443, 80, 8443))
            elif k < 0.9:
                dip, dport = (
                    self.private_ip(),
                    r.choice((5432, 6379, 9200, 8220, 22, 389, 88, 445, 3306, 5044)),
                )
            elif k < 0.95:
                # chrony talking to the Amazon Time Sync Service: link-local, but not IMDS
                dip, dport = "169.254.169.123", 123
                spec = self.linux_spec_from("/usr/sbin/chronyd -F 1") if not h["win"] else spec
            else:
                dip, dport = (
                    f"169.254.{r.randrange(0, 169)}.{r.randrange(1, 255)}",
                    r.choice((80, 443, 5353)),
                )
            if not h["win"] and r.random() < 0.2:
                return self.network_event(
                    h,
                    ts,
                    None,
                    dip,
                    dport,
                    flavor="zeek",
                    url_domain=r.choice(DOMAINS) if r.random() < 0.5 else None,
                )
            return self.network_event(
                h, ts, spec, dip, dport, transport="udp" if dport == 123 else "tcp"
            )
        if u < 0.74:
            h = r.choice(self.hosts)
            name = (
                r.choice(DOMAINS)
                if r.random() < 0.8
                else (f"{r.choice(WORDS[:20])}.{r.choice(NETWORK_WORDS)}")
            )
            return self.dns_event(h, ts, name)
        if u < 0.87:
            return self.file_event(r.choice(self.hosts), ts)
        if u < 0.95:
            return self.auth_event(r.choice(self.hosts), ts)
        return self.web_event(r.choice(self.web_hosts), ts)

    def dot_mix(self, doc: dict[str, Any], forced: tuple[str, ...] = ()) -> dict[str, Any]:
        """Rewrite some objects as dotted keys: {"process.name": ..},
        {"process": {"parent.name": ..}}, {"process.parent": {..}}, .."""
        r = self.r
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if type(v) is dict and v and (k in forced or r.random() < 0.4):
                mode = r.randrange(3)
                if mode == 0:
                    flatten_into(out, k, v)
                elif mode == 1:
                    inner: dict[str, Any] = {}
                    for ck, cv in v.items():
                        if type(cv) is dict and cv:
                            flatten_into(inner, ck, cv)
                        else:
                            inner[ck] = cv
                    out[k] = inner
                else:
                    rest: dict[str, Any] = {}
                    for ck, cv in v.items():
                        if r.random() < 0.5:
                            out[k + "." + ck] = cv
                        else:
                            rest[ck] = cv
                    if rest:
                        out[k] = rest
            else:
                out[k] = v
        return out
