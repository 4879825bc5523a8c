#!/usr/bin/env python3
"""Deterministic generator of realistic ECS NDJSON security logs for imds-scan benchmarks.

Writes Elastic Agent / Auditbeat / Filebeat shaped events (process, network, dns, file,
authentication, web) from Linux and Windows hosts, with planted true positives and near
misses for the bundled Cloud Instance Metadata API rule, plus ``PATH.expected.json``
holding the counts known by construction (no scanner is run).

    python3 bench/gen_corpus.py --size 1G --seed 7 --out bench/data/ecs-1g.ndjson

Pure standard library, Python 3.11. The same arguments always give the same bytes.
See bench/README.md ("Corpus generator") for the knobs and what is planted.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import random
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

GENERATOR_VERSION = 2

# Every literal of the seed rule, ASCII lower case, plus the other spellings of the IMDS
# addresses. No benign line contains any of them, in any case: checked on every line.
GUARD_LITERALS = (
    "169.254.169.254",
    "metadata/instance",
    "iam/security-credentials",
    "latest/meta-data",
    "latest/dynamic",
    "instance-identity",
    "computemetadata",
    "metadata.google.internal",
    "imds.azure.com",
    "metadata/v1",
    "a9fe:a9fe",
    "fd00:ec2::254",
)

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER_TABLE = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())

# Exclusion lists of the seed rule (the process branch omits two Windows agents).
NET_EXCLUDED = (
    "AzureGuestAgent.exe",
    "WindowsAzureGuestAgent.exe",
    "WaAppAgent.exe",
    "aws-cfn-bootstrap",
    "cloud-init",
    "amazon-ssm-agent",
    "google_guest_agent",
    "waagent",
)
PROC_EXCLUDED = (
    "aws-cfn-bootstrap",
    "cloud-init",
    "amazon-ssm-agent",
    "google_guest_agent",
    "waagent",
    "AzureGuestAgent.exe",
)

EPOCH_START = 1714953600  # 2024-05-06T00:00:00Z
SPAN_SECONDS = 7 * 86400  # @timestamp spreads over about a week, whatever the size
AVG_LINE_BYTES = 1120  # measured average, only used to spread timestamps over the span

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def parse_size(text: str) -> int:
    """'1G', '100M', '512k', '2000' -> bytes (K/M/G are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 1G, 100M, 512K)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    n = int(float(m.group(1)) * mult)
    if n <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return n


def rate(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 0.5:
        raise argparse.ArgumentTypeError("rate must be within [0, 0.5]")
    return v


def has_guard_literal(text: str) -> bool:
    low = text.lower()  # Unicode lower only ever adds false alarms here: safe side
    return any(lit in low for lit in GUARD_LITERALS)


def go_escape(raw: str) -> str:
    """Beats' Go encoder writes <, > and & as \\u003c, \\u003e and \\u0026."""
    if "<" in raw or ">" in raw or "&" in raw:
        raw = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return raw


def _escaped_positions(raw: str) -> bytearray:
    """1 at every index of raw that belongs to a JSON escape sequence (\\x or \\uXXXX)."""
    mask = bytearray(len(raw))
    i = raw.find("\\")
    while i >= 0:
        n = 6 if raw[i + 1] == "u" else 2
        mask[i : i + n] = b"\x01" * n
        i = raw.find("\\", i + n)
    return mask


def _literal_overlapping(low: str, start: int, end: int) -> bool:
    for lit in GUARD_LITERALS:
        if low.find(lit, max(0, start - len(lit) + 1), end + len(lit) - 1) >= 0:
            return True
    return False


def hide_literals(raw: str, rng: random.Random) -> str:
    """Rewrite a JSON line so that no guard literal appears in its bytes, in any case,
    without changing what it decodes to: one plain character of each occurrence becomes a
    \\uXXXX escape (`\\u0069am/security-credentials`), chosen so that the escape's own hex
    digits do not form a new occurrence. Only used on planted lines, whose literals sit in
    string values."""
    while True:
        low = raw.translate(_ASCII_LOWER_TABLE)
        hit = -1
        size = 0
        for lit in GUARD_LITERALS:
            i = low.find(lit)
            if i >= 0 and (hit < 0 or i < hit):
                hit, size = i, len(lit)
        if hit < 0:
            return raw
        mask = _escaped_positions(raw)
        for j in range(hit, hit + size):
            ch = raw[j]
            if mask[j] or not ch.isalnum():
                continue
            esc = ("\\u%04x" if rng.random() < 0.5 else "\\u%04X") % ord(ch)
            cand = raw[:j] + esc + raw[j + 1 :]
            if _literal_overlapping(cand.translate(_ASCII_LOWER_TABLE), j, j + len(esc)):
                continue
            raw = cand
            break
        else:  # pragma: no cover - planted literals always contain a usable character
            raise AssertionError(f"cannot hide literal in {raw[hit : hit + size]!r}")


def random_case(rng: random.Random, s: str) -> str:
    style = rng.randrange(4)
    if style == 0:
        return s
    if style == 1:
        return s.upper()
    if style == 2:
        return s.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)


def win_split(cmd: str) -> list[str]:
    """Split a Windows command line roughly the way CommandLineToArgvW does."""
    args: list[str] = []
    cur: list[str] = []
    quoted = False
    started = False
    for ch in cmd:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch == " " and not quoted:
            if started:
                args.append("".join(cur))
                cur = []
                started = False
        else:
            cur.append(ch)
            started = True
    if started:
        args.append("".join(cur))
    return args


def _flatten_into(out: dict[str, Any], prefix: str, obj: dict[str, Any]) -> None:
    for k, v in obj.items():
        if type(v) is dict and v:
            _flatten_into(out, prefix + "." + k, v)
        else:
            out[prefix + "." + k] = v


# --------------------------------------------------------------------------------------
# Static vocabulary
# --------------------------------------------------------------------------------------

LINUX_OS = (
    {
        "type": "linux",
        "family": "debian",
        "name": "Ubuntu",
        "platform": "ubuntu",
        "version": "22.04.4 LTS (Jammy Jellyfish)",
        "codename": "jammy",
        "kernel": "5.15.0-1056-aws",
    },
    {
        "type": "linux",
        "family": "redhat",
        "name": "Amazon Linux",
        "platform": "amzn",
        "version": "2023",
        "kernel": "6.1.79-99.167.amzn2023.x86_64",
    },
    {
        "type": "linux",
        "family": "debian",
        "name": "Debian GNU/Linux",
        "platform": "debian",
        "version": "12 (bookworm)",
        "codename": "bookworm",
        "kernel": "6.1.0-18-cloud-amd64",
    },
    {
        "type": "linux",
        "family": "redhat",
        "name": "Red Hat Enterprise Linux",
        "platform": "rhel",
        "version": "9.3 (Plow)",
        "kernel": "5.14.0-362.24.1.el9_3.x86_64",
    },
    {
        "type": "linux",
        "family": "debian",
        "name": "Ubuntu",
        "platform": "ubuntu",
        "version": "20.04.6 LTS (Focal Fossa)",
        "codename": "focal",
        "kernel": "5.15.0-1057-gcp",
    },
)
WINDOWS_OS = (
    {
        "type": "windows",
        "family": "windows",
        "name": "Windows Server 2022 Datacenter",
        "platform": "windows",
        "version": "21H2",
        "kernel": "21H2 (10.0.20348.2340)",
        "build": "20348.2340",
    },
    {
        "type": "windows",
        "family": "windows",
        "name": "Windows 11 Enterprise",
        "platform": "windows",
        "version": "23H2",
        "kernel": "23H2 (10.0.22631.3296)",
        "build": "22631.3296",
    },
    {
        "type": "windows",
        "family": "windows",
        "name": "Windows Server 2019 Datacenter",
        "platform": "windows",
        "version": "1809",
        "kernel": "1809 (10.0.17763.5576)",
        "build": "17763.5576",
    },
)
BEATS_VERSIONS = ("8.13.2", "8.12.2", "8.11.4", "7.17.19")
ENDPOINT_VERSIONS = ("8.13.2", "8.12.2", "8.11.4")

WORDS = (
    "billing",
    "orders",
    "inventory",
    "reports",
    "auth",
    "search",
    "payments",
    "ingest",
    "metrics",
    "backup",
    "sync",
    "cleanup",
    "export",
    "thumbnail",
    "notify",
    "audit",
    "geoip",
    "mailer",
    "scheduler",
    "cache",
    "ledger",
    "café",
    "relatório",
    "checkout",
    "catalog",
)
APPS = (
    "shop",
    "api",
    "portal",
    "ledger",
    "crm",
    "wiki",
    "grafana",
    "jenkins",
    "airflow",
    "keycloak",
)
SERVICES = (
    "nginx",
    "postgresql",
    "redis-server",
    "docker",
    "containerd",
    "ssh",
    "cron",
    "rsyslog",
    "chrony",
    "filebeat",
    "elastic-agent",
    "kubelet",
    "apache2",
    "mysql",
    "haproxy",
)
LINUX_USERS = (
    "root",
    "ubuntu",
    "ec2-user",
    "deploy",
    "jenkins",
    "postgres",
    "www-data",
    "svc-backup",
    "alice",
    "bob.smith",
    "jürgen",
    "nobody",
    "ansible",
    "admin",
)
WIN_USERS = (
    "Administrator",
    "j.doe",
    "a.kowalski",
    "svc_sql",
    "zoë.martin",
    "m.müller",
    "t.nguyen",
    "r.patel",
    "helpdesk",
    "svc_backup",
)
DOMAINS = (
    "api.github.com",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "s3.us-east-1.amazonaws.com",
    "ssm.us-east-1.amazonaws.com",
    "sts.amazonaws.com",
    "login.microsoftonline.com",
    "management.azure.com",
    "storage.googleapis.com",
    "oauth2.googleapis.com",
    "artifacts.elastic.co",
    "packages.microsoft.com",
    "deb.debian.org",
    "security.ubuntu.com",
    "www.google.com",
    "outlook.office365.com",
    "slack.com",
    "hooks.slack.com",
    "sentry.io",
    "grafana.corp.example.com",
    "jira.corp.example.com",
    "git.corp.example.com",
    "updates.example.net",
    "cdn.jsdelivr.net",
    "objects.githubusercontent.com",
    "dl.google.com",
    "ocsp.digicert.com",
)
URL_PATHS = (
    "releases/download/v{ver}/{word}-{ver}.tar.gz",
    "simple/{word}/",
    "v2/{word}/manifests/{ver}",
    "dist/{word}-{ver}.tgz",
    "api/v3/repos/{word}/{app}",
    "pool/main/{w0}/{word}/{word}_{ver}_amd64.deb",
    "downloads/{word}.zip",
    "{app}/{word}.json",
    "health",
    "status",
    "index.html",
)
DEBS = ("nginx", "curl", "jq", "htop", "python3-pip", "postgresql-client", "unzip", "git", "tmux")
PIP = ("requests", "boto3", "urllib3", "flask", "gunicorn", "psycopg2-binary", "pyyaml", "rich")
IMAGES = ("alpine:3.19", "python:3.11-slim", "node:20-bullseye", "postgres:16", "nginx:1.25")
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2", "us-west-2")
WIN_SERVICES = (
    "Schedule",
    "BITS",
    "wuauserv",
    "Winmgmt",
    "Dnscache",
    "LanmanServer",
    "W32Time",
    "EventLog",
    "Spooler",
    "CryptSvc",
)
WIN_FILES = (
    "Q3 report.xlsx",
    "Résumé_2024.docx",
    "报告.pdf",
    "notes.txt",
    "budget (final).xlsx",
    "Zoë photo.jpg",
    "contract-draft.docx",
    "invoice_7781.pdf",
    "roadmap.pptx",
)
NETWORK_WORDS = ("corp.example.com", "prod.internal", "svc.cluster.local")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "kube-probe/1.29",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)

LINUX_CMDS = (
    "/usr/lib/systemd/systemd-journald",
    "/lib/systemd/systemd-udevd",
    "/usr/lib/systemd/systemd --user",
    "systemctl is-active --quiet {svc}.service",
    "systemctl restart {svc}.service",
    "/usr/sbin/cron -f -P",
    "/usr/sbin/sshd -D -R",
    "/bin/bash /opt/scripts/{word}.sh --verbose",
    "bash -c 'ls -la /var/log/{svc} | grep -v .gz'",
    "/bin/sh -c 'df -h > /tmp/df-{n}.txt 2>&1'",
    "/bin/sh -c 'test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )'",
    "bash -c 'for f in /var/log/{svc}/*.log; do wc -l \"$f\"; done'",
    "/usr/bin/python3 /opt/{app}/manage.py {djcmd}",
    "python3 -m pip install --user {pip}=={ver}",
    "/usr/bin/python3 /usr/bin/networkd-dispatcher --run-startup-triggers",
    "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{word}\"])'",
    "/usr/bin/python3 /usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal",
    "curl -fsSL https://{domain}/{path} -o /tmp/{word}.tar.gz",
    "curl -s -o /dev/null -w '%{{http_code}}' http://{ip}:{port}/healthz",
    "wget -q https://{domain}/{path} -O /tmp/{word}",
    "apt-get -y -q install {deb}",
    "dpkg --configure -a",
    "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    "docker run --rm -v /srv/{app}:/data {image} {word}",
    "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {hex64} "
    "-address /run/containerd/containerd.sock",
    "kubectl get pods -n {ns} -o wide",
    "node /srv/{app}/server.js --port {port}",
    "java -Xms512m -Xmx{mem}g -jar /opt/{app}/{app}.jar --spring.profiles.active=prod",
    "git -C /srv/{app} pull --ff-only origin {branch}",
    "tar -czf /backup/{app}-{date}.tgz /srv/{app}",
    "grep -rn ERROR /var/log/{svc}",
    "awk '{{print $1}}' /var/log/nginx/access.log",
    "find /tmp -type f -mtime +{n} -delete",
    "ps -eo pid,ppid,cmd,%mem,%cpu --sort=-%mem",
    "cat /etc/os-release",
    "uname -a",
    "id -u",
    "whoami",
    "hostname -I",
    "ip -4 addr show {iface}",
    "ss -tulpn",
    "journalctl -u {svc} --since today --no-pager",
    "/usr/sbin/logrotate /etc/logrotate.conf",
    "rsync -az --delete /srv/{app}/ backup01:/srv/backups/{app}/",
    "openssl s_client -connect {domain}:443 -servername {domain}",
    "psql -U postgres -d {app} -c 'SELECT count(*) FROM {word};'",
    "pg_dump -Fc {app} -f /backup/{app}-{date}.dump",
    "/usr/sbin/chronyd -F 1",
    "/usr/bin/amazon-ssm-agent",
    "/usr/bin/ssm-agent-worker",
    "/usr/bin/cloud-init modules --mode=final",
    "/usr/bin/google_guest_agent",
    "/usr/bin/python3 -u /usr/sbin/waagent -run-exthandlers",
    "sudo -u {user} -i",
    "vim /etc/{svc}/{svc}.conf",
    "less /var/log/syslog",
    "make -j{n} all",
    "gcc -O2 -Wall -o /tmp/{word} /tmp/{word}.c",
    "/usr/share/filebeat/bin/filebeat --environment systemd -c /etc/filebeat/filebeat.yml",
    "/opt/Elastic/Agent/elastic-agent run",
    "terraform plan -out=/tmp/{word}.plan",
    "ansible-playbook -i inventory/prod site.yml --limit {app}",
    "aws s3 cp s3://{app}-artifacts/{path} /tmp/{word}",
    "aws ec2 describe-instances --region {region} --output json",
    "gsutil -m rsync -r /srv/{app} gs://{app}-backups/{app}",
    "nginx -g 'daemon on; master_process on;'",
    "/usr/sbin/nginx -s reload",
    "redis-cli -h {ip} -p 6379 INFO replication",
    "mysql -u{user} -e 'SHOW PROCESSLIST'",
    "bash -c 'echo $(date) >> /var/log/{word}.log'",
    "sh -c 'cat /proc/loadavg > /run/{word}.stat && sync'",
    "/usr/bin/bash /usr/local/bin/{word}-healthcheck.sh",
    "python3 /opt/{app}/worker.py --queue {word} --concurrency {n}",
    "npm ci --prefix /srv/{app}",
    "go build -o /srv/{app}/bin/{app} ./cmd/{app}",
    "ls -la /home/{user}",
    "chmod 600 /home/{user}/.ssh/authorized_keys",
    "crontab -l -u {user}",
    "/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation",
    "/usr/sbin/rsyslogd -n -iNONE",
    "/usr/bin/containerd",
    "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
)
LINUX_EXE = {
    "systemctl": "/usr/bin/systemctl",
    "bash": "/usr/bin/bash",
    "sh": "/usr/bin/dash",
    "python3": "/usr/bin/python3.10",
    "curl": "/usr/bin/curl",
    "wget": "/usr/bin/wget",
    "apt-get": "/usr/bin/apt-get",
    "dpkg": "/usr/bin/dpkg",
    "docker": "/usr/bin/docker",
    "kubectl": "/usr/local/bin/kubectl",
    "node": "/usr/bin/node",
    "java": "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
    "git": "/usr/bin/git",
    "tar": "/usr/bin/tar",
    "grep": "/usr/bin/grep",
    "awk": "/usr/bin/gawk",
    "find": "/usr/bin/find",
    "ps": "/usr/bin/ps",
    "cat": "/usr/bin/cat",
    "uname": "/usr/bin/uname",
    "id": "/usr/bin/id",
    "whoami": "/usr/bin/whoami",
    "hostname": "/usr/bin/hostname",
    "ip": "/usr/sbin/ip",
    "ss": "/usr/bin/ss",
    "journalctl": "/usr/bin/journalctl",
    "rsync": "/usr/bin/rsync",
    "openssl": "/usr/bin/openssl",
    "psql": "/usr/lib/postgresql/16/bin/psql",
    "pg_dump": "/usr/lib/postgresql/16/bin/pg_dump",
    "sudo": "/usr/bin/sudo",
    "vim": "/usr/bin/vim.basic",
    "less": "/usr/bin/less",
    "make": "/usr/bin/make",
    "gcc": "/usr/bin/x86_64-linux-gnu-gcc-12",
    "terraform": "/usr/local/bin/terraform",
    "ansible-playbook": "/usr/bin/ansible-playbook",
    "aws": "/usr/local/bin/aws",
    "gsutil": "/usr/bin/gsutil",
    "nginx": "/usr/sbin/nginx",
    "redis-cli": "/usr/bin/redis-cli",
    "mysql": "/usr/bin/mysql",
    "npm": "/usr/bin/npm",
    "go": "/usr/local/go/bin/go",
    "ls": "/usr/bin/ls",
    "chmod": "/usr/bin/chmod",
    "crontab": "/usr/bin/crontab",
    "pwsh": "/opt/microsoft/powershell/7/pwsh",
}
WIN_CMDS = (
    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s {winsvc}",
    "C:\\Windows\\system32\\svchost.exe -k LocalServiceNetworkRestricted -p",
    '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoProfile '
    "-ExecutionPolicy Bypass "
    "-File C:\\ProgramData\\Contoso\\scripts\\{word}.ps1",
    'powershell.exe -NoLogo -Command "Get-Process | Where-Object {{ $_.CPU -gt {n} }} '
    '| Select-Object -First 5"',
    'powershell.exe -Command "Get-ChildItem C:\\Users\\{wuser}\\Downloads '
    '| Measure-Object -Property Length -Sum"',
    'powershell.exe -NonInteractive -Command "Invoke-WebRequest -Uri https://{domain}/{path} '
    '-OutFile $env:TEMP\\{word}.zip"',
    'powershell.exe -Command "& {{ Get-Service | Where-Object Status -eq Running }} '
    '> C:\\Temp\\svc.txt"',
    'C:\\Windows\\system32\\cmd.exe /c "dir C:\\Users\\{wuser}\\Documents '
    '> C:\\Temp\\{word}.txt 2>&1"',
    "cmd.exe /c echo {word} & ping -n 1 {ip} > nul",
    'cmd.exe /c "ipconfig /all > %TEMP%\\net.txt"',
    'cmd.exe /c "cd /d C:\\inetpub\\wwwroot && iisreset /noforce"',
    "C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
    '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer --lang=en-US '
    "--renderer-client-id={n} --mojo-platform-channel-handle={n}",
    '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --type=utility '
    "--utility-sub-type=network.mojom.NetworkService --lang=en-US",
    "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
    '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE" /recycle',
    "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
    "taskhostw.exe {{222A245B-E637-4AE9-A93F-A59CA119A75E}}",
    '"C:\\Windows\\System32\\msiexec.exe" /i C:\\Windows\\Temp\\{word}-{ver}.msi /qn /norestart',
    "reg.exe query HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    "schtasks.exe /query /fo LIST /v",
    "net.exe use Z: \\\\fs01.corp.example.com\\{word} /persistent:yes",
    "whoami.exe /all",
    "ipconfig.exe /all",
    "tasklist.exe /v /fo csv",
    "systeminfo.exe",
    "rundll32.exe C:\\Windows\\System32\\shell32.dll,SHCreateLocalServerRunDll "
    "{{9aa46009-3ce0-458a-a354-715610a075e6}} -Embedding",
    '"C:\\Program Files\\Git\\cmd\\git.exe" -C C:\\src\\{app} fetch origin',
    '"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24020.7-0\\MpCmdRun.exe" '
    "-wdenable",
    "C:\\Windows\\System32\\SearchProtocolHost.exe Global\\UsGthrFltPipeMssGthrPipe{n}",
    '"C:\\Users\\{wuser}\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe" --type=gpu-process',
    '"C:\\Users\\{wuser}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe" C:\\src\\{app}',
    "C:\\Windows\\explorer.exe",
    "C:\\Windows\\System32\\sc.exe query {winsvc}",
    '"C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe" '
    "-sMSSQLSERVER",
    'sqlcmd.exe -S localhost -Q "SELECT name FROM sys.databases"',
    '"C:\\Program Files\\Amazon\\SSM\\amazon-ssm-agent.exe"',
    "C:\\WindowsAzure\\GuestAgent_2.7.41491.1102_2024-03-01_182312\\WindowsAzureGuestAgent.exe",
    "C:\\WindowsAzure\\Packages\\WaAppAgent.exe",
    '"C:\\Program Files\\Elastic\\Agent\\elastic-agent.exe" run',
    "notepad.exe C:\\Users\\{wuser}\\Desktop\\{wfile}",
    '"C:\\Program Files\\7-Zip\\7z.exe" a -tzip C:\\Temp\\{word}.zip '
    '"C:\\Users\\{wuser}\\Documents\\{wfile}"',
    "certutil.exe -verify C:\\Temp\\{word}.cer",
    "gpupdate.exe /target:computer /force",
    "wevtutil.exe qe Security /c:{n} /rd:true /f:text",
    "C:\\Windows\\System32\\backgroundTaskHost.exe "
    "-ServerName:BackgroundTaskHost.WebAccountProvider",
)
WIN_EXE = {
    "powershell.exe": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "pwsh.exe": "C:\\Program Files\\PowerShell\\7\\pwsh.exe",
    "taskhostw.exe": "C:\\Windows\\System32\\taskhostw.exe",
    "curl.exe": "C:\\Windows\\System32\\curl.exe",
}
WIN_COMPANY = {
    "chrome.exe": ("Google LLC", "Google Chrome"),
    "msedge.exe": ("Microsoft Corporation", "Microsoft Edge"),
    "Teams.exe": ("Microsoft Corporation", "Microsoft Teams"),
    "Code.exe": ("Microsoft Corporation", "Visual Studio Code"),
    "git.exe": ("The Git Development Community", "Git"),
    "7z.exe": ("Igor Pavlov", "7-Zip"),
    "amazon-ssm-agent.exe": ("Amazon.com, Inc.", "Amazon SSM Agent"),
    "elastic-agent.exe": ("Elasticsearch, Inc.", "Elastic Agent"),
}
LINUX_PARENTS = (
    "/usr/lib/systemd/systemd --system --deserialize 31",
    "-bash",
    "/bin/bash",
    "sshd: {user}@pts/0",
    "/usr/sbin/cron -f -P",
    "sudo -i",
    "/usr/bin/containerd-shim-runc-v2 -namespace moby -id {hex64} "
    "-address /run/containerd/containerd.sock",
    "/usr/bin/python3 /opt/{app}/worker.py --queue {word}",
    "/bin/sh -c /opt/scripts/{word}.sh",
    "/usr/bin/tmux",
)
WIN_PARENTS = (
    "C:\\Windows\\Explorer.EXE",
    "C:\\Windows\\system32\\services.exe",
    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
    "C:\\Windows\\system32\\cmd.exe",
    '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"',
    "C:\\Windows\\system32\\userinit.exe",
    "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
    "taskhostw.exe",
)


class Spec:
    """A process as the logs show it (built once, reused by many events)."""

    __slots__ = ("args", "cmd", "exe", "hashes", "name", "pe", "sig", "win")

    def __init__(self, name: str, exe: str, args: list[str], cmd: str, win: bool) -> None:
        self.name = name
        self.exe = exe
        self.args = args
        self.cmd = cmd
        self.win = win
        self.hashes: dict[str, str] | None = None
        self.pe: dict[str, str] | None = None
        self.sig: dict[str, Any] | None = None


FILL_CHOICES: dict[str, tuple[str, ...]] = {
    "word": WORDS,
    "app": APPS,
    "svc": SERVICES,
    "user": LINUX_USERS,
    "wuser": WIN_USERS,
    "domain": DOMAINS,
    "deb": DEBS,
    "pip": PIP,
    "image": IMAGES,
    "region": REGIONS,
    "winsvc": WIN_SERVICES,
    "wfile": WIN_FILES,
    "djcmd": ("migrate --noinput", "collectstatic --noinput", "clearsessions", "check --deploy"),
    "ns": ("kube-system", "default", "monitoring", "ingress-nginx", "shop"),
    "branch": ("main", "master", "release/2024.05", "develop"),
    "iface": ("eth0", "ens5", "enp0s3"),
}


class Filler(dict):
    """format_map() mapping that draws a fresh random value for every placeholder."""

    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.g = gen

    def __missing__(self, key: str) -> str:
        g = self.g
        r = g.r
        if key == "path":
            return r.choice(URL_PATHS).format_map(self)
        simple = FILL_CHOICES.get(key)
        if simple is not None:
            return r.choice(simple)
        if key == "n":
            return str(r.randrange(1, 400))
        if key == "mem":
            return str(r.choice((1, 2, 4, 8)))
        if key == "port":
            return str(r.choice((8080, 8000, 3000, 9090, 5000, 8443)))
        if key == "ver":
            return f"{r.randrange(0, 6)}.{r.randrange(0, 30)}.{r.randrange(0, 20)}"
        if key == "ip":
            return g.private_ip()
        if key == "hex64":
            return f"{r.getrandbits(256):064x}"
        if key == "date":
            return f"2024{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}"
        if key == "w0":
            return r.choice("abcdefghijklmnopqrstuvwxyz")
        raise KeyError(key)


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------


class Generator:
    def __init__(self, seed: int, size: int, tp_rate: float, nm_rate: float) -> None:
        self.r = random.Random(seed)
        self.size = size
        self.tp_rate = tp_rate
        self.nm_rate = nm_rate
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
        self.tp_deck: list[str] = []
        self.nm_deck: list[str] = []
        self.tp_builders: dict[
            str, Callable[[], tuple[dict[str, Any] | str, str, dict[str, Any]]]
        ] = {
            name[3:]: getattr(self, name)
            for name in dir(self)
            if name.startswith("tp_") and callable(getattr(self, name))
        }
        self.nm_builders: dict[str, Callable[[], tuple[dict[str, Any] | str, dict[str, Any]]]] = {
            name[3:]: getattr(self, name)
            for name in dir(self)
            if name.startswith("nm_") and callable(getattr(self, name))
        }
        self.planted_tp: Counter[str] = Counter()
        self.planted_nm: Counter[str] = Counter()
        self.modifiers: Counter[str] = Counter()
        self.guard_rejects = 0

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
            "log": {"file": {"path": "/opt/zeek/logs/current/conn.log"}, "offset": self._offset()},
            "fileset": {"name": "connection"},
            "service": {"type": "zeek"},
            "host": sensor["host"],
            "agent": sensor["filebeat"],
            "ecs": sensor["ecs_beats"],
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
            "log": {"file": {"path": "/opt/zeek/logs/current/dns.log"}, "offset": self._offset()},
            "fileset": {"name": "dns"},
            "service": {"type": "zeek"},
            "host": sensor["host"],
            "agent": sensor["filebeat"],
            "ecs": sensor["ecs_beats"],
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
            "log": {"file": {"path": "/var/log/auth.log"}, "offset": self._offset()},
            "fileset": {"name": "auth"},
            "service": {"type": "system"},
            "host": h["host"],
            "agent": h["filebeat"],
            "ecs": h["ecs_beats"],
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
            "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": self._offset()},
            "fileset": {"name": "access"},
            "service": {"type": "nginx"},
            "host": h["host"],
            "agent": h["filebeat"],
            "ecs": h["ecs_beats"],
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
                    _flatten_into(out, k, v)
                elif mode == 1:
                    inner: dict[str, Any] = {}
                    for ck, cv in v.items():
                        if type(cv) is dict and cv:
                            _flatten_into(inner, ck, cv)
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

    # ---------------------------------------------------------------- planted: helpers
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

    # ---------------------------------------------------------------- planted: true positives
    # Each tp_* returns (doc or raw line, branch, options). options: go (Beats encoder),
    # dot (dotted-key rewrite allowed), hide / slash (force a raw-text escape rewrite),
    # dup (raw JSON member appended after the object: a repeated key).

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
        spec, _cmd = self._imds_spec(win=self.r.random() < 0.3)
        doc, go = self.process_event(
            self._whost() if spec.win else self._lhost(),
            self.tick(),
            spec,
            etype=self.cat("start"),
            flavor="endpoint",
        )
        return doc, "process", {"go": go, "slash": True}

    def tp_proc_hidden(self):
        spec, _cmd = self._imds_spec(win=self.r.random() < 0.3)
        doc, go = self.process_event(
            self._whost() if spec.win else self._lhost(),
            self.tick(),
            spec,
            etype=self.cat("start"),
            flavor="endpoint",
        )
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

    # ---------------------------------------------------------------- planted: near misses
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

    # ---------------------------------------------------------------- lines
    def _deal(self, deck: list[str], names: list[str]) -> str:
        if not deck:
            deck.extend(names)
            self.r.shuffle(deck)
        return deck.pop()

    def _render_planted(self, doc: dict[str, Any], opts: dict[str, Any]) -> str:
        r = self.r
        if opts.get("dot", True) and r.random() < 0.3:
            doc = self.dot_mix(doc)
            self.modifiers["dotted"] += 1
        raw = _dumps(doc)
        if opts.get("go"):
            esc = go_escape(raw)
            if esc != raw:
                self.modifiers["go_escaped"] += 1
            raw = esc
        if "dup" in opts:
            raw = raw[:-1] + opts["dup"] + "}"
        if opts.get("slash") or (r.random() < 0.08 and not opts.get("hide")):
            raw = raw.replace("/", "\\/")
            self.modifiers["slash_escaped"] += 1
        if opts.get("hide") or r.random() < 0.08:
            raw = hide_literals(raw, r)
            self.modifiers["literals_hidden"] += 1
        return raw

    def lines(self):
        """Yield (line without newline, label).

        label is None (benign), ("tp", branch, variant) or ("nm", variant)."""
        r = self.r
        tp_rate = self.tp_rate
        nm_edge = tp_rate + self.nm_rate
        tp_names = sorted(self.tp_builders)
        nm_names = sorted(self.nm_builders)
        dumps = _dumps
        while True:
            u = r.random()
            if u < tp_rate:
                variant = self._deal(self.tp_deck, tp_names)
                doc, branch, opts = self.tp_builders[variant]()
                self.planted_tp[variant] += 1
                yield self._render_planted(doc, opts), ("tp", branch, variant)
            elif u < nm_edge:
                variant = self._deal(self.nm_deck, nm_names)
                doc, opts = self.nm_builders[variant]()
                self.planted_nm[variant] += 1
                yield self._render_planted(doc, opts), ("nm", variant)
            else:
                while True:
                    doc, go = self.benign()
                    if r.random() < 0.1:
                        doc = self.dot_mix(doc)
                    raw = dumps(doc)
                    if not has_guard_literal(raw):
                        break
                    self.guard_rejects += 1
                if go:
                    raw = go_escape(raw)
                yield raw, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("100M"),
        help="target size of the (uncompressed) NDJSON, e.g. 2M, 100M, 1G (default 100M)",
    )
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument(
        "--tp-rate", type=rate, default=0.0005, help="fraction of lines that are planted hits"
    )
    ap.add_argument(
        "--near-miss-rate", type=rate, default=0.002, help="fraction of lines that are near misses"
    )
    ap.add_argument("--out", required=True, help="output path; counts go to OUT.expected.json")
    ap.add_argument(
        "--format",
        choices=("ndjson", "gz"),
        default="ndjson",
        help="ndjson (default) or gz (gzip level 6 of the same bytes)",
    )
    ap.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = ap.parse_args(argv)
    if a.tp_rate + a.near_miss_rate > 0.5:
        ap.error("tp-rate + near-miss-rate must not exceed 0.5")

    t0 = time.perf_counter()
    gen = Generator(a.seed, a.size, a.tp_rate, a.near_miss_rate)
    hits_by_branch = {"network": 0, "process": 0}
    n_lines = n_bytes = n_nm = 0
    target = a.size
    chunk: list[str] = []
    chunk_bytes = 0
    out = gzip.open(a.out, "wb", compresslevel=6) if a.format == "gz" else open(a.out, "wb")  # noqa: SIM115
    with out:
        for line, label in gen.lines():
            b = (len(line) if line.isascii() else len(line.encode())) + 1
            chunk.append(line)
            chunk_bytes += b
            n_lines += 1
            n_bytes += b
            if label is not None:
                if label[0] == "tp":
                    hits_by_branch[label[1]] += 1
                else:
                    n_nm += 1
            if chunk_bytes >= 1 << 22 or n_bytes >= target:
                chunk.append("")
                out.write("\n".join(chunk).encode())
                chunk.clear()
                chunk_bytes = 0
                if n_bytes >= target:
                    break
    elapsed = time.perf_counter() - t0
    expected = {
        "lines": n_lines,
        "bytes": n_bytes,
        "hits": hits_by_branch["network"] + hits_by_branch["process"],
        "hits_by_branch": hits_by_branch,
        "near_misses": n_nm,
        "seed": a.seed,
        "tp_rate": a.tp_rate,
        "near_miss_rate": a.near_miss_rate,
        "size_target": a.size,
        "format": a.format,
        "generator_version": GENERATOR_VERSION,
        "planted_hits_by_variant": dict(sorted(gen.planted_tp.items())),
        "planted_near_misses_by_variant": dict(sorted(gen.planted_nm.items())),
        "planted_modifiers": dict(sorted(gen.modifiers.items())),
    }
    with open(a.out + ".expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if not a.quiet:
        print(
            f"wrote {a.out}: {n_lines} lines, {n_bytes} bytes, {expected['hits']} hits "
            f"({hits_by_branch['network']} network, {hits_by_branch['process']} process), "
            f"{n_nm} near misses "
            f"in {elapsed:.1f}s ({n_bytes / elapsed / 1e6:.1f} MB/s; "
            f"{gen.guard_rejects} benign lines redrawn by the literal guard)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
