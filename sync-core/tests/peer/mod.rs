//! A scripted sender's end of a session with the real receiver (`serve`) on a pair of pipes,
//! shared by the tests that play the sender by hand.

use std::io::{PipeReader, PipeWriter};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::thread::JoinHandle;

use sync_core::protocol::{
    FrameReader, FrameWriter, Hello, Message, SessionOptions, PROTOCOL_VERSION,
};

/// Our ends of the pipes, and the receiver's thread.
pub struct Peer {
    pub to: FrameWriter<PipeWriter>,
    pub from: FrameReader<PipeReader>,
    pub receiver: JoinHandle<sync_core::Result<()>>,
}

/// Starts a receiver for `dest` and completes the handshake as a sender would.
pub fn connect(dest: &Path, options: SessionOptions) -> Peer {
    let (a_r, a_w) = std::io::pipe().unwrap();
    let (b_r, b_w) = std::io::pipe().unwrap();
    let receiver = std::thread::spawn(move || sync_core::serve(a_r, b_w));
    let mut to = FrameWriter::new(a_w);
    let mut from = FrameReader::new(b_r);
    to.write_magic().unwrap();
    to.send(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        max_frame: 1 << 20,
        dest: dest.as_os_str().as_bytes().to_vec(),
        options,
        window: 4,
    }))
    .unwrap();
    to.send(&Message::RulesEnd).unwrap();
    to.flush().unwrap();
    from.read_magic().unwrap();
    assert!(matches!(from.expect().unwrap(), Message::Hello(_)));
    Peer { to, from, receiver }
}
