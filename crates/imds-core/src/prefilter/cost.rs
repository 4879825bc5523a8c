//! The cost model: rough frequencies of bytes and common text in ECS JSON logs, to prefer
//! rare needles and rare anchor windows.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Words found in nearly every ECS line (field names, `event.category` and `event.type`
/// values): a needle inside one of them selects almost nothing.
const COMMON_WORDS: &str = concat!(
    "authentication configuration database driver email file host iam intrusion_detection ",
    "malware network package process registry session threat vulnerability web ",
    "access admin allowed change connection creation deletion denied end error group info ",
    "installation indicator protocol start user event category type action outcome kind ",
    "dataset module agent source destination message labels tags observer related ",
    "linux windows macos exec_event executed process_started success failure true false ",
);

/// Rough frequency (per 10 000 bytes) of a byte, ASCII case folded, in ECS JSON logs: used
/// only to pick rare anchors.
pub(super) fn byte_freq(b: u8) -> f64 {
    let f = match b.to_ascii_lowercase() {
        b'"' => 800,
        b'e' => 450,
        b'a' | b't' => 400,
        b'o' | b'i' | b'n' | b's' | b'r' => 330,
        b'0' | b'1' => 300,
        b':' | b',' => 280,
        b'c' | b'l' | b'd' => 230,
        b'2' => 200,
        b'm' | b'p' | b'u' => 160,
        b'3'..=b'9' | b'f' | b'b' => 140,
        b'_' | b'.' | b'h' | b'g' => 110,
        b'-' | b'/' | b' ' | b'\\' => 100,
        b'y' | b'w' | b'v' | b'k' => 60,
        b'x' | b'{' | b'}' | b'[' | b']' => 40,
        b'=' | b'j' | b'q' | b'z' => 15,
        0x80.. => 5,
        _ => 3,
    };
    f as f64 / 10_000.0
}

/// Text common in ECS logs (field names, cloud API hosts, paths, browser strings), lowercase
/// and JSON-encoded:
/// an anchor found in it is likely frequent whatever its bytes (`gle.` in `google.com`,
/// `/v1` in `/api/v1/`), so anchors avoid it.
const COMMON_TEXT: &str = concat!(
    "@timestamp event.category event.type event.action event.dataset event.module event.kind ",
    "process.command_line process.args process.name process.executable process.parent.pid ",
    "process.entity_id destination.ip destination.address destination.port source.ip ",
    "source.address network.transport network.community_id url.domain url.path url.full ",
    "url.original http.request.method http.response.status_code user_agent.original ",
    "host.name host.hostname host.os.platform host.id agent.ephemeral_id agent.version ",
    "ecs.version cloud.instance.id cloud.provider cloud.region cloud.account.id ",
    "container.image.name kubernetes.pod.name data_stream.dataset dns.question.name file.path ",
    "winlog.event_data winlog.channel user.name user.id related.ip related.hosts ",
    "https://www.google.com/ googleapis.com compute.googleapis.com storage.googleapis.com ",
    "management.azure.com login.microsoftonline.com s3.amazonaws.com /api/v1/namespaces ",
    "/apis/ /v1/ /v2/ /index.html /include/ /images/ x-request-id x-correlation-id instance-id ",
    "instance-type nginx:latest metadata.name metadata.labels c:\\\\windows\\\\system32 ",
    "c:\\\\users\\\\ c:\\\\program files appdata\\\\local microsoft-windows-sysmon/operational ",
    "/usr/bin/ /usr/lib/ /var/log/ /etc/ /home/ /tmp/ /proc/ /bin/bash python3 systemd ",
    "computer_name information security credentials dynamic latest metadata instance identity ",
    "internal mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) ",
    "chrome/ safari/ 127.0.0.1 10.0.0.1 192.168.1.254 0.0.0.0 ::1 fe80:: 2001:db8:: ",
    "255.255.255.0 ",
);

/// Estimated frequency of an anchor window (folded).
pub(super) fn window_freq(w: &[u8]) -> f64 {
    let unigram: f64 = w.iter().map(|&b| byte_freq(b)).product();
    if contains(COMMON_TEXT.as_bytes(), w) {
        unigram * 100.0
    } else {
        unigram
    }
}

/// Estimated lines per byte the endpoint raw-line test passes: about one line in twenty, so
/// another needle set is rather taken when there is a choice.
pub(super) const ENDPOINT_COST: f64 = 0.05;

/// Estimated occurrences of a literal (raw) per byte of log: 1 when it is (part of) a word
/// found in nearly every ECS line; the product of its bytes' frequencies, raised a
/// millionfold (at most 1) when it is part of text common in ECS logs: common, yet rarer than
/// the field names (`python` of `python3` is a better anchor than `process`).
pub(super) fn literal_cost(raw: &[u8]) -> f64 {
    let folded = raw.to_ascii_lowercase();
    if contains(COMMON_WORDS.as_bytes(), &folded) {
        return 1.0;
    }
    let unigram: f64 = folded.iter().map(|&b| byte_freq(b)).product();
    if contains(COMMON_TEXT.as_bytes(), &folded) {
        (unigram * 1e6).min(1.0)
    } else {
        unigram
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Values found in most ECS events beside the common words (`event.action`, `event.outcome`,
/// `event.kind` values).
const COMMON_VALUES: &str = concat!(
    "exec fork end info change creation deletion allowed denied success failure unknown ",
    "connection_attempted connection_accepted disconnect_received lookup_requested ",
    "log_on logged-in user_login ssh_login fork_event exec_event ",
    "alert signal pipeline_error metric state enrichment ",
);

/// Estimated occurrences of a whole string value, or a value's prefix or suffix, between
/// its quote (`text` JSON-encoded, without the quote): a word common in ECS logs is as
/// common as a value (an `event.category`, a `host.os.type`); any other is rarer than as a
/// bare word, as only whole values (or their ends) count.
pub(super) fn value_cost(raw: &[u8]) -> f64 {
    let folded = raw.to_ascii_lowercase();
    if common_values().contains(folded.as_slice()) {
        return 0.25;
    }
    let unigram: f64 = folded.iter().map(|&b| byte_freq(b)).product();
    (unigram * 0.25).min(0.2)
}

/// The common words and values, as a set (each rule's needles look them up: splitting the
/// lists each time was a tenth of the engine's set-up with Elastic's rules).
fn common_values() -> &'static HashSet<&'static [u8]> {
    static SET: OnceLock<HashSet<&'static [u8]>> = OnceLock::new();
    SET.get_or_init(|| {
        (COMMON_WORDS.split(' ').chain(COMMON_VALUES.split(' ')))
            .map(str::as_bytes)
            .collect()
    })
}
