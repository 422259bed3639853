//! A TCP proxy on 127.0.0.1 that plays a slow or broken network between a client and a server:
//! a fixed delay each way, a bandwidth cap, and a cut after a number of client→server bytes.
//!
//! ```no_run
//! use std::time::Duration;
//! use azsync_test_support::proxy::{Proxy, ProxyConfig};
//!
//! # fn demo(sshd_port: u16) -> std::io::Result<()> {
//! let target = ([127, 0, 0, 1], sshd_port).into();
//! // 40 ms round trip, 100 Mbit/s each way.
//! let proxy = Proxy::start(target, ProxyConfig::wan(Duration::from_millis(40), 100))?;
//! // ... point the client at 127.0.0.1:proxy.port() ...
//! println!("{} bytes up", proxy.stats().client_to_server);
//! # Ok(()) }
//! ```
//!
//! Threads and `std::net` only: one accept thread, and per connection one pump thread per
//! direction. A pump reads whatever its source has, stamps each chunk with the time it may leave
//! (`now + delay_each_way`) and queues it; it writes a chunk once that time has passed and the
//! direction's token bucket allows it. Reading goes on while chunks wait, so the delay is latency
//! only: a 40 ms round trip does not also cap throughput the way a stop-and-wait relay would
//! (what bounds a transfer is then the endpoints' own windows, as on a real link).
//!
//! The bandwidth cap is one token bucket per direction, shared by all connections, like one
//! link. A cut (`cut_after_bytes`) forwards exactly that many client→server bytes on a
//! connection, then shuts both sockets down (both peers see end of file; data still queued for
//! the client is dropped). [`Proxy::stop`] and `Drop` close every connection and join every
//! thread.
//!
//! Tests wait for what the proxy did with [`Proxy::wait_until`] (a condition variable, no
//! polling) rather than sleeping.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the simulated network does.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Added to every byte's trip in each direction (a round trip gains twice this).
    pub delay_each_way: Duration,
    /// Cap of each direction, shared by all connections; `None`: as fast as the machine goes.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// On each connection, forward exactly this many client→server bytes, then close both sides.
    /// Applies to connections accepted while it is set (see [`Proxy::set_cut_after_bytes`]).
    pub cut_after_bytes: Option<u64>,
    /// Most bytes one direction of one connection holds in its delay queue before it stops
    /// reading (and the sender feels back-pressure). Must cover delay × bandwidth to keep a
    /// link full.
    pub max_queued_bytes: usize,
}

impl Default for ProxyConfig {
    /// A transparent proxy: no delay, no cap, no cut, 16 MiB of queue per direction.
    fn default() -> ProxyConfig {
        ProxyConfig {
            delay_each_way: Duration::ZERO,
            bandwidth_bytes_per_sec: None,
            cut_after_bytes: None,
            max_queued_bytes: 16 << 20,
        }
    }
}

impl ProxyConfig {
    /// A wide-area link: `rtt` round trip (half each way) and `mbit` megabits (10^6) per second
    /// each way.
    pub fn wan(rtt: Duration, mbit: u64) -> ProxyConfig {
        ProxyConfig {
            delay_each_way: rtt / 2,
            bandwidth_bytes_per_sec: Some(mbit * 1_000_000 / 8),
            ..ProxyConfig::default()
        }
    }
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted (and connected to the target).
    pub connections: u64,
    /// Connections whose both directions have finished.
    pub closed: u64,
    /// Bytes written to the server, all connections.
    pub client_to_server: u64,
    /// Bytes written to the client, all connections.
    pub server_to_client: u64,
    /// Connections closed by `cut_after_bytes` or [`Proxy::cut_all`].
    pub cuts: u64,
}

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    config: ProxyConfig,
    cut_after: Mutex<Option<u64>>,
    stopping: AtomicBool,
    stats: Mutex<ProxyStats>,
    changed: Condvar,
    /// One bucket per direction: [client→server, server→client].
    buckets: [Option<Mutex<Bucket>>; 2],
    conns: Mutex<Vec<Arc<Conn>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// The two sockets of one proxied connection, for shutting both down from anywhere.
#[derive(Debug)]
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Pumps still running (2, then 1, then 0).
    live: AtomicU64,
    cut: AtomicBool,
}

impl Conn {
    fn shut_both(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub fn start(target: SocketAddr, config: ProxyConfig) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let bucket = || {
            config
                .bandwidth_bytes_per_sec
                .map(|rate| Mutex::new(Bucket::new(rate)))
        };
        let shared = Arc::new(Shared {
            target,
            cut_after: Mutex::new(config.cut_after_bytes),
            stopping: AtomicBool::new(false),
            stats: Mutex::new(ProxyStats::default()),
            changed: Condvar::new(),
            buckets: [bucket(), bucket()],
            conns: Mutex::new(Vec::new()),
            pumps: Mutex::new(Vec::new()),
            config,
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(Proxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The listening port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        *lock(&self.shared.stats)
    }

    /// Waits until `done` holds for the counters, or `timeout` passes (then `None`). The
    /// timeout only keeps a broken test from hanging; pick it generously.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&ProxyStats) -> bool,
    ) -> Option<ProxyStats> {
        let stats = lock(&self.shared.stats);
        let (stats, result) = self
            .shared
            .changed
            .wait_timeout_while(stats, timeout, |s| !done(s))
            .unwrap_or_else(|e| e.into_inner());
        (!result.timed_out()).then_some(*stats)
    }

    /// Sets the cut for connections accepted from now on (`None`: no cut).
    pub fn set_cut_after_bytes(&self, bytes: Option<u64>) {
        *lock(&self.shared.cut_after) = bytes;
    }

    /// Cuts every open connection now, as a cut after N bytes would.
    pub fn cut_all(&self) {
        for conn in lock(&self.shared.conns).iter() {
            cut(&self.shared, conn);
        }
    }

    /// Stops listening, closes every connection and joins every thread. Idempotent.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept thread, which sees `stopping` and leaves.
        let _ = TcpStream::connect(self.addr);
        let _ = accept.join();
        for conn in lock(&self.shared.conns).drain(..) {
            conn.shut_both();
        }
        let pumps: Vec<_> = lock(&self.shared.pumps).drain(..).collect();
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(shared: &Shared, f: impl FnOnce(&mut ProxyStats)) {
    f(&mut lock(&shared.stats));
    shared.changed.notify_all();
}

fn cut(shared: &Shared, conn: &Conn) {
    if !conn.cut.swap(true, Ordering::SeqCst) {
        bump(shared, |s| s.cuts += 1);
    }
    conn.shut_both();
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(shared.target) else {
            // The client sees the connection closed, as with a refused port behind a NAT.
            continue;
        };
        if let Err(e) = start_pumps(&shared, client, server) {
            eprintln!("proxy: cannot start a connection's threads: {e}");
        }
    }
}

fn start_pumps(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) -> io::Result<()> {
    // The proxy must not add Nagle's wait to the endpoints' own.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let conn = Arc::new(Conn {
        client: client.try_clone()?,
        server: server.try_clone()?,
        live: AtomicU64::new(2),
        cut: AtomicBool::new(false),
    });
    let cut_after = *lock(&shared.cut_after);
    let up = Pump {
        from: client.try_clone()?,
        to: server.try_clone()?,
        upstream: true,
        cut_after,
        shared: shared.clone(),
        conn: conn.clone(),
    };
    let down = Pump {
        from: server,
        to: client,
        upstream: false,
        cut_after: None,
        shared: shared.clone(),
        conn: conn.clone(),
    };
    lock(&shared.conns).push(conn);
    bump(shared, |s| s.connections += 1);
    let mut pumps = lock(&shared.pumps);
    pumps.retain(|p| !p.is_finished());
    for (name, pump) in [("proxy-up", up), ("proxy-down", down)] {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || pump.run())?;
        pumps.push(handle);
    }
    Ok(())
}

/// A token bucket that may go into debt by one write: a write goes out whole once the balance is
/// positive, and the next waits until the debt is paid. The average rate is exact and a burst is
/// at most one read buffer plus `BURST`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

/// How many bytes an idle link may send at once (its tokens' ceiling).
const BURST: f64 = 64.0 * 1024.0;

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate: rate.max(1) as f64,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(BURST);
        self.last = now;
    }

    /// `None` if `bytes` may go now (and takes them), or when to ask again.
    fn take(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens > 0.0 {
            self.tokens -= bytes as f64;
            None
        } else {
            Some(now + Duration::from_secs_f64(-self.tokens / self.rate + 1e-4))
        }
    }
}

/// A chunk read from one side, and when it may be written to the other.
#[derive(Debug)]
struct Chunk {
    due: Instant,
    data: Vec<u8>,
    written: usize,
}

const READ_SIZE: usize = 64 * 1024;

/// One direction of one connection.
#[derive(Debug)]
struct Pump {
    from: TcpStream,
    to: TcpStream,
    /// Client→server (counted for cuts).
    upstream: bool,
    cut_after: Option<u64>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

/// How a pump ended.
enum End {
    /// The source closed cleanly and everything was delivered: pass the half-close on.
    Eof,
    /// The cut budget was delivered.
    Cut,
    /// A socket failed or the proxy is stopping: close the whole connection.
    Abort,
}

impl Pump {
    fn run(self) {
        let end = self.pump();
        match end {
            End::Eof => {
                let _ = self.to.shutdown(Shutdown::Write);
            }
            End::Cut => cut(&self.shared, &self.conn),
            End::Abort => self.conn.shut_both(),
        }
        if self.conn.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock(&self.shared.conns).retain(|c| !Arc::ptr_eq(c, &self.conn));
            bump(&self.shared, |s| s.closed += 1);
        }
    }

    fn pump(&self) -> End {
        let config = &self.shared.config;
        let bucket = self.shared.buckets[usize::from(!self.upstream)].as_ref();
        let mut queue: VecDeque<Chunk> = VecDeque::new();
        let mut queued = 0usize;
        let mut budget = self.cut_after;
        let mut eof = false;
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return End::Abort;
            }
            // Write what is due, as far as the bucket allows; `wake` is when to try again.
            let mut wake = None;
            while let Some(chunk) = queue.front_mut() {
                let now = Instant::now();
                if chunk.due > now {
                    wake = Some(chunk.due);
                    break;
                }
                let rest = &chunk.data[chunk.written..];
                if let Some(bucket) = bucket {
                    if let Some(at) = lock(bucket).take(rest.len(), now) {
                        wake = Some(at);
                        break;
                    }
                }
                if (&self.to).write_all(rest).is_err() {
                    return End::Abort;
                }
                let n = rest.len();
                chunk.written += n;
                queued -= n;
                let upstream = self.upstream;
                bump(&self.shared, |s| {
                    if upstream {
                        s.client_to_server += n as u64;
                    } else {
                        s.server_to_client += n as u64;
                    }
                });
                queue.pop_front();
            }
            if queue.is_empty() {
                if budget == Some(0) {
                    return End::Cut;
                }
                if eof {
                    return End::Eof;
                }
            }
            // Read more unless the source is done, the cut budget is spent or the queue is full:
            // then only wait for the next write.
            let reading = !eof && budget != Some(0) && queued < config.max_queued_bytes;
            if !reading {
                match wake {
                    Some(at) => std::thread::sleep(at.saturating_duration_since(Instant::now())),
                    // Unreachable (a queue that blocks reading holds a chunk), but never spin.
                    None => return End::Abort,
                }
                continue;
            }
            match wait_readable(&self.from, wake) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(_) => return End::Abort,
            }
            let want = match budget {
                Some(left) => buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
                None => buf.len(),
            };
            match (&self.from).read(&mut buf[..want]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    queue.push_back(Chunk {
                        due: Instant::now() + config.delay_each_way,
                        data: buf[..n].to_vec(),
                        written: 0,
                    });
                    queued += n;
                    if let Some(left) = budget.as_mut() {
                        *left -= n as u64;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(_) => return End::Abort,
            }
        }
    }
}

/// Waits until `stream` has something to read (or end of file, or an error): `Ok(true)`; or
/// until `deadline` passes: `Ok(false)`. Without a deadline, waits as long as it takes.
fn wait_readable(stream: &TcpStream, deadline: Option<Instant>) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = deadline.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        }
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd, a valid (or null) timespec, no signal mask.
    let n = unsafe { libc::ppoll(&mut fd, 1, timeout_ptr, std::ptr::null()) };
    match n {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Generous: only keeps a broken test from hanging.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    /// A server that reads everything from one client, then writes `reply` and closes.
    fn one_shot_server(reply: Vec<u8>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&reply).unwrap();
            got
        });
        (addr, handle)
    }

    #[test]
    fn bytes_pass_unchanged_both_ways() {
        let up = pattern(3 << 20, 7);
        let down = pattern(2 << 20, 99);
        let (addr, server) = one_shot_server(down.clone());
        let config = ProxyConfig {
            delay_each_way: Duration::from_millis(2),
            bandwidth_bytes_per_sec: Some(200 << 20),
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(addr, config).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        client.write_all(&up).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got == down, "server→client bytes changed");
        assert!(server.join().unwrap() == up, "client→server bytes changed");
        let stats = proxy
            .wait_until(PATIENCE, |s| s.closed == 1)
            .expect("the connection closes");
        assert_eq!(stats.client_to_server, up.len() as u64);
        assert_eq!(stats.server_to_client, down.len() as u64);
        assert_eq!((stats.connections, stats.cuts), (1, 0));
    }

    #[test]
    fn cut_after_exactly_n_client_bytes() {
        const N: u64 = 100_001;
        let (addr, server) = one_shot_server(Vec::new());
        let config = ProxyConfig {
            cut_after_bytes: Some(N),
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(addr, config).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        // More than N, written in pieces that straddle N; writes after the cut may fail.
        let data = pattern(1 << 20, 3);
        for piece in data.chunks(7_000) {
            if client.write_all(piece).is_err() {
                break;
            }
        }
        let got = server.join().unwrap();
        assert_eq!(got.len() as u64, N);
        assert!(got[..] == data[..N as usize]);
        // The client's side is closed too: it reads end of file (or a reset), not a hang.
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
        let stats = proxy.wait_until(PATIENCE, |s| s.closed == 1).unwrap();
        assert_eq!((stats.cuts, stats.client_to_server), (1, N));
    }

    #[test]
    fn cut_applies_per_connection_and_can_be_changed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut lens = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                lens.push(got.len());
            }
            lens
        });
        let config = ProxyConfig {
            cut_after_bytes: Some(10),
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(addr, config).unwrap();
        let mut first = TcpStream::connect(proxy.addr()).unwrap();
        let _ = first.write_all(&[1; 100]);
        proxy.wait_until(PATIENCE, |s| s.cuts == 1).unwrap();
        proxy.set_cut_after_bytes(None);
        let mut second = TcpStream::connect(proxy.addr()).unwrap();
        second.write_all(&[2; 100]).unwrap();
        second.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.join().unwrap(), vec![10, 100]);
    }

    #[test]
    fn delay_is_at_least_the_configured_delay() {
        const DELAY: Duration = Duration::from_millis(30);
        // An echo server that stamps when each byte arrived.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut arrivals = Vec::new();
            let mut byte = [0u8; 1];
            while s.read(&mut byte).unwrap() == 1 {
                arrivals.push(Instant::now());
                s.write_all(&byte).unwrap();
            }
            arrivals
        });
        let config = ProxyConfig {
            delay_each_way: DELAY,
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(addr, config).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        let mut sent = Vec::new();
        let mut echoed = Vec::new();
        for i in 0..3u8 {
            sent.push(Instant::now());
            client.write_all(&[i]).unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).unwrap();
            echoed.push(Instant::now());
            assert_eq!(byte[0], i);
        }
        client.shutdown(Shutdown::Write).unwrap();
        let arrivals = server.join().unwrap();
        for i in 0..3 {
            assert!(arrivals[i] - sent[i] >= DELAY, "one way, byte {i}");
            assert!(echoed[i] - sent[i] >= 2 * DELAY, "round trip, byte {i}");
        }
    }

    #[test]
    fn stop_closes_open_connections() {
        // A server that holds its connection open until the proxy closes it.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let mut proxy = Proxy::start(addr, ProxyConfig::default()).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        client.write_all(b"hello").unwrap();
        proxy
            .wait_until(PATIENCE, |s| s.client_to_server == 5)
            .unwrap();
        proxy.stop();
        assert_eq!(server.join().unwrap(), b"hello");
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
        // New connections are refused or closed at once.
        if let Ok(mut late) = TcpStream::connect(proxy.addr()) {
            let _ = late.read_to_end(&mut rest);
            assert!(rest.is_empty());
        }
        proxy.stop();
    }

    #[test]
    fn bucket_keeps_the_average_rate() {
        // Pure arithmetic on made-up instants: 1,000 B/s, 250-byte writes.
        let t0 = Instant::now();
        let mut bucket = Bucket::new(1_000);
        bucket.last = t0;
        bucket.tokens = 1.0;
        let mut now = t0;
        let mut sent = 0;
        while sent < 10_000 {
            match bucket.take(250, now) {
                None => sent += 250,
                Some(at) => now = at,
            }
        }
        let secs = (now - t0).as_secs_f64();
        assert!(
            (9.0..10.5).contains(&secs),
            "{secs} s for 10,000 B at 1,000 B/s"
        );
    }
}
