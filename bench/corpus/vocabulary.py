"""Static vocabulary: operating systems, users, domains, command-line templates, process
specs and the filler that draws a random value for each template placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .benign import BenignEvents

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

    def __init__(self, gen: BenignEvents) -> None:
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
