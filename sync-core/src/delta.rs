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

use std::io::{self, Read, Write};

use fast_rsync::{Signature, SignatureOptions};

/// Files smaller than this are always sent whole: a delta's round trip and signature cannot pay.
pub const DELTA_MIN_SIZE: u64 = 32 << 10;
/// Bytes of MD4 kept per block. blake3 over the whole result catches what this misses.
const STRONG_HASH_BYTES: u32 = 8;
const MIN_BLOCK: u32 = 512;
const MAX_BLOCK: u32 = 1 << 20;
/// A signature is kept well below the frame limit by growing the block size.
const MAX_BLOCKS: u64 = 512 * 1024;
/// New data is read and diffed this many bytes at a time, so a file of any size is neither held
/// in memory nor mapped (a mapped file truncated by someone else kills the reader with SIGBUS).
pub const DIFF_SEGMENT: usize = 4 << 20;

/// librsync's MD4 signature magic: the only kind this protocol makes.
const SIGNATURE_MAGIC: u32 = 0x7273_0136;
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

/// Bytes of the base read at a time for its signature: a whole number of blocks, so that the
/// signatures of the pieces put together are the signature of the whole.
const SIGNATURE_PIECE: u64 = 4 << 20;

/// The signature of `len` bytes of `base`, read from the start in pieces of a few MiB (never
/// the whole file in memory). A base shorter than `len` (truncated meanwhile) is an error.
pub fn signature_of(base: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let block = u64::from(block_size(len));
    let piece_len = (SIGNATURE_PIECE / block).max(1) * block;
    let options = SignatureOptions {
        block_size: block as u32,
        crypto_hash_size: STRONG_HASH_BYTES,
    };
    let mut buf = vec![0u8; piece_len.min(len) as usize];
    let mut out = Vec::new();
    let mut left = len;
    loop {
        let n = piece_len.min(left) as usize;
        let piece = buf.get_mut(..n).unwrap_or_default();
        base.read_exact(piece)?;
        let sig = Signature::calculate(piece, options).into_serialized();
        if out.is_empty() {
            out = sig;
        } else {
            // Every piece's signature repeats the header; the blocks follow it.
            out.extend_from_slice(sig.get(SIGNATURE_HEADER..).unwrap_or_default());
        }
        left -= n as u64;
        if left == 0 {
            return Ok(out);
        }
    }
}

/// The serialized signature's header: magic, block size, strong hash size (each a u32).
const SIGNATURE_HEADER: usize = 12;

/// The signature of a base held in memory (what [`signature_of`] computes for a file).
pub fn signature(mut base: &[u8]) -> Vec<u8> {
    let len = base.len() as u64;
    // Reading a slice of exactly `len` bytes cannot fail.
    signature_of(&mut base, len).unwrap_or_default()
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
    /// Reading the new data failed (see [`diff_reader`]).
    #[error("read failed: {0}")]
    Read(io::Error),
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
    let (magic, block, strong) = (word(0), word(4), word(8));
    // fast_rsync parses BLAKE2 signatures too, but diffs only against MD4 ones (fuzzing found
    // the difference): anything else is refused here, with the rest of the checks.
    if magic != SIGNATURE_MAGIC {
        return Err(DeltaError::Signature(format!(
            "magic 0x{magic:08x} is not an MD4 signature's (0x{SIGNATURE_MAGIC:08x})"
        )));
    }
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
    let body = (bytes.len() - 12) as u64;
    let per_block = 4 + u64::from(strong);
    if !body.is_multiple_of(per_block) {
        return Err(DeltaError::Signature(format!(
            "{body} bytes of blocks is not a whole number of {per_block}-byte blocks"
        )));
    }
    // Only the block size our own `block_size` picks for a base of this many blocks is
    // accepted: that bounds the block count (and the sender's index of it) by what a real base
    // needs, so a hostile receiver cannot make the sender index millions of tiny blocks.
    let blocks = body / per_block;
    let shortest = blocks.saturating_sub(1) * u64::from(block) + u64::from(blocks > 0);
    let longest = blocks * u64::from(block);
    if blocks > MAX_BLOCKS
        || !block.is_multiple_of(8)
        || block_size(shortest) > block
        || block_size(longest) < block
    {
        return Err(DeltaError::Signature(format!(
            "{blocks} blocks of {block} bytes is not a signature this protocol makes"
        )));
    }
    Signature::deserialize(bytes).map_err(|e| DeltaError::Signature(e.to_string()))
}

/// Writes the delta that turns the signed base into `data` in one pass (the reference that
/// [`diff_reader`] is checked against).
#[cfg(test)]
pub fn diff(signature: &Signature, data: &[u8], out: impl Write) -> Result<(), DeltaError> {
    fast_rsync::diff(&signature.index(), data, out).map_err(diff_error)
}

fn diff_error(e: fast_rsync::DiffError) -> DeltaError {
    match e {
        fast_rsync::DiffError::Io(io) => DeltaError::Io(io),
        other => DeltaError::Signature(other.to_string()),
    }
}

/// Writes the delta that turns the signed base into what `input` yields, reading it with plain
/// reads [`DIFF_SEGMENT`] bytes at a time (fewer for a small `size_hint`). Returns how many
/// bytes were read.
///
/// `seen` gets every byte read, in order, exactly once, before its part of the delta is
/// written: a hash taken there covers exactly the data the delta encodes, however the file
/// changes meanwhile. Read failures are [`DeltaError::Read`].
///
/// The delta is the one a single pass over the whole input would give: a segment's unmatched
/// tail (at most a block) is carried into the next segment instead of being sent as a literal,
/// so a block that straddles two segments is still found.
pub fn diff_reader(
    signature: &Signature,
    input: &mut impl Read,
    out: &mut impl Write,
    size_hint: u64,
    seen: impl FnMut(&[u8]),
) -> Result<u64, DeltaError> {
    diff_segments(signature, input, out, size_hint, seen, DIFF_SEGMENT)
}

pub(crate) fn diff_segments(
    signature: &Signature,
    input: &mut impl Read,
    out: &mut impl Write,
    size_hint: u64,
    mut seen: impl FnMut(&[u8]),
    segment: usize,
) -> Result<u64, DeltaError> {
    let header = signature.serialized();
    let block = header
        .get(4..8)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(MIN_BLOCK, u32::from_be_bytes)
        .max(1) as usize;
    let index = signature.index();
    // Room for a carried tail (under a block) plus at least a block of new data each round.
    let len = (size_hint as usize)
        .saturating_add(1)
        .min(segment)
        .max(2 * block);
    let mut buf = vec![0u8; len];
    let mut carried = 0;
    let mut total = 0u64;
    // A copy is held until the next command, to join copies across segments.
    let mut copy = None;
    out.write_all(&DELTA_MAGIC.to_be_bytes())?;
    loop {
        let room = buf.get_mut(carried..).unwrap_or_default();
        let (n, eof) = fill(input, room).map_err(DeltaError::Read)?;
        let filled = carried + n;
        seen(buf.get(carried..filled).unwrap_or_default());
        total += n as u64;
        let data = buf.get(..filled).unwrap_or_default();
        let mut splice = Splice::new(&mut *out, data, &mut copy);
        fast_rsync::diff(&index, data, &mut splice).map_err(diff_error)?;
        let carry = splice.finish(eof, block)?;
        if eof {
            break;
        }
        buf.copy_within(filled - carry..filled, 0);
        carried = carry;
    }
    if let Some((offset, len)) = copy {
        write_copy(out, offset, len)?;
    }
    out.write_all(&[OP_END])?;
    Ok(total)
}

/// Reads until `buf` is full or the input ends; returns the count and whether it ended.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => return Ok((filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

/// Passes one segment's delta from fast_rsync on, minus its magic and end command, holding
/// back literals until the next copy: the literal at the very end is the segment's unmatched
/// tail, of which the last block's worth goes into the next segment.
struct Splice<'a, W: Write> {
    out: &'a mut W,
    data: &'a [u8],
    /// The last copy, not yet written: base offset and length.
    copy: &'a mut Option<(u64, u64)>,
    state: State,
    header: Vec<u8>,
    /// Where in `data` the next command's output starts.
    pos: usize,
    /// Start of the literal run held back (it ends at `pos`).
    held: Option<usize>,
}

impl<'a, W: Write> Splice<'a, W> {
    fn new(out: &'a mut W, data: &'a [u8], copy: &'a mut Option<(u64, u64)>) -> Self {
        Splice {
            out,
            data,
            copy,
            state: State::Magic,
            header: Vec::with_capacity(17),
            pos: 0,
            held: None,
        }
    }

    fn header_len(&self) -> usize {
        match self.state {
            State::Magic => 4,
            _ => match self.header.first() {
                Some(&op @ OP_LITERAL_N1..=OP_LITERAL_N8) => 1 + (1 << (op - OP_LITERAL_N1)),
                Some(&op @ OP_COPY_N1_N1..=OP_COPY_N8_N8) => {
                    let (a, b) = copy_widths(op);
                    1 + a + b
                }
                _ => 1,
            },
        }
    }

    fn command(&mut self) -> io::Result<()> {
        let header = std::mem::take(&mut self.header);
        if self.state == State::Magic {
            self.state = State::Command;
            return Ok(());
        }
        let (op, args) = header.split_first().unwrap_or((&OP_END, &[]));
        match *op {
            OP_END => self.state = State::Done,
            1..=OP_LITERAL_64 => self.literal(u64::from(*op)),
            OP_LITERAL_N1..=OP_LITERAL_N8 => self.literal(be_uint(args)),
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let (a, _) = copy_widths(*op);
                let (offset, len) = args.split_at(a.min(args.len()));
                let (offset, len) = (be_uint(offset), be_uint(len));
                self.flush_held(self.pos)?;
                match *self.copy {
                    Some((at, n)) if at.checked_add(n) == Some(offset) => {
                        *self.copy = Some((at, n + len))
                    }
                    queued => {
                        if let Some((at, n)) = queued {
                            write_copy(&mut *self.out, at, n)?;
                        }
                        *self.copy = Some((offset, len));
                    }
                }
                self.pos += len as usize;
            }
            other => {
                return Err(io::Error::other(format!(
                    "unexpected delta command 0x{other:02x}"
                )))
            }
        }
        Ok(())
    }

    fn literal(&mut self, len: u64) {
        self.held.get_or_insert(self.pos);
        self.state = State::Literal(len);
    }

    /// Sends the held literal up to `end`.
    fn flush_held(&mut self, end: usize) -> io::Result<()> {
        if let Some(start) = self.held.take() {
            let bytes = self.data.get(start..end).unwrap_or_default();
            if !bytes.is_empty() {
                if let Some((at, n)) = self.copy.take() {
                    write_copy(&mut *self.out, at, n)?;
                }
            }
            write_literal(&mut *self.out, bytes)?;
        }
        Ok(())
    }

    /// Ends the segment: sends the held literal, except (unless `last`) its last `block - 1`
    /// bytes, whose count is returned: they start the next segment.
    fn finish(mut self, last: bool, block: usize) -> Result<usize, DeltaError> {
        if self.state != State::Done || self.pos != self.data.len() {
            return Err(DeltaError::Delta(
                "the delta of a segment did not cover it".into(),
            ));
        }
        let start = self.held.unwrap_or(self.pos);
        let carry = if last {
            0
        } else {
            (self.pos - start).min(block.saturating_sub(1))
        };
        self.flush_held(self.pos - carry)?;
        Ok(carry)
    }
}

impl<W: Write> Write for Splice<'_, W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            match self.state {
                State::Done => return Err(io::Error::other("data after the end command")),
                State::Literal(remaining) => {
                    let take = remaining.min(buf.len() as u64);
                    buf = buf.get(take as usize..).unwrap_or_default();
                    self.pos += take as usize;
                    self.state = match remaining - take {
                        0 => State::Command,
                        left => State::Literal(left),
                    };
                }
                State::Magic | State::Command => {
                    let take = self
                        .header_len()
                        .saturating_sub(self.header.len())
                        .min(buf.len());
                    let (now, rest) = buf.split_at(take);
                    self.header.extend_from_slice(now);
                    buf = rest;
                    if self.header.len() == self.header_len() {
                        self.command()?;
                    }
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a copy command with the narrowest widths that hold its numbers.
fn write_copy(out: &mut impl Write, offset: u64, len: u64) -> io::Result<()> {
    let width = |v: u64| match v {
        0..=0xff => 0u8,
        0x100..=0xffff => 1,
        0x1_0000..=0xffff_ffff => 2,
        _ => 3,
    };
    let (a, b) = (width(offset), width(len));
    out.write_all(&[OP_COPY_N1_N1 + a * 4 + b])?;
    out.write_all(offset.to_be_bytes().get(8 - (1 << a)..).unwrap_or_default())?;
    out.write_all(len.to_be_bytes().get(8 - (1 << b)..).unwrap_or_default())
}

/// Writes a literal command and its bytes.
fn write_literal(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = bytes.len() as u64;
    match len {
        0 => return Ok(()),
        1..=64 => out.write_all(&[len as u8])?,
        65..=0xff => out.write_all(&[OP_LITERAL_N1, len as u8])?,
        0x100..=0xffff => {
            out.write_all(&[OP_LITERAL_N1 + 1])?;
            out.write_all(&(len as u16).to_be_bytes())?;
        }
        0x1_0000..=0xffff_ffff => {
            out.write_all(&[OP_LITERAL_N1 + 2])?;
            out.write_all(&(len as u32).to_be_bytes())?;
        }
        _ => {
            out.write_all(&[OP_LITERAL_N8])?;
            out.write_all(&len.to_be_bytes())?;
        }
    }
    out.write_all(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Magic,
    Command,
    Literal(u64),
    Done,
}

/// What a delta copies from: the receiver's old copy of the file.
pub trait Base {
    /// Its length; copies beyond it are refused before [`copy_to`](Self::copy_to) is called.
    fn base_len(&self) -> u64;
    /// Writes the `len` bytes at `offset` (within [`base_len`](Self::base_len)) to `out`.
    fn copy_to<W: Write + ?Sized>(&mut self, offset: u64, len: u64, out: &mut W) -> io::Result<()>;
}

impl Base for &[u8] {
    fn base_len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn copy_to<W: Write + ?Sized>(&mut self, offset: u64, len: u64, out: &mut W) -> io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset.saturating_add(len)).ok())
            .and_then(|(start, end)| self.get(start..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "copy outside the base"))?;
        out.write_all(range)
    }
}

/// A base read from an open file with positioned reads, a bounded piece at a time: never held
/// in memory whole, and a file truncated by someone else meanwhile is an error, not a crash (as
/// it would be through a memory map).
#[derive(Debug)]
pub struct FileBase {
    file: std::fs::File,
    len: u64,
    buf: Vec<u8>,
}

impl FileBase {
    /// The first `len` bytes of `file` (its size when opened).
    pub fn new(file: std::fs::File, len: u64) -> FileBase {
        FileBase {
            file,
            len,
            buf: Vec::new(),
        }
    }
}

impl Base for FileBase {
    fn base_len(&self) -> u64 {
        self.len
    }

    fn copy_to<W: Write + ?Sized>(
        &mut self,
        mut offset: u64,
        len: u64,
        out: &mut W,
    ) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        const PIECE: u64 = 256 << 10;
        let end = offset.saturating_add(len);
        while offset < end {
            let n = PIECE.min(end - offset) as usize;
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            let piece = self.buf.get_mut(..n).unwrap_or_default();
            self.file.read_exact_at(piece, offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(e.kind(), "the old copy shrank while it was read")
                } else {
                    e
                }
            })?;
            out.write_all(piece)?;
            offset += n as u64;
        }
        Ok(())
    }
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

    /// Feeds the next piece of the delta, against a base in memory.
    pub fn feed(
        &mut self,
        base: &[u8],
        data: &[u8],
        out: &mut impl Write,
    ) -> Result<(), DeltaError> {
        self.feed_from(&mut &*base, data, out)
    }

    /// Feeds the next piece of the delta.
    pub fn feed_from<B: Base>(
        &mut self,
        base: &mut B,
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

    fn run_header<B: Base>(
        &mut self,
        base: &mut B,
        out: &mut impl Write,
    ) -> Result<(), DeltaError> {
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
                offset
                    .checked_add(len)
                    .filter(|&end| len > 0 && end <= base.base_len())
                    .ok_or_else(|| {
                        DeltaError::Delta(format!(
                            "copy of {len} bytes at offset {offset} is outside the {}-byte base",
                            base.base_len()
                        ))
                    })?;
                base.copy_to(offset, len, out)?;
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

    #[test]
    fn a_signature_read_in_pieces_is_the_signature_of_the_whole() {
        // Sizes below, at and across the piece size, and with a short last block.
        for len in [0, 1000, SIGNATURE_PIECE as usize, (9 << 20) + 3] {
            let base = random(len, 3);
            let pieces = signature_of(&mut &base[..], len as u64).unwrap();
            let whole = Signature::calculate(
                &base,
                SignatureOptions {
                    block_size: block_size(len as u64),
                    crypto_hash_size: STRONG_HASH_BYTES,
                },
            )
            .into_serialized();
            assert!(pieces == whole, "length {len}");
        }
        // A base shorter than it claimed is an error.
        let base = random(1 << 20, 4);
        assert!(signature_of(&mut &base[..], 2 << 20).is_err());
    }

    #[test]
    fn a_file_base_truncated_while_patching_is_an_error_not_a_crash() {
        let old = random(2 << 20, 5);
        let mut new = old.clone();
        new[1 << 20] ^= 1;
        let delta = delta_of(&old, &new);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        std::fs::write(&path, &old).unwrap();
        // Patching from the file gives the new contents.
        let mut base = FileBase::new(std::fs::File::open(&path).unwrap(), old.len() as u64);
        let mut out = Vec::new();
        let mut p = Patcher::new();
        p.feed_from(&mut base, &delta, &mut out).unwrap();
        p.finish().unwrap();
        assert!(out == new);
        // Someone truncates the base after it was opened: a clean error.
        let mut base = FileBase::new(std::fs::File::open(&path).unwrap(), old.len() as u64);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        let err = Patcher::new()
            .feed_from(&mut base, &delta, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
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

    fn delta_by_segments(base: &[u8], new: &[u8], segment: usize) -> (Vec<u8>, Vec<u8>) {
        let sig = parse_signature(signature(base)).unwrap();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let total = diff_segments(
            &sig,
            &mut &new[..],
            &mut out,
            new.len() as u64,
            |d| seen.extend_from_slice(d),
            segment,
        )
        .unwrap();
        assert_eq!(total, new.len() as u64);
        (out, seen)
    }

    #[test]
    fn a_segmented_delta_is_as_small_as_a_whole_one() {
        // An insertion near the start shifts every block off the segment boundaries: the
        // carried tail must still find the blocks that straddle them.
        let base = random(3 << 20, 8);
        let mut new = base[..1000].to_vec();
        new.extend_from_slice(&random(777, 9));
        new.extend_from_slice(&base[1000..]);
        let mut whole = Vec::new();
        diff(
            &parse_signature(signature(&base)).unwrap(),
            &new,
            &mut whole,
        )
        .unwrap();
        for segment in [64 << 10, 100_003, 1 << 20, DIFF_SEGMENT] {
            let (delta, seen) = delta_by_segments(&base, &new, segment);
            assert_eq!(seen, new, "every byte seen once, in order");
            let (out, p) = patch_in_pieces(&base, &delta, 4096).unwrap();
            assert_eq!(out, new, "segment {segment}");
            let block = block_size(base.len() as u64) as u64;
            assert!(
                p.literal_bytes() <= 777 + 2 * block,
                "segment {segment}: {} literal bytes",
                p.literal_bytes()
            );
            assert!(
                delta.len() <= whole.len() + 16,
                "{} vs {}",
                delta.len(),
                whole.len()
            );
        }
    }

    #[test]
    fn a_short_read_ends_the_delta_where_the_data_ends() {
        // A source truncated while read: the delta covers what was read, no more, no panic.
        let base = random(200_000, 10);
        let (delta, seen) = delta_by_segments(&base, &base[..50_000], 8192);
        assert_eq!(seen.len(), 50_000);
        let (out, _) = patch_in_pieces(&base, &delta, 999).unwrap();
        assert_eq!(out, &base[..50_000]);
        let (delta, _) = delta_by_segments(&base, &[], 8192);
        assert_eq!(patch_in_pieces(&base, &delta, 1).unwrap().0, b"");
    }

    #[test]
    fn signatures_with_absurd_block_counts_are_refused() {
        // 100,000 blocks of 512 bytes: a 50 MB base would have 3,536-byte blocks.
        let mut sig = vec![0x72, 0x73, 0x01, 0x36, 0, 0, 2, 0, 0, 0, 0, 8];
        sig.resize(12 + 100_000 * 12, 0);
        let err = parse_signature(sig).unwrap_err().to_string();
        assert!(err.contains("not a signature this protocol makes"), "{err}");
        // A BLAKE2 signature: fast_rsync parses it but cannot diff against it.
        let mut blake2 = signature(&random(5000, 12));
        blake2[3] = 0x37;
        let err = parse_signature(blake2).unwrap_err().to_string();
        assert!(err.contains("not an MD4 signature"), "{err}");
        // An unaligned block size in range.
        let mut odd = signature(&random(5000, 11));
        odd[4..8].copy_from_slice(&513u32.to_be_bytes());
        assert!(parse_signature(odd).is_err());
        // Every size this side makes is accepted.
        for len in [0usize, 1, 511, 512, 513, 70_000, 300_000] {
            parse_signature(signature(&random(len, len as u64))).unwrap();
        }
    }

    proptest! {
        #[test]
        fn segmented_delta_reproduces_any_edit(
            base in proptest::collection::vec(any::<u8>(), 0..20_000),
            insert in proptest::collection::vec(any::<u8>(), 0..2000),
            at in 0usize..20_000,
            cut in 0usize..2000,
            segment in 1usize..5000,
        ) {
            let at = at.min(base.len());
            let mut new = base[..at].to_vec();
            new.extend_from_slice(&insert);
            new.extend_from_slice(&base[(at + cut).min(base.len())..]);
            let (delta, seen) = delta_by_segments(&base, &new, segment);
            prop_assert_eq!(&seen, &new);
            let (out, _) = patch_in_pieces(&base, &delta, 333).unwrap();
            prop_assert_eq!(out, new);
        }

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
