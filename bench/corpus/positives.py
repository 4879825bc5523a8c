"""Planted true positives: one tp_* method per variant, each an event the seed rule matches
(counted in expected.json by branch and variant)."""

from __future__ import annotations

from .planted import Planted


class Positives(Planted):
    # Each tp_* returns (doc or raw line, branch, options). options: go (Beats encoder),
    # dot (dotted-key rewrite allowed), hide / slash (force a raw-text escape rewrite),
    # dup (raw JSON member appended after the object: a repeated key).

    def tp_net_ipv4(self):
        name = self.r.choice(("curl", "python3", "wget", "bash", "powershell.exe", "node", "java"))
        doc, go = self._net_tp("169.254.169.254", name=name)
        return doc, "network", {"go": go}

    def tp_net_mapped_dotted(self):
        doc, go = self._net_tp("::ffff:169.254.169.254", name=self.r.choice(("python3", "curl")))
        return doc, "network", {"go": go}

    def tp_net_mapped_hex(self):
        ip = self.r.choice(("::FFFF:a9fe:a9fe", "::ffff:a9fe:a9fe", "::ffff:A9FE:A9FE"))
        doc, go = self._net_tp(ip, name="wget")
        return doc, "network", {"go": go}

    def tp_net_mapped_long(self):
        ip = self.r.choice(
            (
                "0:0:0:0:0:ffff:a9fe:a9fe",
                "0000:0000:0000:0000:0000:FFFF:A9FE:A9FE",
                "0:0:0:0:0:ffff:169.254.169.254",
                "::0:ffff:a9fe:a9fe",
            )
        )
        doc, go = self._net_tp(ip, name="bash")
        return doc, "network", {"go": go}

    def tp_net_ip_array(self):
        doc, go = self._net_tp(
            [self.private_ip(), "::ffff:a9fe:a9fe"],
            daddr=None,
            name="curl",
            ecat=["host", "network"],
        )
        return doc, "network", {"go": go}

    def tp_net_address_only(self):
        doc, go = self._net_tp(None, daddr="169.254.169.254", name="powershell.exe")
        return doc, "network", {"go": go}

    def tp_net_ipv6_imds(self):
        doc, go = self._net_tp("fd00:ec2::254", name=self.r.choice(("curl", "python3")))
        return doc, "network", {"go": go}

    def tp_net_url_domain(self):
        # an HTTP proxy / sensor sees the Host header; destination is the proxy, no process at all
        doc, go = self._net_tp(
            self.private_ip(),
            win=False,
            flavor="zeek",
            dport=3128,
            url_domain="metadata.google.internal",
        )
        return doc, "network", {"go": go}

    def tp_net_no_process_name(self):
        doc, go = self._net_tp("169.254.169.254", name="curl", flavor="endpoint")
        how = self.r.randrange(4)
        if how == 0:
            doc["process"]["name"] = None
        elif how == 1:
            doc["process"]["name"] = []
        elif how == 2:
            doc["process"]["name"] = [None]
        else:
            del doc["process"]["name"]
        return doc, "network", {"go": go}

    def tp_net_cloud_agent(self):
        # The providers' own agents the rule does not exclude, as real fleets log them: Winlogbeat
        # 5156 (device paths), and auditd's comm cut to 15 bytes. Hits by the rule's semantics;
        # `--preset cloud-agents` drops them.
        r = self.r
        name, path = r.choice(
            (
                (
                    "NetworkWatcherAgent.exe",
                    "\\device\\harddiskvolume2\\packages\\plugins\\microsoft.azure."
                    "networkwatcher.networkwatcheragentwindows\\1.4.1974.1\\"
                    "networkwatcheragent\\networkwatcheragent.exe",
                ),
                ("Ec2Config.exe", "C:\\Program Files\\Amazon\\Ec2ConfigService\\Ec2Config.exe"),
                ("winhup.exe", "C:\\Program Files\\Amazon\\cfn-bootstrap\\winhup.exe"),
                ("amazon-ssm-agen", "/usr/bin/amazon-ssm-agent"),
                ("google_guest_ag", "/usr/bin/google_guest_agent"),
            )
        )
        win = name.endswith(".exe")
        doc, go = self._net_tp(
            "169.254.169.254", name=name, win=win, flavor=None if win else "socket"
        )
        doc["process"]["name"] = name
        doc["process"]["executable"] = path
        return doc, "network", {"go": go}

    def tp_net_scoped(self):
        ip = self.r.choice(("::ffff:169.254.169.254%eth0", "::ffff:a9fe:a9fe%2"))
        doc, go = self._net_tp(ip, name="python3")
        return doc, "network", {"go": go}

    def tp_net_both_branches(self):
        # category network + process, a start with an IMDS command line: first branch (network) wins
        r = self.r
        h = self._lhost()
        spec, _ = self._imds_spec()
        doc, go = self.process_event(
            h,
            self.tick(),
            spec,
            etype=["start", "connection"],
            ecat=["network", "process"],
            flavor="endpoint",
        )
        doc["destination"] = {"address": "169.254.169.254", "ip": "169.254.169.254", "port": 80}
        doc["source"] = {"ip": h["ip"], "port": r.randrange(32768, 61000)}
        return doc, "network", {"go": go}

    def tp_net_excluded_but_process(self):
        # WaAppAgent.exe is excluded from the network branch only: the process branch matches
        h = self._whost()
        spec, _ = self._imds_spec(win=True)
        spec.name = "WaAppAgent.exe"
        spec.exe = "C:\\WindowsAzure\\Packages\\WaAppAgent.exe"
        doc, go = self.process_event(
            h, self.tick(), spec, etype=["start"], ecat=["process", "network"], flavor="endpoint"
        )
        doc["destination"] = {"address": "169.254.169.254", "ip": "169.254.169.254", "port": 80}
        return doc, "process", {"go": go}

    def tp_net_dup_key_last(self):
        # a repeated "destination" key: the last value is the one that counts
        doc, go = self._net_tp(
            f"10.0.{self.r.randrange(256)}.{self.r.randrange(1, 255)}", name="curl"
        )
        return (
            doc,
            "network",
            {
                "go": go,
                "dot": False,
                "dup": ',"destination":{"address":"169.254.169.254",'
                '"ip":"169.254.169.254","port":80}',
            },
        )

    def tp_net_hidden(self):
        ip = self.r.choice(("169.254.169.254", "::ffff:a9fe:a9fe", "::ffff:169.254.169.254"))
        doc, go = self._net_tp(ip, name="python3")
        return doc, "network", {"go": go, "hide": True}

    def tp_proc_aws_creds(self):
        r = self.r
        cmd = r.choice(
            (
                f"curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/{self._role()}",
                'curl -s -H "X-aws-ec2-metadata-token: $(curl -s -X PUT '
                "http://169.254.169.254/latest/api/token "
                "-H 'X-aws-ec2-metadata-token-ttl-seconds: 21600')\" "
                f"http://169.254.169.254/latest/meta-data/iam/security-credentials/{self._role()}",
                "bash -c 'curl -s "
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/ "
                "> /tmp/.c && cat /tmp/.c'",
            )
        )
        doc, go = self._proc_tp(cmd)
        return doc, "process", {"go": go}

    def tp_proc_gcp(self):
        cmd = self.r.choice(
            (
                'curl -H "Metadata-Flavor: Google" http://metadata.google.internal/computeMetadata/v1/instance/'
                "service-accounts/default/token",
                "wget --header=Metadata-Flavor:Google -qO- http://metadata.google.internal/computeMetadata/v1/"
                "project/project-id",
                'curl -s "http://metadata/computeMetadata/v1/instance/attributes/?recursive=true" '
                '-H "Metadata-Flavor: Google"',
            )
        )
        doc, go = self._proc_tp(cmd)
        return doc, "process", {"go": go}

    def tp_proc_azure_ps(self):
        cmd = self.r.choice(
            (
                'powershell.exe -NoProfile -Command "Invoke-RestMethod '
                '-Headers @{Metadata=\\"true\\"} -Method GET '
                '-Uri http://169.254.169.254/metadata/instance?api-version=2021-02-01"',
                "powershell.exe -Command \"Invoke-RestMethod -Headers @{Metadata='true'} "
                "-Uri 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                "https://vault.azure.net'\"",
            )
        )
        doc, go = self._proc_tp(cmd, win=True)
        return doc, "process", {"go": go}

    def tp_proc_azure_curl(self):
        cmd = (
            'curl -s -H Metadata:true --noproxy "*" "http://169.254.169.254/metadata/identity/oauth2/token?'
            'api-version=2018-02-01&resource=https://management.azure.com/"'
        )
        doc, go = self._proc_tp(cmd, flavor=self.r.choice(("system", "auditd")))
        doc["process"]["command_line"] = cmd
        return doc, "process", {"go": go}

    def tp_proc_mixed_case(self):
        r = self.r
        if r.random() < 0.5:
            cmd = r.choice(
                (
                    "CURL HTTP://169.254.169.254/LATEST/META-DATA/",
                    "curl http://INSTANCE-DATA/Latest/Meta-Data/Iam/Security-Credentials/",
                    "Curl -H Metadata-Flavor:Google http://METADATA.GOOGLE.INTERNAL/ComputeMetadata/V1/",
                )
            )
            doc, go = self._proc_tp(cmd)
        else:
            cmd = (
                'POWERSHELL.EXE -c "IRM -H @{Metadata=1} HTTP://169.254.169.254/METADATA/INSTANCE?'
                'API-VERSION=2021-02-01"'
            )
            doc, go = self._proc_tp(cmd, win=True)
        return doc, "process", {"go": go}

    def tp_proc_args_only(self):
        # auditd EXECVE: process.args only, no command_line
        cmd = self.r.choice(
            (
                "wget -qO- http://169.254.169.254/latest/user-data",
                "curl -s http://169.254.169.254/",
                "python3 steal.py --target http://169.254.169.254:80/openstack",
            )
        )
        doc, go = self._proc_tp(cmd, flavor="auditd", no_cmdline=True)
        doc["process"].pop("command_line", None)
        doc["process"].pop("title", None)
        return doc, "process", {"go": go}

    def tp_proc_info_start(self):
        cmd = (
            "python3 -c \"import urllib.request as u; print(u.urlopen('http://instance-data/latest/dynamic/"
            "instance-identity/document').read())\""
        )
        doc, go = self._proc_tp(cmd, etype=["info", "start"])
        return doc, "process", {"go": go}

    def tp_proc_azure_agent_name(self):
        # WaAppAgent.exe / WindowsAzureGuestAgent.exe are not excluded in the process branch
        name = self.r.choice(("WaAppAgent.exe", "WindowsAzureGuestAgent.exe"))
        cmd = (
            f"C:\\WindowsAzure\\Packages\\{name} -probe "
            "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01"
        )
        doc, go = self._proc_tp(cmd, win=True)
        return doc, "process", {"go": go}

    def tp_proc_ipv6_imds(self):
        cmd = self.r.choice(
            (
                "wget -qO- http://[fd00:ec2::254]/latest/meta-data/instance-id",
                "curl -6 -s http://[fd00:ec2::254]/latest/meta-data/placement/region",
            )
        )
        doc, go = self._proc_tp(cmd)
        return doc, "process", {"go": go}

    def tp_proc_long_arg(self):
        # padding an argument past Elasticsearch's ignore_above (1024): imds-scan still matches
        pad = "A" * self.r.randrange(1100, 1600)
        cmd = f"bash -c 'X={pad}; curl -s http://169.254.169.254/latest/meta-data/'"
        doc, go = self._proc_tp(cmd, flavor="endpoint")
        return doc, "process", {"go": go}

    def tp_proc_other_patterns(self):
        cmd = self.r.choice(
            (
                "curl -s http://169.254.169.254/metadata/v1/id",
                "curl -s http://imds.azure.com/metadata/latest",
                "sh -c 'cat /run/cloud/instance-identity.json | jq .region'",
                'python3 /opt/tools/scan.py --url "http://10.0.0.5/latest/dynamic/"',
            )
        )
        doc, go = self._proc_tp(cmd)
        return doc, "process", {"go": go}

    def tp_proc_escaped_slash(self):
        doc, go = self._imds_start()
        return doc, "process", {"go": go, "slash": True}

    def tp_proc_hidden(self):
        doc, go = self._imds_start()
        return doc, "process", {"go": go, "hide": True}

    def tp_proc_dotted(self):
        spec, _cmd = self._imds_spec()
        doc, go = self.process_event(
            self._lhost(), self.tick(), spec, etype=["start"], flavor="endpoint"
        )
        return self.dot_mix(doc, forced=("process", "event")), "process", {"go": go, "dot": False}

    def tp_proc_nonascii(self):
        cmd = self.r.choice(
            (
                "curl -s http://169.254.169.254/latest/meta-data/ -o /tmp/données-Ωmega.json",
                "curl -s 'http://169.254.169.254/latest/meta-data/tags/instance/Ünïcode-标签'",
            )
        )
        doc, go = self._proc_tp(cmd)
        return doc, "process", {"go": go}
