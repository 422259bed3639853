//! `azsync sync SRC DEST`.

use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::Context;
use sync_core::ssh::{SshOptions, SshTarget};
use sync_core::{AgentSource, RemoteShell, SyncBuilder, SystemSsh, Transport};

use crate::cli::{HostKeyPolicy, SshArgs, SyncArgs};
use crate::location::{Location, RemoteLocation};
use crate::output::{Output, Style};
use crate::{EXIT_PARTIAL, EXIT_USAGE};

pub fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the azsync executable")?;
    let (dest, transport) = match Location::parse(&args.dest) {
        Err(message) => {
            eprintln!("azsync: error: invalid destination {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Ok(Location::Local(_)) if args.ssh.sftp => {
            eprintln!("azsync: error: --sftp needs a remote destination ([user@]host:path)");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Ok(Location::Local(path)) => {
            // The local destination is served by our own agent in a child process, so a local
            // sync runs exactly the protocol an SSH sync carries.
            let mut agent = Command::new(&exe);
            agent.args(["agent", "--stdio"]);
            (path, Transport::Agent(agent))
        }
        Ok(Location::Remote(remote)) => {
            let agent = match &args.ssh.agent_path {
                Some(path) => AgentSource::Installed(path.clone()),
                None => AgentSource::Deploy(exe.clone()),
            };
            let transport = remote_transport(&remote, &args.ssh, agent)?;
            (remote.path.into(), transport)
        }
    };

    let style = Style::choose(args.json, args.no_progress);
    let output = Arc::new(Output::new(style, args.itemize_changes || args.dry_run));
    let builder = SyncBuilder::new(&args.src, dest)
        .delete(args.delete)
        .delete_excluded(args.delete_excluded)
        .checksum(args.checksum)
        .fsync(args.fsync)
        .compress(match (args.compress, args.compress_level) {
            (_, Some(level)) => Some(level),
            (true, None) => Some(sync_core::DEFAULT_COMPRESS_LEVEL),
            (false, None) => None,
        })
        .dry_run(args.dry_run)
        .itemize(args.itemize_changes)
        .allow_secrets(args.allow_secrets)
        .safe_links(args.safe_links)
        .scan_secrets(args.scan_secrets)
        .transport(transport)
        .progress(output.clone());
    let builder = args
        .exclude
        .iter()
        .fold(builder, |b, p| b.exclude(p.clone()));
    let builder = args
        .exclude_from
        .iter()
        .fold(builder, |b, f| b.exclude_from(f.clone()));

    let started = std::time::Instant::now();
    let result = builder.run();
    output.finish_progress();
    let report = result?;
    output.report(&report, started.elapsed())?;
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}

/// The transport to a remote destination.
fn remote_transport(
    remote: &RemoteLocation,
    ssh: &SshArgs,
    agent: AgentSource,
) -> anyhow::Result<Transport> {
    let port = ssh.port.or(remote.port);
    let Some(rsh) = &ssh.rsh else {
        let user = match &remote.user {
            Some(user) => user.clone(),
            None => local_user()?,
        };
        let options = SshOptions {
            keys: ssh.key.clone(),
            known_hosts: ssh.known_hosts.clone(),
            policy: match ssh.host_key_policy {
                HostKeyPolicy::Strict => sync_core::ssh::HostKeyPolicy::Strict,
                HostKeyPolicy::AcceptNew => sync_core::ssh::HostKeyPolicy::AcceptNew,
                HostKeyPolicy::Off => sync_core::ssh::HostKeyPolicy::Off,
            },
            ..SshOptions::default()
        };
        let target = SshTarget {
            user,
            host: remote.host.clone(),
            port: port.unwrap_or(22),
        };
        if ssh.sftp {
            return Ok(Transport::Sftp { target, options });
        }
        return Ok(Transport::Ssh {
            shell: RemoteShell::Native { target, options },
            agent,
        });
    };
    let mut argv: Vec<std::ffi::OsString> = shell_words::split(rsh)
        .with_context(|| format!("cannot parse --rsh {rsh:?}"))?
        .into_iter()
        .map(Into::into)
        .collect();
    anyhow::ensure!(!argv.is_empty(), "--rsh is empty");
    // Never prompt: scripts must fail, not hang.
    argv.extend(["-o".into(), "BatchMode=yes".into()]);
    if let Some(port) = port {
        argv.extend(["-p".into(), port.to_string().into()]);
    }
    for key in &ssh.key {
        argv.push("-i".into());
        argv.push(key.into());
    }
    if let Some(file) = &ssh.known_hosts {
        let mut opt = std::ffi::OsString::from("UserKnownHostsFile=");
        opt.push(file);
        argv.extend(["-o".into(), opt]);
    }
    let checking = match ssh.host_key_policy {
        HostKeyPolicy::Strict => "StrictHostKeyChecking=yes",
        HostKeyPolicy::AcceptNew => "StrictHostKeyChecking=accept-new",
        HostKeyPolicy::Off => "StrictHostKeyChecking=no",
    };
    argv.extend(["-o".into(), checking.into()]);
    let destination = match &remote.user {
        Some(user) => format!("{user}@{}", remote.host),
        None => remote.host.clone(),
    };
    // `--` so a host name can never be taken for an option.
    argv.extend(["--".into(), destination.clone().into()]);
    Ok(Transport::Ssh {
        shell: RemoteShell::System(SystemSsh::new(argv, destination)?),
        agent,
    })
}

/// The local user name, the default remote user (as in OpenSSH).
fn local_user() -> anyhow::Result<String> {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .context("cannot tell the local user name (USER is not set): give the destination as user@host:path")
}
