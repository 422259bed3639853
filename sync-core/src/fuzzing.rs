//! Bodies of the fuzz targets in `fuzz/`. They live here so that `cargo test` runs the same
//! functions over fixed inputs on every CI run, and so they can reach private modules.

use crate::{delta, entry, protocol};

/// Decodes a frame body; re-encodes what decodes and checks it decodes the same.
pub fn frame_decode(data: &[u8]) {
    if let Ok(msg) = protocol::decode(data) {
        if let Ok(frame) = protocol::encode(&msg) {
            let again = protocol::decode(frame.get(4..).unwrap_or_default());
            assert_eq!(
                again.ok().as_ref(),
                Some(&msg),
                "re-encoding changed the message"
            );
        }
    }
}

/// Applies bytes as a delta, split in two pieces, to a fixed base: copies must stay inside it.
pub fn delta_patch(data: &[u8]) {
    let base: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut patcher = delta::Patcher::new();
    let mut out = Vec::new();
    let (a, b) = data.split_at(data.len() / 2);
    let fed = patcher
        .feed(&base, a, &mut out)
        .and_then(|()| patcher.feed(&base, b, &mut out));
    if fed.is_ok() && patcher.finish().is_ok() {
        assert_eq!(
            out.len() as u64,
            patcher.literal_bytes() + patcher.matched_bytes()
        );
    }
}

/// Validates bytes as a directory path: what passes has no `..`, no empty component, no NUL
/// and no leading `/`.
pub fn rel_path(data: &[u8]) {
    if entry::validate_rel_path(data).is_ok() && !data.is_empty() {
        assert!(data.first() != Some(&b'/'));
        for c in data.split(|&b| b == b'/') {
            assert!(!c.is_empty() && c != b".." && c != b"." && !c.contains(&0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays fixed inputs through each target body: real frames, edge cases, noise.
    #[test]
    fn fuzz_bodies_hold_on_fixed_inputs() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 64],
            b"../..".to_vec(),
            b"a/b/c".to_vec(),
            b"/etc/passwd".to_vec(),
            vec![0x72, 0x73, 0x02, 0x36, 0x45, 0, 0x10, 0],
            vec![
                0x72, 0x73, 0x02, 0x36, 0x54, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            ],
        ];
        for msg in [
            protocol::Message::EndOfTree,
            protocol::Message::BatchDone(3),
            protocol::Message::Fatal("x".into()),
            protocol::Message::Rules(vec!["*.o".into(), "!keep.o".into()]),
        ] {
            inputs.push(protocol::encode(&msg).unwrap()[4..].to_vec());
        }
        let mut x = 0x9e37_79b9u32;
        for len in 0..200 {
            inputs.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect(),
            );
        }
        for input in &inputs {
            frame_decode(input);
            delta_patch(input);
            rel_path(input);
        }
    }
}
