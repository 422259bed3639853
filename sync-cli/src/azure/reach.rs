//! Reaching a VM over SSH: its address and port, waiting for a new one to accept logins, and
//! waiting for its cloud-init to finish.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sync_core::ssh::{HostKeyPolicy, SshOptions, SshSession, SshTarget};

use super::model::Vm;
use crate::config::Settings;

/// How to log in to the VMs: the configured key (when it exists; else ssh-agent and the usual
/// `~/.ssh/id_*` keys, as OpenSSH would), known_hosts in the user's home, new host keys recorded
/// (a new VM has a new key), changed ones refused.
pub fn ssh_options(settings: &Settings) -> SshOptions {
    SshOptions {
        keys: Some(settings.ssh_key.clone())
            .filter(|k| k.is_file())
            .into_iter()
            .collect(),
        policy: HostKeyPolicy::AcceptNew,
        ..SshOptions::default()
    }
}

/// Where a VM listens for SSH: `--ssh-port`, else its `azsync-ssh-port` tag, else the
/// `ssh_port` setting, else 22.
pub fn ssh_port(settings: &Settings, vm: Option<&Vm>) -> anyhow::Result<u16> {
    if let Some(port) = settings.ssh_port_flag {
        return Ok(port);
    }
    if let Some(port) = vm.map(Vm::ssh_port_tag).transpose()?.flatten() {
        return Ok(port);
    }
    Ok(settings.ssh_port_file.unwrap_or(22))
}

/// The SSH target of a VM that must be running with a public IP; the error says what to do.
pub fn vm_target(settings: &Settings, vm: &Vm) -> anyhow::Result<SshTarget> {
    if !vm.is_running() {
        bail!(
            "VM {} is not running ({}): start it with `azsync vm start {}`",
            vm.name,
            vm.power_state.as_deref().unwrap_or("power state unknown"),
            vm.name
        );
    }
    let Some(ip) = vm.public_ip() else {
        bail!("VM {} has no public IP address", vm.name);
    };
    Ok(SshTarget {
        user: settings.ssh_user.clone(),
        host: ip.to_string(),
        port: ssh_port(settings, Some(vm))?,
    })
}

/// Backoff between polls: short at first (a VM is often up sooner than feared), then no more
/// than every 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Waits until `target` accepts a TCP connection and then a real login (sshd on a new VM
/// answers before the key is installed), printing a progress line on stderr now and then.
pub fn wait_for_ssh(
    label: &str,
    target: &SshTarget,
    options: &SshOptions,
    timeout: Duration,
) -> anyhow::Result<SshSession> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_error;
    let mut next_note = started;
    let mut attempt = 0;
    eprintln!("azsync: {label}: waiting for SSH on {target}");
    loop {
        let addrs: Vec<_> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("{label}: cannot resolve {}", target.host))?
            .collect();
        let tcp = addrs
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).ok());
        if tcp.is_some() {
            let mut options = options.clone();
            options.connect_timeout = Duration::from_secs(15);
            match SshSession::connect(target, &options) {
                Ok(session) => {
                    if let Some(line) = session.added_host_key() {
                        eprintln!("azsync: {label}: {line}");
                    }
                    eprintln!(
                        "azsync: {label}: SSH is up after {}s",
                        started.elapsed().as_secs()
                    );
                    return Ok(session);
                }
                Err(e) => last_error = e.to_string(),
            }
        } else {
            last_error = format!("nothing accepts TCP connections on port {}", target.port);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "{label}: no SSH login to {target} within {}s: {last_error}",
                timeout.as_secs()
            );
        }
        if now >= next_note {
            if attempt > 0 {
                eprintln!(
                    "azsync: {label}: still waiting for SSH ({}s): {last_error}",
                    started.elapsed().as_secs()
                );
            }
            next_note = now + Duration::from_secs(15);
        }
        std::thread::sleep(backoff(attempt).min(deadline.saturating_duration_since(now)));
        attempt += 1;
    }
}

/// What `cloud-init status` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudInit {
    /// Still running (or not started).
    Running,
    /// Finished.
    Done,
    /// Finished with recoverable errors (newer cloud-init: `status: done` with exit status 2,
    /// or `status: degraded done`).
    Degraded,
    /// Failed.
    Error(String),
    /// The VM has no cloud-init.
    Absent,
}

/// Reads one `cloud-init status` answer.
pub fn parse_cloud_init(status: Option<u32>, stdout: &str, stderr: &str) -> CloudInit {
    if status == Some(127) {
        return CloudInit::Absent;
    }
    let word = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("status:"))
        .map(str::trim)
        .unwrap_or("");
    match word {
        "done" if status == Some(2) => CloudInit::Degraded,
        "done" => CloudInit::Done,
        "degraded done" => CloudInit::Degraded,
        "running" | "not started" | "not run" | "" if status != Some(1) => CloudInit::Running,
        _ => CloudInit::Error(
            format!("{} {}", stdout.trim(), stderr.trim())
                .trim()
                .to_string(),
        ),
    }
}

/// Polls `cloud-init status` until it reports done, an error, or the deadline passes.
pub fn wait_for_cloud_init(
    label: &str,
    session: &SshSession,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut attempt = 0;
    let mut said = false;
    loop {
        let out = session
            .run("cloud-init status", None)
            .with_context(|| format!("{label}: cannot run `cloud-init status`"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match parse_cloud_init(out.status, &stdout, &stderr) {
            CloudInit::Done => {
                eprintln!("azsync: {label}: cloud-init is done");
                return Ok(());
            }
            CloudInit::Degraded => {
                eprintln!(
                    "azsync: {label}: cloud-init finished with recoverable errors \
                     (see /var/log/cloud-init-output.log on the VM)"
                );
                return Ok(());
            }
            CloudInit::Absent => {
                eprintln!("azsync: {label}: no cloud-init on the VM; not waiting for it");
                return Ok(());
            }
            CloudInit::Error(text) => bail!(
                "{label}: cloud-init failed ({text}); see /var/log/cloud-init-output.log on \
                 the VM"
            ),
            CloudInit::Running => {}
        }
        if !said {
            eprintln!("azsync: {label}: waiting for cloud-init to install the tools");
            said = true;
        }
        if started.elapsed() >= timeout {
            bail!(
                "{label}: cloud-init still running after {}s (`cloud-init status` on the VM \
                 says when it ends)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(backoff(attempt).min(timeout.saturating_sub(started.elapsed())));
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_answers() {
        assert_eq!(
            parse_cloud_init(Some(0), "status: done\n", ""),
            CloudInit::Done
        );
        assert_eq!(
            parse_cloud_init(Some(0), "\nstatus: running\n", ""),
            CloudInit::Running
        );
        assert_eq!(
            parse_cloud_init(Some(2), "status: done\n", ""),
            CloudInit::Degraded
        );
        assert_eq!(
            parse_cloud_init(Some(0), "status: degraded done\n", ""),
            CloudInit::Degraded
        );
        assert_eq!(
            parse_cloud_init(Some(1), "status: error\n", ""),
            CloudInit::Error("status: error".into())
        );
        assert_eq!(
            parse_cloud_init(Some(127), "", "not found"),
            CloudInit::Absent
        );
    }

    #[test]
    fn backoff_starts_short_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }
}
