//! Throughput probe (not a benchmark with assertions): scans ~200 MB of synthetic ECS NDJSON
//! (~1 KB lines, no hits) and prints MB/s and the candidate-line rate.
//!
//! cargo test --release -p imds-core --test throughput -- --ignored --nocapture
//!
//! Knobs: IMDS_PROBE_MB (corpus size), IMDS_PROBE_BUFFER_KB, IMDS_PROBE_FILE (scan a file).

use imds_core::{Engine, RuleIr, ScanOptions};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const SEED: &str = include_str!("data/seed_ir.json");

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const HOSTS: &[&str] = &[
    "web-01",
    "web-02",
    "db-primary",
    "ip-10-0-3-17",
    "WIN-DC01",
    "build-agent-7",
    "k8s-node-a3",
];
const USERS: &[&str] = &[
    "root",
    "alice",
    "bob",
    "svc_backup",
    "SYSTEM",
    "www-data",
    "jenkins",
];
const LINUX_CMDS: &[&str] = &[
    "/usr/bin/python3 /opt/app/worker.py --config /etc/app/config.yaml --log-level info",
    "/bin/bash -c 'tar czf /var/backups/home-$(date +%F).tgz /home'",
    "/usr/sbin/sshd -D -R",
    "curl -sS https://api.github.com/repos/org/project/releases/latest -H 'Accept: application/json'",
    "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    "kubectl get pods --all-namespaces -o wide",
    "java -Xmx2g -jar /opt/service/app.jar --spring.profiles.active=prod",
    "/usr/lib/systemd/systemd-journald",
    "git fetch origin main --prune",
    "node /srv/app/server.js --port 8080",
];
const WIN_CMDS: &[&str] = &[
    "C:\\\\Windows\\\\System32\\\\svchost.exe -k netsvcs -p -s Schedule",
    "\\\"C:\\\\Program Files\\\\Google\\\\Chrome\\\\Application\\\\chrome.exe\\\" --type=renderer --lang=en-US",
    "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\\\Users\\\\alice\\\\Documents\\\\update.ps1",
    "C:\\\\Windows\\\\system32\\\\cmd.exe /c dir C:\\\\Users\\\\Public\\\\Downloads",
    "\\\"C:\\\\Users\\\\bob\\\\AppData\\\\Local\\\\Microsoft\\\\Teams\\\\current\\\\Teams.exe\\\" --process-start-args",
];
const DOMAINS: &[&str] = &[
    "api.example.com",
    "cdn.jsdelivr.net",
    "login.microsoftonline.com",
    "s3.amazonaws.com",
    "registry.npmjs.org",
    "www.google.com",
];
const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "curl/8.4.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
];

fn hex(rng: &mut Rng, n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(b"0123456789abcdef"[rng.below(16) as usize] as char);
    }
}

fn ip(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        1 => format!(
            "172.{}.{}.{}",
            16 + rng.below(16),
            rng.below(256),
            rng.below(256)
        ),
        2 => format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        _ => format!(
            "2600:1f18:{:x}:{:x}::{:x}",
            rng.below(65536),
            rng.below(65536),
            rng.below(65536)
        ),
    }
}

fn line(rng: &mut Rng, out: &mut String) {
    let ts = format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000)
    );
    let host = rng.pick(HOSTS);
    let user = rng.pick(USERS);
    out.push_str(&format!(
        "{{\"@timestamp\":\"{ts}\",\"ecs\":{{\"version\":\"8.11.0\"}},\"host\":{{\"name\":\"{host}\",\"hostname\":\"{host}\",\"os\":{{\"type\":\"linux\",\"platform\":\"ubuntu\",\"version\":\"22.04.3 LTS (Jammy Jellyfish)\"}},\"id\":\""
    ));
    hex(rng, 32, out);
    out.push_str(
        "\"},\"agent\":{\"type\":\"auditbeat\",\"version\":\"8.11.3\",\"ephemeral_id\":\"",
    );
    hex(rng, 8, out);
    out.push('-');
    hex(rng, 4, out);
    out.push_str("\"},");
    match rng.below(6) {
        0 | 1 => {
            let win = rng.below(3) == 0;
            let cmd = if win {
                rng.pick(WIN_CMDS)
            } else {
                rng.pick(LINUX_CMDS)
            };
            let name = if win { "svchost.exe" } else { "python3" };
            out.push_str(&format!(
                "\"event\":{{\"category\":[\"process\"],\"type\":[\"start\"],\"kind\":\"event\",\"module\":\"system\",\"dataset\":\"process\"}},\"process\":{{\"pid\":{},\"name\":\"{name}\",\"command_line\":\"{cmd}\",\"args\":[\"{cmd}\"],\"executable\":\"/usr/bin/{name}\",\"working_directory\":\"/home/{user}\",\"parent\":{{\"pid\":{},\"name\":\"bash\"}},\"hash\":{{\"sha256\":\"",
                rng.below(65536),
                rng.below(65536)
            ));
            hex(rng, 64, out);
            out.push_str(&format!(
                "\"}}}},\"user\":{{\"name\":\"{user}\",\"id\":\"{}\"}}",
                rng.below(2000)
            ));
        }
        2 => {
            out.push_str(&format!(
                "\"event\":{{\"category\":[\"network\"],\"type\":[\"connection\",\"start\"],\"kind\":\"event\",\"action\":\"network_flow\"}},\"source\":{{\"ip\":\"{}\",\"port\":{},\"bytes\":{}}},\"destination\":{{\"ip\":\"{}\",\"port\":{},\"address\":\"{}\"}},\"network\":{{\"transport\":\"tcp\",\"type\":\"ipv4\",\"community_id\":\"1:",
                ip(rng), rng.below(65536), rng.below(100000), ip(rng), rng.below(1024), rng.pick(DOMAINS)
            ));
            hex(rng, 27, out);
            out.push_str(&format!(
                "=\"}},\"process\":{{\"name\":\"nginx\",\"pid\":{}}}",
                rng.below(65536)
            ));
        }
        3 => {
            let d = rng.pick(DOMAINS);
            out.push_str(&format!(
                "\"event\":{{\"category\":[\"web\"],\"type\":[\"access\"],\"kind\":\"event\",\"outcome\":\"success\"}},\"url\":{{\"domain\":\"{d}\",\"path\":\"/v2/items/{}\",\"query\":\"page={}\\u0026limit=50\\u0026sort=desc\",\"full\":\"https://{d}/v2/items/{}?page=1\\u0026limit=50\"}},\"http\":{{\"request\":{{\"method\":\"GET\"}},\"response\":{{\"status_code\":200,\"body\":{{\"bytes\":{}}}}}}},\"user_agent\":{{\"original\":\"{}\"}},\"message\":\"\\u003chtml\\u003e ok\"",
                rng.below(100000), rng.below(100), rng.below(100000), rng.below(100000), rng.pick(UAS)
            ));
        }
        4 => {
            // Near misses: words and paths that share pieces with the rule's literals.
            out.push_str(&format!(
                "\"event\":{{\"category\":[\"web\"],\"type\":[\"access\"],\"dataset\":\"kubernetes.audit\"}},\"url\":{{\"path\":\"/api/v1/namespaces/kube-system/pods/coredns-{}\",\"original\":\"/apis/compute.googleapis.com/v1/projects/p/zones/europe-west1-b/instances?maxResults=500\"}},\"kubernetes\":{{\"metadata\":{{\"name\":\"web\",\"image\":\"nginx:latest\"}}}},\"dns\":{{\"question\":{{\"name\":\"{}\"}}}},\"http\":{{\"request\":{{\"headers\":{{\"x-request-id\":\"{}\",\"referer\":\"https://www.google.com/search?q=index.html\"}}}}}},\"destination\":{{\"ip\":\"10.0.{}.254\",\"port\":443}},\"aws\":{{\"ec2\":{{\"instance-id\":\"i-0{}\",\"instance-type\":\"m5.large\"}}}},\"file\":{{\"path\":\"/var/www/html/include/index.php\"}}",
                rng.below(100000),
                rng.pick(&["storage.googleapis.com", "management.azure.com", "www.google.com", "metadata.example.com"]),
                rng.below(1 << 30),
                rng.below(256),
                rng.below(1 << 30)
            ));
        }
        _ => {
            out.push_str(&format!(
                "\"event\":{{\"category\":[\"file\"],\"type\":[\"change\"],\"kind\":\"event\",\"action\":\"updated\"}},\"file\":{{\"path\":\"C:\\\\Users\\\\{user}\\\\AppData\\\\Roaming\\\\Microsoft\\\\Windows\\\\Recent\\\\report-{}.lnk\",\"extension\":\"lnk\",\"size\":{},\"owner\":\"{user}\"}},\"winlog\":{{\"channel\":\"Microsoft-Windows-Sysmon/Operational\",\"event_id\":11,\"provider_name\":\"Microsoft-Windows-Sysmon\",\"record_id\":{}}}",
                rng.below(10000), rng.below(1 << 20), rng.below(1 << 30)
            ));
        }
    }
    out.push_str(",\"tags\":[\"beats_input_codec_plain_applied\",\"forwarded\"],\"cloud\":{\"provider\":\"aws\",\"region\":\"eu-west-1\",\"account\":{\"id\":\"123456789012\"},\"instance\":{\"id\":\"i-0");
    hex(rng, 16, out);
    out.push_str("\"}},\"message\":\"Process and network telemetry collected by agent; see observer for details.\"}\n");
}

fn corpus(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(bytes + 4096);
    while s.len() < bytes {
        line(&mut rng, &mut s);
    }
    s.into_bytes()
}

fn engine() -> Engine {
    Engine::new(vec![RuleIr::from_json(SEED).unwrap()]).unwrap()
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// CPU seconds (user + system) used so far by `who` ("thread-self" or "self"), from procfs:
/// on a shared machine wall-clock rates swing with other load, CPU time much less.
fn cpu_secs(who: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[test]
#[ignore = "throughput probe: run in release with --ignored --nocapture"]
fn throughput_probe() {
    let size: usize = std::env::var("IMDS_PROBE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
        << 20;
    // IMDS_PROBE_FILE: scan that file (say bench/data/…) instead of the built-in corpus.
    let file = std::env::var_os("IMDS_PROBE_FILE");
    let data = match &file {
        Some(path) => std::fs::read(path).unwrap(),
        None => corpus(size, 7),
    };
    let engine = engine();
    println!("prefilter: {}", engine.prefilter().strategy());
    let opts = ScanOptions::default();
    let rounds = 10;
    let cpu0 = cpu_secs("thread-self");
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let report = engine.scan_bytes(&data, &opts);
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(report);
    }
    let cpu = cpu_secs("thread-self")
        .zip(cpu0)
        .map(|(b, a)| (b - a) / rounds as f64);
    let report = last.unwrap();
    let f = &report.files[0];
    println!(
        "scan_bytes, 1 thread: {:.0} MB/s wall (best of {rounds}), {} MB/s per CPU-second; \
         {} events, {} candidates ({:.3}%), {} hits, {} malformed",
        mb_per_s(data.len(), best),
        cpu.map_or("?".into(), |c| format!("{:.0}", mb_per_s(data.len(), c))),
        f.events,
        f.candidates,
        100.0 * f.candidates as f64 / f.events as f64,
        f.hits,
        f.malformed
    );
    if file.is_none() {
        assert_eq!(f.hits, 0);
    }

    // Soundness on this input: parsing every line finds the same hits.
    let t = Instant::now();
    let full = engine.scan_bytes(
        &data,
        &ScanOptions {
            prefilter: false,
            ..ScanOptions::default()
        },
    );
    let key = |r: &imds_core::ScanReport| -> Vec<(u64, usize, usize)> {
        r.hits.iter().map(|h| (h.line, h.rule, h.branch)).collect()
    };
    assert_eq!(key(&full), key(&report), "prefilter missed hits");
    println!(
        "prefilter off (every line parsed): {:.0} MB/s, same {} hits",
        mb_per_s(data.len(), t.elapsed().as_secs_f64()),
        full.hits.len()
    );

    // The same bytes as 4 files, through the reader and the thread pool.
    let dir = std::env::temp_dir().join(format!("imds-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let quarter = data.len() / 4;
    let mut paths = Vec::new();
    let mut start = 0;
    for i in 0..4 {
        let end = if i == 3 {
            data.len()
        } else {
            start
                + quarter
                + data[start + quarter..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap()
                + 1
        };
        let path = dir.join(format!("part{i}.ndjson"));
        std::fs::write(&path, &data[start..end]).unwrap();
        paths.push(path);
        start = end;
    }
    let cancel = AtomicBool::new(false);
    let buffer_size = std::env::var("IMDS_PROBE_BUFFER_KB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(ScanOptions::default().buffer_size, |kb| kb << 10);
    let whole = dir.join("whole.ndjson");
    std::fs::write(&whole, &data).unwrap();
    let inputs = [("1 file", vec![whole]), ("4 files", paths)];
    for (what, paths) in &inputs {
        for threads in [1, 0] {
            let opts = ScanOptions {
                threads,
                buffer_size,
                ..ScanOptions::default()
            };
            let mut secs = f64::MAX;
            let mut events = 0;
            let cpu0 = cpu_secs("self");
            for _ in 0..rounds {
                let t = Instant::now();
                let report = engine.scan_paths(paths, &opts, &cancel);
                secs = secs.min(t.elapsed().as_secs_f64());
                events = report.files.iter().map(|f| f.events).sum::<u64>();
            }
            let cpu = cpu_secs("self")
                .zip(cpu0)
                .map(|(b, a)| (b - a) / rounds as f64);
            println!(
                "scan_paths, {what}, threads={threads}, buffer {} KiB: {:.0} MB/s wall (best \
                 of {rounds}), {} MB/s per CPU-second; {events} events",
                buffer_size >> 10,
                mb_per_s(data.len(), secs),
                cpu.map_or("?".into(), |c| format!("{:.0}", mb_per_s(data.len(), c))),
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
