//! Damaged gzip and zstd: the input's text is compressed, then cut or changed as its first
//! bytes say. No panic; an error exactly when the decoder fails; what the engine read is
//! what the decoder gives, up to the one read (`DECODED_READ`) that met the damage.
#![no_main]

use imds_core::source::{self, DECODED_READ};
use imds_core::{Engine, ScanOptions};
use imds_core_fuzz::{keys, rules};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

static ENGINE: OnceLock<Engine> = OnceLock::new();

fn decode(data: &[u8], zstd: bool) -> (Vec<u8>, bool) {
    let mut decoder: Box<dyn Read> = if zstd {
        Box::new(source::zstd(data).unwrap())
    } else {
        Box::new(source::gzip(data))
    };
    let (mut out, mut piece) = (Vec::new(), [0; 256]);
    loop {
        match decoder.read(&mut piece) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&piece[..n]),
            Err(_) => return (out, true),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let engine = ENGINE.get_or_init(|| Engine::new(rules()).unwrap());
    if input.len() < 6 {
        return;
    }
    let (params, plain) = input.split_at(6);
    let zstd = params[0] & 1 != 0;
    let mut data = if zstd {
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(params[0] & 2 != 0).unwrap();
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    } else {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    };
    let magic = if zstd { 4 } else { 2 };
    let at = u16::from_le_bytes([params[1], params[2]]) as usize;
    // A changed zstd frame header (up to 18 bytes) may declare more content than the frame
    // holds: the zstd crate reports that only to reads at least that large (a known
    // finding, docs/fuzzing.md), so whether an error is seen depends on read sizes.
    let mut header_changed = false;
    match params[3] % 3 {
        0 => data.truncate(magic + at % (data.len() - magic + 1)),
        1 => {
            let i = magic + at % (data.len() - magic);
            data[i] ^= params[4] | 1;
            header_changed = zstd && i < 18;
        }
        _ => {}
    }
    let opts = ScanOptions {
        threads: 1 + usize::from(params[5] & 1),
        buffer_size: 1 + usize::from(params[5]) * 64,
        ..ScanOptions::default()
    };
    let (decoded, failed) = decode(&data, zstd);
    let report = engine.scan_reader(&data[..], 0, &opts, &AtomicBool::new(false));
    let f = &report.files[0];
    if header_changed {
        return;
    }
    assert_eq!(f.error.is_some(), failed, "{:?}", f.error);
    let got = f.bytes as usize;
    if failed {
        assert!(
            got + DECODED_READ >= decoded.len(),
            "{got} of {}",
            decoded.len()
        );
    } else {
        assert_eq!(got, decoded.len());
    }
    let common = &decoded[..got.min(decoded.len())];
    let complete = common.iter().filter(|&&b| b == b'\n').count() as u64;
    let within = |mut k: Vec<imds_core_fuzz::Key>| {
        k.retain(|h| h.0 <= complete);
        k
    };
    let expected = engine.scan_bytes(common, &opts);
    assert_eq!(within(keys(&report)), within(keys(&expected)));
});
