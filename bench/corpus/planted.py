"""Helpers shared by the planted lines (true positives and near misses): hosts, a command
line that reaches the metadata service, and the network and process events they plant."""

from __future__ import annotations

from typing import Any

from .benign import BenignEvents
from .vocabulary import Spec


class Planted(BenignEvents):
    def _lhost(self) -> dict[str, Any]:
        return self.r.choice(self.linux_hosts)

    def _whost(self) -> dict[str, Any]:
        return self.r.choice(self.win_hosts)

    def _role(self) -> str:
        return self.r.choice(
            ("ec2-app-role", "prod-web-instance", "eks-node-role", "ci-runner", "s3-reader")
        )

    def _imds_spec(self, win: bool = False) -> tuple[Spec, str]:
        """A command line that reaches the metadata service (matches the process branch)."""
        r = self.r
        if win:
            cmd = r.choice(
                (
                    'powershell.exe -NoProfile -Command "Invoke-RestMethod '
                    "-Headers @{Metadata='true'} -Method GET "
                    "-Uri http://169.254.169.254/metadata/instance?api-version=2021-02-01 "
                    '| ConvertTo-Json -Depth 64"',
                    'powershell.exe -c "(Invoke-WebRequest -UseBasicParsing '
                    "-Uri http://169.254.169.254/metadata/identity/oauth2/token"
                    "?api-version=2018-02-01&resource=https://management.azure.com/ "
                    '-Headers @{Metadata=1}).Content"',
                    'C:\\Windows\\system32\\cmd.exe /c "curl.exe -s -H Metadata:true '
                    "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01 "
                    '> %TEMP%\\c.json"',
                )
            )
            return self.win_spec_from(cmd), cmd
        cmd = r.choice(
            (
                f"curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/{self._role()}",
                'curl -sH "Metadata-Flavor: Google" http://metadata.google.internal/computeMetadata/v1/instance/'
                "service-accounts/default/token",
                "wget -qO- http://169.254.169.254/latest/user-data",
                "python3 -c \"import urllib.request as u; print(u.urlopen('http://169.254.169.254/latest/dynamic/"
                "instance-identity/document').read())\"",
                'curl -s -H Metadata:true --noproxy "*" "http://169.254.169.254/metadata/instance?api-version=2021-02-01"',
            )
        )
        return self.linux_spec_from(cmd), cmd

    def _imds_start(self) -> tuple[dict[str, Any], bool]:
        """An Elastic Defend process start of a command that reaches the metadata service
        (Windows 30% of the time)."""
        spec, _cmd = self._imds_spec(win=self.r.random() < 0.3)
        return self.process_event(
            self._whost() if spec.win else self._lhost(),
            self.tick(),
            spec,
            etype=self.cat("start"),
            flavor="endpoint",
        )

    def _net_tp(
        self,
        dip: Any,
        daddr: Any = "same",
        name: str | None = None,
        win: bool | None = None,
        **kw: Any,
    ) -> tuple[dict[str, Any], bool]:
        r = self.r
        if win is None:
            win = name is not None and name.endswith(".exe")
        h = self._whost() if win else self._lhost()
        spec = None
        if name is not None:
            spec = self.win_spec_from(name) if win else self.linux_spec_from(name)
        flavor = kw.pop("flavor", None)
        if flavor is None and not win:
            flavor = r.choice(("endpoint", "socket"))
        return self.network_event(
            h, self.tick(), spec, dip, kw.pop("dport", 80), daddr=daddr, flavor=flavor, **kw
        )

    def _proc_tp(
        self, cmd: str, win: bool = False, name: str | None = None, **kw: Any
    ) -> tuple[dict[str, Any], bool]:
        h = self._whost() if win else self._lhost()
        spec = self.win_spec_from(cmd, name) if win else self.linux_spec_from(cmd, name)
        if "etype" not in kw:
            kw["etype"] = self.cat("start")
        if "flavor" not in kw and not win:
            kw["flavor"] = self.r.choice(("endpoint", "system", "auditd"))
            if kw["flavor"] != "endpoint" and "no_cmdline" not in kw:
                # Beats only sometimes carry command_line: make sure this one does
                doc, go = self.process_event(h, self.tick(), spec, **kw)
                doc["process"]["command_line"] = spec.cmd
                return doc, go
        return self.process_event(h, self.tick(), spec, **kw)
