//! `azsync vm create|list|show|start|stop|delete`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use sync_core::ssh::SshTarget;

use super::push::{self, PushTarget};
use super::storage;
use crate::azure::az::Az;
use crate::azure::model::{Vm, VmCreated};
use crate::azure::{names, reach, scripts};
use crate::cli::{VmArgs, VmCommand, VmCreateArgs};
use crate::config::{Overrides, Settings};
use crate::EXIT_USAGE;

/// The VNet and subnet every azsync VM joins, so one storage network rule covers them all.
pub const VNET: &str = "azlin-vnet";
pub const SUBNET: &str = "azlin-subnet";

pub fn run(args: VmArgs) -> anyhow::Result<ExitCode> {
    let VmArgs { command, azure } = args;
    let create = match &command {
        VmCommand::Create(c) => Some(c.as_ref()),
        _ => None,
    };
    let settings = Settings::load(&Overrides {
        azure: Some(&azure),
        sync: create.map(|c| &c.sync),
        vm_size: create.and_then(|c| c.size.as_deref()),
        image: create.and_then(|c| c.image.as_deref()),
    })?;
    let az = Az::new(settings.dry_run);
    match command {
        VmCommand::Create(c) => create_vm(&settings, &az, &c),
        VmCommand::List { json } => {
            let group = settings.group()?;
            let Some(vms) =
                az.call::<Vec<Vm>, _>(&["vm", "list", "-d", "--resource-group", group])?
            else {
                return Ok(ExitCode::SUCCESS);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&vms)?);
            } else {
                print_table(&vms);
            }
            Ok(ExitCode::SUCCESS)
        }
        VmCommand::Show { name, json } => {
            let group = settings.group()?;
            let Some(vm) = az.call::<Vm, _>(&[
                "vm",
                "show",
                "-d",
                "--resource-group",
                group,
                "--name",
                &name,
            ])?
            else {
                return Ok(ExitCode::SUCCESS);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&vm)?);
            } else {
                for (key, value) in [
                    ("name", vm.name.as_str()),
                    ("state", vm.power_state.as_deref().unwrap_or("-")),
                    ("public ip", vm.public_ip().unwrap_or("-")),
                    ("private ip", vm.private_ips.as_str()),
                    ("size", vm.size()),
                    ("region", vm.location.as_deref().unwrap_or("-")),
                ] {
                    println!("{key:<11} {value}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        VmCommand::Start { name } => simple(&settings, &az, "start", &name, "started"),
        // Deallocate, not `az vm stop`: a stopped but allocated VM is still billed.
        VmCommand::Stop { name } => simple(&settings, &az, "deallocate", &name, "stopped"),
        VmCommand::Delete { name, yes } => {
            if !yes {
                eprintln!(
                    "azsync: error: deleting VM {name} cannot be undone: add --yes to delete it"
                );
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            let group = settings.group()?;
            az.call_unit(&[
                "vm",
                "delete",
                "--resource-group",
                group,
                "--name",
                &name,
                "--yes",
            ])?;
            if !az.is_dry_run() {
                eprintln!("azsync: deleted VM {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn simple(
    settings: &Settings,
    az: &Az,
    verb: &str,
    name: &str,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let group = settings.group()?;
    az.call_unit(&["vm", verb, "--resource-group", group, "--name", name])?;
    if !az.is_dry_run() {
        eprintln!("azsync: {done} VM {name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(vms: &[Vm]) {
    let rows: Vec<[String; 5]> = vms
        .iter()
        .map(|vm| {
            [
                vm.name.clone(),
                vm.power_state
                    .as_deref()
                    .map(|s| s.strip_prefix("VM ").unwrap_or(s))
                    .unwrap_or("-")
                    .to_string(),
                vm.public_ip().unwrap_or("-").to_string(),
                vm.size().to_string(),
                vm.location.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "IP", "SIZE", "REGION"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Creates the resource group unless it exists. In a dry run both lines are printed.
pub fn ensure_group(az: &Az, group: &str, region: &str) -> anyhow::Result<()> {
    let exists: Option<bool> = az.call(&["group", "exists", "--name", group])?;
    if exists != Some(true) {
        az.call::<serde_json::Value, _>(&[
            "group",
            "create",
            "--name",
            group,
            "--location",
            region,
        ])?;
    }
    Ok(())
}

fn create_vm(settings: &Settings, az: &Az, args: &VmCreateArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(names::default_vm_name);
    if let Err(message) = names::check_vm_name(&name) {
        eprintln!("azsync: error: {message}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    if let Some(account) = &args.nfs {
        if let Err(message) = names::check_storage_account(account) {
            eprintln!("azsync: error: --nfs: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    }
    let group = settings.group()?;
    let public_key = settings.public_key();
    if !public_key.is_file() {
        bail!(
            "no public key at {}: create a key pair with `ssh-keygen -t ed25519 -f {}`, or point \
             --ssh-key (setting ssh_key) at a private key whose .pub is beside it",
            public_key.display(),
            settings.ssh_key.display()
        );
    }
    let cloud_init = settings.config_dir.join("cloud-init.yaml");
    std::fs::write(&cloud_init, scripts::cloud_init(&settings.ssh_user))
        .with_context(|| format!("cannot write {}", cloud_init.display()))?;

    ensure_group(az, group, &settings.region)?;
    let create: Vec<OsString> = [
        "vm",
        "create",
        "--resource-group",
        group,
        "--name",
        &name,
        "--location",
        &settings.region,
        "--image",
        &settings.image,
        "--size",
        &settings.vm_size,
        "--admin-username",
        &settings.ssh_user,
        "--ssh-key-values",
    ]
    .into_iter()
    .map(OsString::from)
    .chain([public_key.into_os_string()])
    .chain(
        [
            "--public-ip-sku",
            "Standard",
            "--vnet-name",
            VNET,
            "--subnet",
            SUBNET,
            "--os-disk-delete-option",
            "Delete",
            "--nic-delete-option",
            "Delete",
            "--custom-data",
        ]
        .map(OsString::from),
    )
    .chain([cloud_init.into_os_string()])
    .collect();
    if !az.is_dry_run() {
        eprintln!(
            "azsync: creating VM {name} in {group} ({})",
            settings.region
        );
    }
    let Some(created) = az.call::<VmCreated, _>(&create)? else {
        let then = match &args.nfs {
            Some(account) => format!("mount {account}'s NFS share as the home"),
            None if args.no_push => "stop".to_string(),
            None => format!("push {}", settings.home_dir.display()),
        };
        eprintln!("azsync: dry run: then wait for SSH and cloud-init on the new VM, and {then}");
        return Ok(ExitCode::SUCCESS);
    };
    let ip = created.public_ip_address.trim();
    if ip.is_empty() {
        bail!("az created VM {name} but reported no public IP address");
    }
    eprintln!("azsync: created VM {name} at {ip}");

    let target = SshTarget {
        user: settings.ssh_user.clone(),
        host: ip.to_string(),
        port: reach::ssh_port(settings, None)?,
    };
    let options = reach::ssh_options(settings);
    let session = reach::wait_for_ssh(
        &name,
        &target,
        &options,
        Duration::from_secs(args.ssh_timeout),
    )?;
    reach::wait_for_cloud_init(
        &name,
        &session,
        Duration::from_secs(args.cloud_init_timeout),
    )?;
    if let Some(account) = &args.nfs {
        storage::mount_home(&session, &name, account, "home", &settings.ssh_user)?;
        return Ok(ExitCode::SUCCESS);
    }
    drop(session);
    if args.no_push {
        return Ok(ExitCode::SUCCESS);
    }
    push::push_home(
        settings,
        &args.sync,
        vec![PushTarget {
            name,
            target: Ok(target),
        }],
    )
}
