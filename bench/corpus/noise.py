"""Noise (``--noise-rate``): lines that carry the seed rule's literals without matching it, as
real cloud fleets log them: the providers' agents polling the metadata service (the network
branch excludes them by name), Windows DNS lookups of metadata.google.internal (no field the
rule reads holds it), and process-end events of health checks that curl the metadata service
(the process branch wants a start). One nz_* method per variant."""

from __future__ import annotations

from typing import Any

from .planted import Planted
from .seed_rule import engine_rule

# The network branch's excluded names, as each agent logs itself (exact case, full path).
_AGENT_EXE = {
    "amazon-ssm-agent": "/usr/bin/amazon-ssm-agent",
    "google_guest_agent": "/usr/bin/google_guest_agent",
    "waagent": "/usr/sbin/waagent",
    "cloud-init": "/usr/bin/cloud-init",
    "aws-cfn-bootstrap": "/opt/aws/bin/aws-cfn-bootstrap",
    "WindowsAzureGuestAgent.exe": "C:\\WindowsAzure\\GuestAgent_2.7.41491.1102_2023-06-29_"
    "181545\\WindowsAzureGuestAgent.exe",
    "WaAppAgent.exe": "C:\\WindowsAzure\\Packages\\WaAppAgent.exe",
    "AzureGuestAgent.exe": "C:\\WindowsAzure\\GuestAgent\\AzureGuestAgent.exe",
}
NET_EXCLUDED = engine_rule().excluded("network")
# auditd's `comm` keeps 15 bytes: a longer name is truncated there and no longer excluded
# (a true positive, see positives.py), so the socket dataset only logs the short names.
_COMM_MAX = 15

# Weights of the variants: the agents' connections dominate on real fleets.
NOISE_WEIGHTS = {"agent_connection": 6, "gce_dns_lookup": 2, "health_check_end": 2}


class Noise(Planted):
    def nz_agent_connection(self) -> tuple[dict[str, Any], bool]:
        """An excluded agent's connection to 169.254.169.254 (Azure, AWS, GCP all poll it)."""
        r = self.r
        name = r.choice(NET_EXCLUDED)
        exe = _AGENT_EXE.get(name, "/usr/bin/" + name)
        win = name.endswith(".exe")
        h = self._whost() if win else self._lhost()
        spec = self.win_spec_from(exe, name) if win else self.linux_spec_from(exe, name)
        flavor = "endpoint"
        if not win and len(name) <= _COMM_MAX and r.random() < 0.4:
            flavor = "socket"
        daddr = "same" if r.random() < 0.85 else None
        etype = r.choice((None, ["end"], ["connection", "end"])) if flavor == "socket" else None
        doc, go = self.network_event(
            h,
            self.tick(),
            spec,
            "169.254.169.254",
            80,
            daddr=daddr,
            etype=etype,
            flavor=flavor,
        )
        if r.random() < 0.3 and flavor == "endpoint":
            doc["event"]["action"] = "disconnect_received"
            doc["event"]["type"] = self.cat("end")
        return doc, go

    def nz_gce_dns_lookup(self) -> tuple[dict[str, Any], bool]:
        """Elastic Defend on a GCE Windows VM: the guest agent resolving the metadata server."""
        r = self.r
        doc, go = self.dns_event(self._whost(), self.tick(), "metadata.google.internal")
        name = r.choice(("GCEWindowsAgent.exe", "GCEMetadataScripts.exe", "svchost.exe"))
        folder = "C:\\Program Files\\Google\\Compute Engine\\agent"
        if name == "svchost.exe":
            folder = "C:\\Windows\\System32"
        doc["process"]["name"] = name
        doc["process"]["executable"] = f"{folder}\\{name}"
        return doc, go

    def nz_health_check_end(self) -> tuple[dict[str, Any], bool]:
        """The end of a process that read the metadata service (its start is the hit)."""
        r = self.r
        spec, _cmd = self._imds_spec(win=r.random() < 0.3)
        return self.process_event(
            self._whost() if spec.win else self._lhost(),
            self.tick(),
            spec,
            etype=self.cat("end"),
            flavor="endpoint",
        )
