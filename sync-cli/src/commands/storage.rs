//! `azsync storage create|list|status|mount|unmount|delete`: one Azure Files NFS share as the
//! home of many VMs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use sync_core::ssh::{SshSession, SshTarget};

use super::vm::{ensure_group, SUBNET, VNET};
use crate::azure::az::Az;
use crate::azure::model::{Share, StorageAccount, Subnet, Vm};
use crate::azure::{names, reach, scripts};
use crate::cli::{StorageArgs, StorageCommand, StorageCreateArgs};
use crate::config::{Overrides, Settings};
use crate::EXIT_USAGE;

pub fn run(args: StorageArgs) -> anyhow::Result<ExitCode> {
    let StorageArgs { command, azure } = args;
    let settings = Settings::load(&Overrides {
        azure: Some(&azure),
        ..Overrides::default()
    })?;
    let az = Az::new(settings.dry_run);
    // Every account name is checked before az runs: a typo costs no round trip.
    let account = match &command {
        StorageCommand::Create(c) => Some(c.name.clone()),
        StorageCommand::Delete { name, .. } => Some(name.clone()),
        StorageCommand::Status { name, .. }
        | StorageCommand::Mount { name, .. }
        | StorageCommand::Unmount { name, .. } => {
            match name.clone().or_else(|| settings.nfs_storage.clone()) {
                Some(name) => Some(name),
                None => {
                    eprintln!(
                        "azsync: error: no storage account: name one, or run `azsync config set \
                         default_nfs_storage NAME`"
                    );
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
        StorageCommand::List { .. } => None,
    };
    if let Some(name) = &account {
        if let Err(message) = names::check_storage_account(name) {
            eprintln!("azsync: error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    }
    let account = account.unwrap_or_default();
    let group = settings.group()?;
    match command {
        StorageCommand::Create(c) => create(&settings, &az, &c),
        StorageCommand::List { json } => {
            let Some(accounts) = az.call::<Vec<StorageAccount>, _>(&[
                "storage",
                "account",
                "list",
                "--resource-group",
                group,
            ])?
            else {
                return Ok(ExitCode::SUCCESS);
            };
            let accounts: Vec<&StorageAccount> = accounts
                .iter()
                .filter(|a| a.kind.as_deref() == Some("FileStorage"))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else {
                println!("{:<24}  {:<14}  {:<12}  NFS", "NAME", "REGION", "SKU");
                for a in accounts {
                    println!(
                        "{:<24}  {:<14}  {:<12}  {}",
                        a.name,
                        a.location.as_deref().unwrap_or("-"),
                        a.sku.as_ref().map_or("-", |s| s.name.as_str()),
                        scripts::nfs_source(&a.name, "home")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Status { share, .. } => {
            let acct: Option<StorageAccount> = az.call(&[
                "storage",
                "account",
                "show",
                "--resource-group",
                group,
                "--name",
                &account,
            ])?;
            let sh: Option<Share> = az.call(&[
                "storage",
                "share-rm",
                "show",
                "--resource-group",
                group,
                "--storage-account",
                &account,
                "--name",
                &share.share,
            ])?;
            if let (Some(acct), Some(sh)) = (acct, sh) {
                let rules = acct.network_rule_set.as_ref();
                for (key, value) in [
                    ("account", acct.name.clone()),
                    (
                        "region",
                        acct.location.clone().unwrap_or_else(|| "-".into()),
                    ),
                    (
                        "sku",
                        acct.sku.map(|s| s.name).unwrap_or_else(|| "-".into()),
                    ),
                    ("share", sh.name.clone()),
                    (
                        "quota",
                        sh.share_quota
                            .map_or_else(|| "-".into(), |q| format!("{q} GiB")),
                    ),
                    (
                        "protocols",
                        sh.enabled_protocols.unwrap_or_else(|| "-".into()),
                    ),
                    ("root squash", sh.root_squash.unwrap_or_else(|| "-".into())),
                    (
                        "network",
                        rules
                            .and_then(|r| r.default_action.clone())
                            .map_or_else(|| "-".into(), |a| format!("default action {a}")),
                    ),
                    (
                        "subnets",
                        rules
                            .map(|r| {
                                r.virtual_network_rules
                                    .iter()
                                    .map(|v| v.virtual_network_resource_id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default(),
                    ),
                    ("mount", scripts::nfs_source(&account, &sh.name)),
                ] {
                    println!("{key:<11} {value}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Mount { vm, share, .. } => {
            let source = scripts::nfs_source(&account, &share.share);
            on_vm(
                &settings,
                &az,
                &vm,
                |session| mount_home(session, &vm, &account, &share.share, &settings.ssh_user),
                &scripts::mount_script(&source, &settings.ssh_user),
            )
        }
        StorageCommand::Unmount { vm, share, .. } => {
            let source = scripts::nfs_source(&account, &share.share);
            let script = scripts::unmount_script(&source, &settings.ssh_user);
            on_vm(
                &settings,
                &az,
                &vm,
                |session| run_root_script(session, &vm, &script),
                &script,
            )
        }
        StorageCommand::Delete { yes, .. } => {
            if !yes {
                eprintln!(
                    "azsync: error: deleting storage account {account} deletes every file in it: \
                     add --yes to delete it"
                );
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            az.call_unit(&[
                "storage",
                "account",
                "delete",
                "--resource-group",
                group,
                "--name",
                &account,
                "--yes",
            ])?;
            if !az.is_dry_run() {
                eprintln!("azsync: deleted storage account {account}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn create(settings: &Settings, az: &Az, args: &StorageCreateArgs) -> anyhow::Result<ExitCode> {
    if !(100..=102_400).contains(&args.size_gb) {
        eprintln!(
            "azsync: error: --size-gb {}: premium file shares hold 100 to 102400 GiB",
            args.size_gb
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let group = settings.group()?;
    let name = args.name.as_str();
    ensure_group(az, group, &settings.region)?;
    // NFS needs a premium FileStorage account; NFS carries no TLS, so HTTPS-only must be off,
    // and the network rule (default Deny, the VMs' subnet allowed) is what keeps others out.
    az.call::<StorageAccount, _>(&[
        "storage",
        "account",
        "create",
        "--resource-group",
        group,
        "--name",
        name,
        "--location",
        &settings.region,
        "--kind",
        "FileStorage",
        "--sku",
        "Premium_ZRS",
        "--https-only",
        "false",
        "--allow-blob-public-access",
        "false",
        "--default-action",
        "Deny",
    ])?;
    let quota = args.size_gb.to_string();
    az.call::<Share, _>(&[
        "storage",
        "share-rm",
        "create",
        "--resource-group",
        group,
        "--storage-account",
        name,
        "--name",
        &args.share.share,
        "--enabled-protocols",
        "NFS",
        "--root-squash",
        "RootSquash",
        "--quota",
        &quota,
    ])?;
    let subnet: Option<Subnet> = az
        .call(&[
            "network",
            "vnet",
            "subnet",
            "update",
            "--resource-group",
            group,
            "--vnet-name",
            &args.vnet,
            "--name",
            &args.subnet,
            "--service-endpoints",
            "Microsoft.Storage",
        ])
        .map_err(|e| {
            let hint = if args.vnet == VNET && args.subnet == SUBNET {
                " (the VNet is made by the first `azsync vm create` in the resource group)"
            } else {
                ""
            };
            anyhow::anyhow!("{e}{hint}")
        })?;
    // The subnet's id is only known once az answers; a dry run names it.
    let subnet_id = match &subnet {
        Some(s) => s.id.clone(),
        None => format!("<id of subnet {} in VNet {}>", args.subnet, args.vnet),
    };
    az.call::<serde_json::Value, _>(&[
        "storage",
        "account",
        "network-rule",
        "add",
        "--resource-group",
        group,
        "--account-name",
        name,
        "--subnet",
        &subnet_id,
    ])?;
    if !az.is_dry_run() {
        eprintln!(
            "azsync: created storage account {name} with NFS share {} ({} GiB): mount it with \
             `azsync storage mount {name} --vm VM` or `azsync vm create --nfs {name}`",
            args.share.share, args.size_gb
        );
        println!("{}", scripts::nfs_source(name, &args.share.share));
    }
    Ok(ExitCode::SUCCESS)
}

/// Looks the VM up, logs in, and runs `work`; in a dry run prints the script instead.
fn on_vm(
    settings: &Settings,
    az: &Az,
    vm_name: &str,
    work: impl FnOnce(&SshSession) -> anyhow::Result<()>,
    script: &str,
) -> anyhow::Result<ExitCode> {
    let group = settings.group()?;
    let vm: Option<Vm> = az.call(&[
        "vm",
        "show",
        "-d",
        "--resource-group",
        group,
        "--name",
        vm_name,
    ])?;
    let Some(vm) = vm else {
        println!("# then, on {vm_name} over SSH, as root (sudo -n sh -s):");
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    };
    let target: SshTarget = reach::vm_target(settings, &vm)?;
    let session = reach::wait_for_ssh(
        vm_name,
        &target,
        &reach::ssh_options(settings),
        Duration::from_secs(60),
    )?;
    work(&session)?;
    Ok(ExitCode::SUCCESS)
}

/// Mounts the account's share as `user`'s home on the VM behind `session`.
pub fn mount_home(
    session: &SshSession,
    label: &str,
    account: &str,
    share: &str,
    user: &str,
) -> anyhow::Result<()> {
    let source = scripts::nfs_source(account, share);
    eprintln!("azsync: {label}: mounting {source} as /home/{user}");
    run_root_script(session, label, &scripts::mount_script(&source, user))
}

/// Runs a script as root on the VM (`sudo -n`: never a password prompt), fed on stdin.
fn run_root_script(session: &SshSession, label: &str, script: &str) -> anyhow::Result<()> {
    let out = session
        .run("sudo -n sh -s", Some(script.as_bytes()))
        .with_context(|| format!("{label}: cannot run the script over SSH"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("{label}: {line}");
    }
    if out.status != Some(0) {
        bail!(
            "{label}: the script failed ({}): {}",
            out.status
                .map_or_else(|| "killed".to_string(), |s| format!("exit status {s}")),
            stderr.lines().last().unwrap_or("no message")
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        eprintln!("{label}: {line}");
    }
    Ok(())
}
