//! The simulated WAN of `--wan`: the test-support proxy between the client and sshd, and a
//! measurement of the link it makes, so that the report says what the scenarios ran over.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use azsync_test_support::{Proxy, ProxyConfig};

use crate::report::LinkCheck;

/// The proxy settings for a round trip of `rtt_ms` and `mbit` megabits per second each way.
pub fn config(rtt_ms: u64, mbit: u64) -> ProxyConfig {
    ProxyConfig::wan(Duration::from_millis(rtt_ms), mbit)
}

/// Measures a proxy of `config` to a local sink: the median of five 1-byte round trips, and one
/// bulk transfer of about two seconds' worth at the configured rate (16–128 MiB).
pub fn check(config: &ProxyConfig) -> Result<LinkCheck> {
    let bytes = config
        .bandwidth_bytes_per_sec
        .map_or(128 << 20, |rate| (2 * rate).clamp(16 << 20, 128 << 20));
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the link check's sink")?;
    let addr: SocketAddr = listener.local_addr()?;
    // The sink echoes the pings, then swallows the bulk data and answers one byte at its end.
    let sink = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut byte = [0u8; 1];
        for _ in 0..5 {
            s.read_exact(&mut byte)?;
            s.write_all(&byte)?;
        }
        let mut buf = vec![0u8; 1 << 20];
        while s.read(&mut buf)? > 0 {}
        s.write_all(b"k")?;
        Ok(())
    });
    let proxy = Proxy::start(addr, config.clone()).context("starting the link check's proxy")?;
    let mut client = TcpStream::connect(proxy.addr())?;
    client.set_nodelay(true)?;
    let mut rtts = Vec::new();
    let mut byte = [0u8; 1];
    for i in 0..5u8 {
        let start = Instant::now();
        client.write_all(&[i])?;
        client.read_exact(&mut byte)?;
        rtts.push(start.elapsed().as_secs_f64());
    }
    let chunk = vec![0x5a; 1 << 20];
    let start = Instant::now();
    for _ in 0..bytes >> 20 {
        client.write_all(&chunk)?;
    }
    client.shutdown(Shutdown::Write)?;
    client.read_exact(&mut byte)?;
    // Minus the last byte's trip back.
    let elapsed = start
        .elapsed()
        .saturating_sub(config.delay_each_way)
        .max(Duration::from_millis(1));
    sink.join()
        .map_err(|_| anyhow::anyhow!("the link check's sink panicked"))?
        .context("the link check's sink")?;
    Ok(LinkCheck {
        rtt: Duration::from_secs_f64(crate::report::median(&rtts)),
        bytes: bytes >> 20 << 20,
        elapsed,
    })
}
