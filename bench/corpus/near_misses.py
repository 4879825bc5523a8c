"""Planted near misses: one nm_* method per variant, each an event close to the seed rule
that must not match it."""

from __future__ import annotations

from typing import Any

from .planted import Planted
from .seed_rule import engine_rule
from .text import random_case

# The process names the seed rule excludes, per branch (the process branch omits two
# Windows agents): each is planted in any case as a near miss.
NET_EXCLUDED = engine_rule().excluded("network")
PROC_EXCLUDED = engine_rule().excluded("process")


class NearMisses(Planted):
    def _proc_nm(self, cmd: str, win: bool = False, name: str | None = None, **kw: Any):
        return self._proc_tp(cmd, win, name, **kw)

    def nm_net_excluded_name(self):
        r = self.r
        name = r.choice(NET_EXCLUDED)
        win = name.endswith(".exe")
        spec_cmd = ("C:\\WindowsAzure\\Packages\\" + name) if win else ("/usr/bin/" + name)
        doc, go = self._net_tp("169.254.169.254", name=spec_cmd, win=win)
        doc["process"]["name"] = random_case(r, name)
        return doc, {"go": go}

    def nm_net_excluded_in_array(self):
        r = self.r
        names = [
            "curl",
            random_case(
                r, r.choice(("waagent", "cloud-init", "amazon-ssm-agent", "google_guest_agent"))
            ),
        ]
        r.shuffle(names)
        doc, go = self._net_tp("169.254.169.254", name="curl", flavor="endpoint")
        doc["process"]["name"] = names
        return doc, {"go": go}

    def nm_net_excluded_dotted_and_nested(self):
        r = self.r
        doc, go = self._net_tp("169.254.169.254", name="curl", flavor="endpoint")
        doc["process.name"] = random_case(
            r, r.choice(("amazon-ssm-agent", "cloud-init", "waagent"))
        )
        return doc, {"go": go, "dot": False}

    def nm_proc_excluded_name(self):
        r = self.r
        name = r.choice(PROC_EXCLUDED)
        spec, _cmd = self._imds_spec(win=name.endswith(".exe"))
        h = self._whost() if spec.win else self._lhost()
        spec.name = random_case(r, name)
        doc, go = self.process_event(
            h, self.tick(), spec, etype=self.cat("start"), flavor="endpoint"
        )
        return doc, {"go": go}

    def nm_aws_dns_ntp(self):
        r = self.r
        if r.random() < 0.5:
            doc, go = self._net_tp("169.254.169.123", name="chronyd", dport=123, transport="udp")
        else:
            h = self._lhost()
            doc, go = self.dns_event(
                h, self.tick(), "metadata.google.internal", resolver="169.254.169.253"
            )
        return doc, {"go": go}

    def nm_ipv6_address_case(self):
        addr = self.r.choice(("FD00:EC2::254", "fd00:ec2:0:0:0:0:0:254", "Fd00:Ec2::254"))
        doc, go = self._net_tp(addr, name="curl")
        return doc, {"go": go}

    def nm_url_domain_case(self):
        dom = self.r.choice(
            ("Metadata.Google.Internal", "METADATA.GOOGLE.INTERNAL", "metadata.google.internal.")
        )
        doc, go = self._net_tp(
            self.private_ip(), win=False, flavor="zeek", dport=3128, url_domain=dom
        )
        return doc, {"go": go}

    def nm_bad_ip_spellings(self):
        ip = self.r.choice(
            (
                "::169.254.169.254",
                "64:ff9b::a9fe:a9fe",
                "169.254.169.054",
                "::ffff:169.254.169.054",
                "169.254.169.254 ",
                "169.254.169.254:80",
                "[::ffff:a9fe:a9fe]",
                "169.254.169.254/32",
                "::ffff:a9fe:a9fe:0",
            )
        )
        doc, go = self._net_tp(ip, name="curl")
        return doc, {"go": go}

    def nm_proc_not_start(self):
        r = self.r
        spec, _cmd = self._imds_spec(win=r.random() < 0.3)
        etype = r.choice(("Start", "START", ["end"], "end", ["info"], ["change"], ["Start"]))
        doc, go = self.process_event(
            self._whost() if spec.win else self._lhost(),
            self.tick(),
            spec,
            etype=etype,
            flavor="endpoint",
        )
        return doc, {"go": go}

    def nm_category_case(self):
        r = self.r
        if r.random() < 0.5:
            spec, _cmd = self._imds_spec()
            doc, go = self.process_event(
                self._lhost(), self.tick(), spec, etype=["start"], flavor="endpoint"
            )
            doc["event"]["category"] = r.choice(
                ("Process", ["PROCESS"], ["host"], None, [], [None])
            )
        else:
            doc, go = self._net_tp("169.254.169.254", name="curl")
            doc["event"]["category"] = r.choice(
                ("Network", ["host"], None, [None], ["network_traffic"])
            )
        return doc, {"go": go}

    def nm_unread_fields(self):
        r = self.r
        h = self._lhost()
        imds_spec, imds_cmd = self._imds_spec()
        spec = r.choice(self.linux_specs)
        where = r.randrange(5)
        if where == 0:  # the parent ran the curl; the child is harmless
            doc, go = self.process_event(
                h,
                self.tick(),
                self.linux_spec_from("sleep 1"),
                etype=["start"],
                parent=imds_spec,
                flavor="endpoint",
            )
        elif where == 1:
            doc, go = self.process_event(h, self.tick(), spec, etype=["start"], flavor="endpoint")
            doc["message"] = "suspicious: " + imds_cmd
        elif where == 2:
            doc, go = self.process_event(h, self.tick(), spec, etype=["start"], flavor="endpoint")
            doc["file"] = {
                "path": "/tmp/169.254.169.254/latest/meta-data/iam/security-credentials/role"
            }
        elif where == 3:
            doc, go = self.process_event(h, self.tick(), spec, etype=["start"], flavor="auditd")
            doc["process"].pop("command_line", None)
            doc["process"]["args"] = ["bash", "/opt/scripts/collect.sh"]
            doc["process"]["title"] = imds_cmd
        else:
            doc, go = self.process_event(h, self.tick(), spec, etype=["start"], flavor="endpoint")
            doc["process"]["env_vars"] = [
                "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://169.254.169.254/"
            ]
            doc["process"]["parent"]["args"] = imds_spec.args
        return doc, {"go": go}

    def nm_split_args(self):
        r = self.r
        args = r.choice(
            (
                ["curl", "http://169.254.", "169.254/latest/meta-data/"],
                ["curl", "-s", "169.254", ".169.254"],
                ["wget", "http://169.254.169.", "254/"],
            )
        )
        doc, go = self._proc_nm(" ".join(args), flavor="auditd", no_cmdline=True)
        doc["process"]["args"] = args
        doc["process"].pop("command_line", None)
        doc["process"].pop("title", None)
        return doc, {"go": go}

    def nm_args_only_cmdline_patterns(self):
        cmd = self.r.choice(
            (
                "curl -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/project/project-id",
                "curl http://instance-data/latest/meta-data/iam/security-credentials/",
            )
        )
        doc, go = self._proc_nm(cmd, flavor="auditd", no_cmdline=True)
        doc["process"].pop("command_line", None)
        doc["process"].pop("title", None)
        return doc, {"go": go}

    def nm_unicode_lookalike(self):
        cmd = self.r.choice(
            (
                "curl http://instance-data/latest/meta\u2010data/\u0131am/\u017fecurity-credentials/",
                "curl http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/",
                "curl http://169\u2024254\u2024169\u2024254/",
                "curl -H Metadata-Flavor:Google http://metadata.google.\u0131nternal/compute\u041cetadata/",
                "curl http://10.0.0.7/metadata/\u0131nstance?api-version=2021-02-01",
                "cat /run/cloud/in\u017ftance-identity.json",
            )
        )
        doc, go = self._proc_nm(cmd)
        return doc, {"go": go}

    def nm_ssrf_web(self):
        r = self.r
        target = r.choice(
            (
                "/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "/proxy?u=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F",
                "/render?src=http://metadata.google.internal/computeMetadata/v1/instance/",
            )
        )
        doc, go = self.web_event(
            r.choice(self.web_hosts),
            self.tick(),
            target=target,
            domain=r.choice(("metadata.google.internal", "shop.example.com")),
        )
        return doc, {"go": go}

    def nm_source_ip(self):
        r = self.r
        h = self._lhost()
        doc, go = self.network_event(
            h,
            self.tick(),
            self.linux_spec_from("curl -s http://example.com/"),
            h["ip"],
            r.randrange(32768, 61000),
            flavor="endpoint",
        )
        doc["source"] = {"address": "169.254.169.254", "ip": "169.254.169.254", "port": 80}
        doc["destination.domain"] = "metadata.google.internal"
        doc["related"] = {"ip": ["169.254.169.254", h["ip"]]}
        return doc, {"go": go, "dot": False}

    def nm_dup_key_first(self):
        doc, go = self._net_tp("169.254.169.254", name="curl")
        ip = self.private_ip()
        return doc, {
            "go": go,
            "dot": False,
            "dup": f',"destination":{{"address":"{ip}","ip":"{ip}","port":443}}',
        }

    def nm_azure_dns_and_exports(self):
        # Azure DNS (168.63.129.16:53, not the metadata address), and a Windows 5156 event as
        # Log Analytics exports it: the address is there, in fields no ECS rule reads.
        r = self.r
        if r.random() < 0.5:
            doc, go = self._net_tp(
                "168.63.129.16",
                name="C:\\Windows\\System32\\svchost.exe",
                dport=53,
                transport="udp",
                win=True,
            )
            return doc, {"go": go}
        doc = {
            "TimeGenerated": self.tick(),
            "Computer": f"vm-web-{r.randrange(1, 20)}",
            "EventID": 5156,
            "Activity": "5156 - The Windows Filtering Platform has permitted a connection.",
            "Application": "\\device\\harddiskvolume2\\windows\\system32\\curl.exe",
            "DestAddress": "169.254.169.254",
            "DestPort": "80",
            "Protocol": "6",
        }
        return doc, {"go": False}

    def nm_other_metadata_endpoints(self):
        r = self.r
        if r.random() < 0.5:
            ip = r.choice(
                (
                    "169.254.170.2",
                    "169.254.169.252",
                    "100.100.100.200",
                    "fd00:ec2::253",
                    "169.254.169.255",
                )
            )
            doc, go = self._net_tp(ip, name="curl")
        else:
            cmd = r.choice(
                (
                    "curl -s http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "curl http://100.100.100.200/latest/meta_data/ram/security_credentials/",
                    "curl -s -H Metadata-Flavor:Google http://169.254.169.252:988/",
                )
            )
            doc, go = self._proc_nm(cmd)
        return doc, {"go": go}
