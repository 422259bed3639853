//! `azsync push [VM ...] | --all`: the home profile to the home of each VM, several at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use sync_core::ssh::SshTarget;
use sync_core::{
    AgentSource, Destination, FileError, Progress, RemoteShell, Report, Skipped, SyncBuilder,
    Transport,
};

use crate::azure::az::Az;
use crate::azure::model::Vm;
use crate::azure::reach;
use crate::cli::{PushArgs, PushSyncFlags};
use crate::config::{Overrides, Settings};
use crate::EXIT_PARTIAL;

pub fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&Overrides {
        azure: Some(&args.azure),
        sync: Some(&args.sync),
        ..Overrides::default()
    })?;
    let group = settings.group()?;
    // The VMs' addresses are needed even for a dry run, which changes nothing on the VMs: the
    // lookup is read-only, so it runs.
    let az = Az::new(false);
    let vms: Vec<Vm> = az
        .call(&["vm", "list", "-d", "--resource-group", group])?
        .unwrap_or_default();
    let chosen = choose(vms, &args.vms, args.all, group)?;
    let targets = chosen
        .iter()
        .map(|vm| PushTarget {
            name: vm.name.clone(),
            target: reach::vm_target(&settings, vm),
        })
        .collect();
    push_home(&settings, &args.sync, targets)
}

/// The VMs named, in the order named, or with `all` every running one; a name that is not in
/// the resource group is an error before anything is synced.
fn choose(vms: Vec<Vm>, names: &[String], all: bool, group: &str) -> anyhow::Result<Vec<Vm>> {
    if all {
        let (running, stopped): (Vec<Vm>, Vec<Vm>) = vms.into_iter().partition(Vm::is_running);
        for vm in &stopped {
            eprintln!(
                "azsync: {}: not running ({}); skipped",
                vm.name,
                vm.power_state.as_deref().unwrap_or("power state unknown")
            );
        }
        if running.is_empty() {
            bail!("no running VM in resource group {group}");
        }
        return Ok(running);
    }
    let mut chosen = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match vms.iter().find(|vm| &vm.name == name) {
            Some(vm) if !chosen.iter().any(|c: &Vm| &c.name == name) => chosen.push(vm.clone()),
            Some(_) => {}
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        bail!(
            "no VM named {} in resource group {group} (`azsync vm list` shows them)",
            unknown.join(", ")
        );
    }
    Ok(chosen)
}

/// One VM to push to; `target` is an error when the VM cannot be reached at all (stopped, no
/// IP), which is reported like a failed sync.
pub struct PushTarget {
    pub name: String,
    pub target: anyhow::Result<SshTarget>,
}

/// Syncs the home profile to every target, `flags.parallel` at once, and reports per VM.
/// Exit code: 1 if a VM failed as a whole, else 23 if some files failed, else 0.
pub fn push_home(
    settings: &Settings,
    flags: &PushSyncFlags,
    targets: Vec<PushTarget>,
) -> anyhow::Result<ExitCode> {
    let home = &settings.home_dir;
    if !home.is_dir() {
        bail!(
            "the home profile {} is not a directory: create it (mkdir -p {}) or pass --home DIR",
            home.display(),
            home.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the azsync executable")?;
    let options = reach::ssh_options(settings);
    let shared = Arc::new(Shared::default());

    let mut destinations = Vec::new();
    let mut unreachable = Vec::new();
    let mut hosts = Vec::new();
    for t in targets {
        match t.target {
            Ok(target) => {
                hosts.push((t.name.clone(), target.to_string()));
                let transport = Transport::Ssh {
                    shell: RemoteShell::Native {
                        target,
                        options: options.clone(),
                    },
                    agent: AgentSource::Deploy(exe.clone()),
                };
                let progress = Arc::new(VmProgress {
                    label: t.name.clone(),
                    shared: Arc::clone(&shared),
                });
                // An empty path is the remote home.
                destinations.push(Destination::new(&t.name, "", transport).progress(progress));
            }
            Err(e) => unreachable.push((t.name, e)),
        }
    }

    let started = Instant::now();
    let outcomes = if destinations.is_empty() {
        Vec::new()
    } else {
        eprintln!(
            "azsync: pushing {} to {}",
            home.display(),
            hosts
                .iter()
                .map(|(name, host)| format!("{name} ({host})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        SyncBuilder::new(home, PathBuf::new())
            .home_profile(true)
            .scan_secrets(!flags.no_scan_secrets)
            .delete(flags.delete)
            .dry_run(settings.dry_run)
            .run_many(destinations, usize::from(flags.parallel))?
    };
    let elapsed = started.elapsed();

    let mut results: Vec<VmResult> = outcomes
        .into_iter()
        .map(|o| VmResult {
            host: hosts
                .iter()
                .find(|(n, _)| *n == o.label)
                .map(|(_, h)| h.clone()),
            name: o.label,
            result: o.result.map_err(|e| e.to_string()),
        })
        .collect();
    results.extend(unreachable.into_iter().map(|(name, e)| VmResult {
        name,
        host: None,
        result: Err(format!("{e:#}")),
    }));
    summarize(&results, flags.json, elapsed, home)
}

struct VmResult {
    name: String,
    host: Option<String>,
    result: Result<Report, String>,
}

fn summarize(
    results: &[VmResult],
    json: bool,
    elapsed: Duration,
    home: &Path,
) -> anyhow::Result<ExitCode> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.name.as_str())
        .collect();
    let partial: Vec<&str> = results
        .iter()
        .filter(|r| matches!(&r.result, Ok(report) if !report.is_success()))
        .map(|r| r.name.as_str())
        .collect();
    for r in results {
        match &r.result {
            Ok(report) => {
                for e in &report.errors {
                    eprintln!("azsync: {}: error: {e}", r.name);
                }
                let verb = if report.dry_run {
                    "would transfer"
                } else {
                    "transferred"
                };
                eprintln!(
                    "azsync: {}: {} files scanned, {verb} {} ({} by delta), {} up to date, \
                     {} deleted, {} skipped{}",
                    r.name,
                    report.files_scanned,
                    report.files_transferred,
                    report.files_delta,
                    report.files_up_to_date,
                    report.deleted,
                    report.skipped.len(),
                    if report.is_success() {
                        String::new()
                    } else {
                        format!("; {} path(s) failed", report.errors.len())
                    }
                );
            }
            Err(e) => eprintln!("azsync: {}: FAILED: {e}", r.name),
        }
    }
    if json {
        let vms: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                let (status, report, error) = match &r.result {
                    Ok(report) if report.is_success() => ("ok", Some(report), None),
                    Ok(report) => ("partial", Some(report), None),
                    Err(e) => ("failed", None, Some(e)),
                };
                json!({
                    "vm": r.name,
                    "host": r.host,
                    "status": status,
                    "report": report,
                    "error": error,
                })
            })
            .collect();
        let summary = json!({
            "home": home.to_string_lossy(),
            "vms": vms,
            "failed": failed,
            "partial": partial,
            "elapsed_secs": elapsed.as_secs_f64(),
        });
        println!("{summary}");
    }
    if !failed.is_empty() {
        eprintln!(
            "azsync: error: push failed for {} of {} VM(s): {}",
            failed.len(),
            results.len(),
            failed.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if !partial.is_empty() {
        eprintln!(
            "azsync: some paths failed on {}; the rest synced",
            partial.join(", ")
        );
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(ExitCode::SUCCESS)
}

/// What several syncs share: each skipped path is named once, not once per VM.
#[derive(Default)]
struct Shared {
    skipped: Mutex<HashSet<PathBuf>>,
}

/// Plain lines on stderr, labelled with the VM where it matters.
struct VmProgress {
    label: String,
    shared: Arc<Shared>,
}

impl Progress for VmProgress {
    fn skipped(&self, skipped: &Skipped) {
        let first = self
            .shared
            .skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(skipped.path.clone());
        if first {
            eprintln!(
                "azsync: skipped {}: {}",
                skipped.reason.as_str(),
                skipped.path.display()
            );
        }
    }

    fn file_error(&self, _error: &FileError) {
        // Reported once per VM in the summary.
    }

    fn notice(&self, message: &str) {
        eprintln!("azsync: {}: {message}", self.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, state: &str) -> Vm {
        serde_json::from_value(json!({"name": name, "powerState": state, "publicIps": "1.2.3.4"}))
            .unwrap()
    }

    #[test]
    fn named_vms_must_exist_and_all_means_the_running_ones() {
        let vms = vec![
            vm("a", "VM running"),
            vm("b", "VM deallocated"),
            vm("c", "VM running"),
        ];
        let names = |v: Vec<Vm>| v.into_iter().map(|v| v.name).collect::<Vec<_>>();
        assert_eq!(
            names(choose(vms.clone(), &[], true, "rg").unwrap()),
            ["a", "c"]
        );
        assert_eq!(
            names(
                choose(
                    vms.clone(),
                    &["c".into(), "b".into(), "c".into()],
                    false,
                    "rg"
                )
                .unwrap()
            ),
            ["c", "b"]
        );
        let err = choose(vms, &["a".into(), "x".into(), "y".into()], false, "rg")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no VM named x, y in resource group rg"),
            "{err}"
        );
    }
}
