//! Rolling-checksum deltas: block size choice, signatures, diffs, and a streaming patcher.
//!
//! Signatures and diffs come from `fast_rsync` (librsync's format). Patching is done here, as a
//! state machine fed one chunk of delta at a time, so that neither the delta nor the result is
//! ever held whole in memory: the result streams into the destination's temp file. Every command
//! is checked against the base before it is applied; a hostile delta gets a [`DeltaError`], never
//! a panic or a read outside the base.
//!
//! MD4 inside the signature is weak, so a delta result is only trusted after its blake3 matches
//! the sender's (the receiver checks; a mismatch falls back to a whole-file transfer).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{self, Write};

use fast_rsync::{Signature, SignatureOptions};

/// Files smaller than this are always sent whole: a delta's round trip and signature cannot pay.
pub const DELTA_MIN_SIZE: u64 = 32 << 10;
/// Bytes of MD4 kept per block. blake3 over the whole result catches what this misses.
const STRONG_HASH_BYTES: u32 = 8;
const MIN_BLOCK: u32 = 512;
const MAX_BLOCK: u32 = 1 << 20;
/// A signature is kept well below the frame limit by growing the block size.
const MAX_BLOCKS: u64 = 512 * 1024;

/// librsync's delta magic and command bytes.
const DELTA_MAGIC: u32 = 0x7273_0236;
const OP_END: u8 = 0x00;
const OP_LITERAL_64: u8 = 0x40;
const OP_LITERAL_N1: u8 = 0x41;
const OP_LITERAL_N8: u8 = 0x44;
const OP_COPY_N1_N1: u8 = 0x45;
const OP_COPY_N8_N8: u8 = 0x54;

/// The block size for a file of `len` bytes: about its square root (as rsync does), rounded to
/// 8 bytes, so a signature stays small and a local edit costs about one block.
pub fn block_size(len: u64) -> u32 {
    let root = (len as f64).sqrt() as u64;
    let by_count = len.div_ceil(MAX_BLOCKS);
    let size = root.max(by_count).clamp(MIN_BLOCK as u64, MAX_BLOCK as u64);
    ((size + 7) & !7) as u32
}

/// The signature of the receiver's copy of a file.
pub fn signature(base: &[u8]) -> Vec<u8> {
    Signature::calculate(
        base,
        SignatureOptions {
            block_size: block_size(base.len() as u64),
            crypto_hash_size: STRONG_HASH_BYTES,
        },
    )
    .into_serialized()
}

/// Why a delta or signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The signature from the receiver is malformed or asks for absurd work.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// The delta from the sender is malformed or references data outside the base.
    #[error("invalid delta: {0}")]
    Delta(String),
    /// Writing the result failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Parses and checks a signature from the peer: known magic, block size within bounds, strong
/// hash no longer than MD4's, a whole number of blocks.
pub fn parse_signature(bytes: Vec<u8>) -> Result<Signature, DeltaError> {
    let header = bytes
        .get(..12)
        .ok_or_else(|| DeltaError::Signature(format!("{} bytes is too short", bytes.len())))?;
    let word = |i: usize| {
        header
            .get(i..i + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0)
    };
    let (block, strong) = (word(4), word(8));
    if !(MIN_BLOCK..=MAX_BLOCK).contains(&block) {
        return Err(DeltaError::Signature(format!(
            "block size {block} is outside {MIN_BLOCK}..={MAX_BLOCK}"
        )));
    }
    if !(1..=16).contains(&strong) {
        return Err(DeltaError::Signature(format!(
            "strong hash of {strong} bytes (must be 1 to 16)"
        )));
    }
    Signature::deserialize(bytes).map_err(|e| DeltaError::Signature(e.to_string()))
}

/// Writes the delta that turns the signed base into `data`.
pub fn diff(signature: &Signature, data: &[u8], out: impl Write) -> Result<(), DeltaError> {
    fast_rsync::diff(&signature.index(), data, out).map_err(|e| match e {
        fast_rsync::DiffError::Io(io) => DeltaError::Io(io),
        other => DeltaError::Signature(other.to_string()),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Magic,
    Command,
    Literal(u64),
    Done,
}

/// Applies a delta fed in pieces, writing the result to `out`.
#[derive(Debug)]
pub struct Patcher {
    state: State,
    /// Bytes of a magic or command header split across chunks (at most 17).
    pending: Vec<u8>,
    literal: u64,
    matched: u64,
}

impl Default for Patcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Patcher {
    /// A patcher at the start of a delta.
    pub fn new() -> Patcher {
        Patcher {
            state: State::Magic,
            pending: Vec::with_capacity(17),
            literal: 0,
            matched: 0,
        }
    }

    /// Bytes of the result that came as literals.
    pub fn literal_bytes(&self) -> u64 {
        self.literal
    }

    /// Bytes of the result copied from the base.
    pub fn matched_bytes(&self) -> u64 {
        self.matched
    }

    /// Feeds the next piece of the delta.
    pub fn feed(
        &mut self,
        base: &[u8],
        mut data: &[u8],
        out: &mut impl Write,
    ) -> Result<(), DeltaError> {
        while !data.is_empty() {
            match self.state {
                State::Done => {
                    return Err(DeltaError::Delta(format!(
                        "{} bytes after the end command",
                        data.len()
                    )))
                }
                State::Literal(remaining) => {
                    let take = remaining.min(data.len() as u64) as usize;
                    let (now, rest) = data.split_at(take);
                    out.write_all(now)?;
                    self.literal += take as u64;
                    data = rest;
                    self.state = match remaining - take as u64 {
                        0 => State::Command,
                        left => State::Literal(left),
                    };
                }
                State::Magic | State::Command => {
                    let need = self.header_len();
                    let take = need.saturating_sub(self.pending.len()).min(data.len());
                    let (now, rest) = data.split_at(take);
                    self.pending.extend_from_slice(now);
                    data = rest;
                    if self.pending.len() == self.header_len() {
                        self.run_header(base, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the delta; it must have reached its end command.
    pub fn finish(&self) -> Result<(), DeltaError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(DeltaError::Delta(
                "the delta ended before its end command".into(),
            )),
        }
    }

    /// How many header bytes the current command needs, given what is pending.
    fn header_len(&self) -> usize {
        match self.state {
            State::Magic => 4,
            _ => match self.pending.first() {
                None => 1,
                Some(&op @ OP_LITERAL_N1..=OP_LITERAL_N8) => 1 + (1 << (op - OP_LITERAL_N1)),
                Some(&op @ OP_COPY_N1_N1..=OP_COPY_N8_N8) => {
                    let (a, b) = copy_widths(op);
                    1 + a + b
                }
                Some(_) => 1,
            },
        }
    }

    fn run_header(&mut self, base: &[u8], out: &mut impl Write) -> Result<(), DeltaError> {
        let header = std::mem::take(&mut self.pending);
        self.pending = Vec::with_capacity(17);
        if self.state == State::Magic {
            let magic = be_uint(&header);
            if magic != u64::from(DELTA_MAGIC) {
                return Err(DeltaError::Delta(format!("bad magic 0x{magic:08x}")));
            }
            self.state = State::Command;
            return Ok(());
        }
        let (op, args) = header.split_first().unwrap_or((&OP_END, &[]));
        self.state = match *op {
            OP_END => State::Done,
            1..=OP_LITERAL_64 => State::Literal(u64::from(*op)),
            OP_LITERAL_N1..=OP_LITERAL_N8 => match be_uint(args) {
                0 => return Err(DeltaError::Delta("zero-length literal".into())),
                n => State::Literal(n),
            },
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let (a, _) = copy_widths(*op);
                let (offset, len) = args.split_at(a.min(args.len()));
                let (offset, len) = (be_uint(offset), be_uint(len));
                let range = offset
                    .checked_add(len)
                    .filter(|&end| len > 0 && end <= base.len() as u64)
                    .and_then(|end| base.get(offset as usize..end as usize))
                    .ok_or_else(|| {
                        DeltaError::Delta(format!(
                            "copy of {len} bytes at offset {offset} is outside the {}-byte base",
                            base.len()
                        ))
                    })?;
                out.write_all(range)?;
                self.matched += len;
                State::Command
            }
            other => return Err(DeltaError::Delta(format!("unknown command 0x{other:02x}"))),
        };
        Ok(())
    }
}

/// Widths in bytes of a copy command's offset and length.
fn copy_widths(op: u8) -> (usize, usize) {
    let i = op.saturating_sub(OP_COPY_N1_N1);
    (1 << (i / 4), 1 << (i % 4))
}

fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0; len];
        rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    fn delta_of(base: &[u8], new: &[u8]) -> Vec<u8> {
        let sig = parse_signature(signature(base)).unwrap();
        let mut out = Vec::new();
        diff(&sig, new, &mut out).unwrap();
        out
    }

    fn patch_in_pieces(
        base: &[u8],
        delta: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Patcher), DeltaError> {
        let mut p = Patcher::new();
        let mut out = Vec::new();
        for chunk in delta.chunks(piece.max(1)) {
            p.feed(base, chunk, &mut out)?;
        }
        p.finish()?;
        Ok((out, p))
    }

    #[test]
    fn small_edit_in_a_large_file_costs_about_a_block() {
        let base = random(4 << 20, 1);
        let mut new = base.clone();
        new[2 << 20..(2 << 20) + 1024].copy_from_slice(&random(1024, 2));
        let delta = delta_of(&base, &new);
        let (out, p) = patch_in_pieces(&base, &delta, 1000).unwrap();
        assert_eq!(out, new);
        assert!(p.literal_bytes() <= 2 * block_size(base.len() as u64) as u64 + 1024);
        assert_eq!(p.literal_bytes() + p.matched_bytes(), new.len() as u64);
    }

    #[test]
    fn block_sizes_are_pinned() {
        // Recorded expectations: a change here changes every signature on the wire.
        assert_eq!(block_size(0), 512);
        assert_eq!(block_size(1 << 20), 1024);
        assert_eq!(block_size(20_000_000), 4472);
        assert_eq!(block_size(4 << 30), 65536);
        assert_eq!(block_size(1 << 40), 1 << 20);
        let sig = signature(&random(10_000, 3));
        assert_eq!(
            &sig[..12],
            &[0x72, 0x73, 0x01, 0x36, 0, 0, 2, 0, 0, 0, 0, 8]
        );
        assert_eq!(
            blake3::hash(&sig).to_hex().as_str()[..16],
            *"f83e5f0de57b1ea2"
        );
    }

    #[test]
    fn out_of_range_copy_is_refused() {
        let base = random(1000, 4);
        // magic, COPY_N2_N2 offset 900 len 200 (past the end), END
        let mut delta = DELTA_MAGIC.to_be_bytes().to_vec();
        delta.extend_from_slice(&[OP_COPY_N1_N1 + 5, 0x03, 0x84, 0x00, 0xc8, OP_END]);
        let err = patch_in_pieces(&base, &delta, 3).unwrap_err();
        assert!(
            err.to_string().contains("outside the 1000-byte base"),
            "{err}"
        );
    }

    #[test]
    fn malformed_deltas_are_errors() {
        let base = random(100, 5);
        let magic = DELTA_MAGIC.to_be_bytes();
        let cases: Vec<Vec<u8>> = vec![
            vec![1, 2, 3, 4, 0],
            magic.to_vec(),                                   // no end
            [&magic[..], &[0x55]].concat(),                   // unknown command
            [&magic[..], &[OP_COPY_N1_N1, 0, 0, 0]].concat(), // zero-length copy
            [&magic[..], &[OP_END, 1]].concat(),              // trailing data
            [
                &magic[..],
                &[
                    OP_LITERAL_N8,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                    0xff,
                ],
            ]
            .concat(),
        ];
        for delta in cases {
            assert!(patch_in_pieces(&base, &delta, 2).is_err(), "{delta:?}");
        }
    }

    #[test]
    fn hostile_signatures_are_refused() {
        let good = signature(&random(5000, 6));
        let mut zero_block = good.clone();
        zero_block[4..8].copy_from_slice(&0u32.to_be_bytes());
        let mut long_hash = good.clone();
        long_hash[8..12].copy_from_slice(&32u32.to_be_bytes());
        for bad in [
            vec![],
            good[..5].to_vec(),
            zero_block,
            long_hash,
            good[..good.len() - 1].to_vec(),
        ] {
            assert!(parse_signature(bad).is_err());
        }
    }

    proptest! {
        #[test]
        fn patch_reproduces_any_edit(
            base in proptest::collection::vec(any::<u8>(), 0..6000),
            insert in proptest::collection::vec(any::<u8>(), 0..700),
            at in 0usize..6000,
            cut in 0usize..700,
            piece in 1usize..300,
        ) {
            let at = at.min(base.len());
            let mut new = base[..at].to_vec();
            new.extend_from_slice(&insert);
            new.extend_from_slice(&base[(at + cut).min(base.len())..]);
            let delta = delta_of(&base, &new);
            let (out, _) = patch_in_pieces(&base, &delta, piece).unwrap();
            prop_assert_eq!(out, new);
        }

        #[test]
        fn any_bytes_as_delta_never_panic(delta in proptest::collection::vec(any::<u8>(), 0..200)) {
            let base = random(300, 7);
            let _ = patch_in_pieces(&base, &delta, 7);
        }
    }
}
