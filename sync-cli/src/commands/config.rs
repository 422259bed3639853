//! `azsync config path|show|set|unset`.

use std::process::ExitCode;

use crate::cli::{ConfigArgs, ConfigCommand};
use crate::config::{config_dir, Overrides, Settings, SettingsFile};

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let dir = config_dir()?;
    match args.command {
        ConfigCommand::Path => println!("{}", dir.join(crate::config::FILE_NAME).display()),
        ConfigCommand::Show => {
            let s = Settings::load(&Overrides::default())?;
            let port = s.ssh_port_file.unwrap_or(22).to_string();
            for (key, value) in [
                (
                    "default_resource_group",
                    s.resource_group.as_deref().unwrap_or(""),
                ),
                ("default_region", s.region.as_str()),
                ("default_vm_size", s.vm_size.as_str()),
                (
                    "default_nfs_storage",
                    s.nfs_storage.as_deref().unwrap_or(""),
                ),
                ("ssh_key", &s.ssh_key.to_string_lossy()),
                ("ssh_user", s.ssh_user.as_str()),
                ("ssh_port", port.as_str()),
                ("home_dir", &s.home_dir.to_string_lossy()),
                ("image", s.image.as_str()),
            ] {
                println!("{key} = {value:?}");
            }
        }
        ConfigCommand::Set { key, value } => SettingsFile::open(&dir)?.set(&key, &value)?,
        ConfigCommand::Unset { key } => SettingsFile::open(&dir)?.unset(&key)?,
    }
    Ok(ExitCode::SUCCESS)
}
