//! Settings: the file `~/.azlin/config.toml`, the flags that override it, and the defaults.
//!
//! Three layers, resolved here and nowhere else: a flag wins over the file, the file over the
//! built-in default. The folder is `$AZLIN_CONFIG_DIR` when set, else `~/.azlin`; it is created
//! with mode 0700 and the file with 0600 (it names resource groups and key paths). Writes go
//! through `toml_edit`, so the comments and layout a user gave the file survive them, and land
//! with a rename, so a crash never leaves half a file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use toml_edit::DocumentMut;

use crate::cli::{AzureFlags, PushSyncFlags};

/// The file's name inside the folder.
pub const FILE_NAME: &str = "config.toml";

/// Ubuntu 24.04 LTS, the image `vm create` uses unless told otherwise.
pub const DEFAULT_IMAGE: &str = "Canonical:ubuntu-24_04-lts:server:latest";
pub const DEFAULT_REGION: &str = "westus2";
pub const DEFAULT_VM_SIZE: &str = "Standard_D4s_v5";
pub const DEFAULT_SSH_USER: &str = "azureuser";

/// Every key the file may hold, with what it means (for `config show` and errors).
pub const KEYS: &[(&str, &str)] = &[
    (
        "default_resource_group",
        "resource group for VMs and storage",
    ),
    ("default_region", "Azure region for new resources"),
    ("default_vm_size", "size of new VMs"),
    (
        "default_nfs_storage",
        "storage account whose NFS share `vm create --nfs` defaults to",
    ),
    ("ssh_key", "private key for the VMs (its .pub is installed)"),
    ("ssh_user", "user on the VMs"),
    ("ssh_port", "SSH port of the VMs"),
    ("home_dir", "the home profile `push` syncs"),
    ("image", "image URN of new VMs"),
];

const TEMPLATE: &str = "\
# azsync settings. Flags given on the command line win over these.
#
# default_resource_group = \"azlin-rg\"
# default_region = \"westus2\"
# default_vm_size = \"Standard_D4s_v5\"
# default_nfs_storage = \"azlinhome\"
# ssh_key = \"~/.ssh/azlin_key\"
";

/// The folder that holds the settings file.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("AZLIN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    Ok(home()?.join(".azlin"))
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: cannot find ~/.azlin (set AZLIN_CONFIG_DIR)")
}

/// `~/x` → `$HOME/x`; anything else as is.
fn expand(path: &str) -> anyhow::Result<PathBuf> {
    match path.strip_prefix("~/") {
        Some(rest) => Ok(home()?.join(rest)),
        None if path == "~" => home(),
        None => Ok(PathBuf::from(path)),
    }
}

/// The settings file, parsed, keeping its text for a faithful rewrite.
#[derive(Debug)]
pub struct SettingsFile {
    pub path: PathBuf,
    doc: DocumentMut,
}

impl SettingsFile {
    /// Reads the file in `dir`, creating the folder (0700) and a commented template (0600) if
    /// they are missing.
    pub fn open(dir: &Path) -> anyhow::Result<SettingsFile> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            create_dir_private(dir)?;
            write_private(&path, TEMPLATE)?;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let doc: DocumentMut = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let file = SettingsFile { path, doc };
        for (key, _) in file.doc.iter() {
            if !KEYS.iter().any(|(k, _)| *k == key) {
                eprintln!(
                    "azsync: warning: {}: unknown setting {key:?} (known: {})",
                    file.path.display(),
                    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(file)
    }

    /// A string setting; a value of another type is an error naming the key and the file.
    pub fn string(&self, key: &str) -> anyhow::Result<Option<String>> {
        match self.doc.get(key) {
            None => Ok(None),
            Some(item) => match item.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => bail!(
                    "{}: setting {key} must be a string, like {key} = \"...\"",
                    self.path.display()
                ),
            },
        }
    }

    /// A port setting (an integer, or a string of digits).
    pub fn port(&self, key: &str) -> anyhow::Result<Option<u16>> {
        let bad = || {
            anyhow::anyhow!(
                "{}: setting {key} must be a port number (1-65535)",
                self.path.display()
            )
        };
        match self.doc.get(key) {
            None => Ok(None),
            Some(item) => {
                if let Some(n) = item.as_integer() {
                    return u16::try_from(n)
                        .ok()
                        .filter(|p| *p > 0)
                        .map(Some)
                        .ok_or_else(bad);
                }
                item.as_str()
                    .and_then(|s| s.parse::<u16>().ok())
                    .filter(|p| *p > 0)
                    .map(Some)
                    .ok_or_else(bad)
            }
        }
    }

    /// Sets `key` and writes the file; everything else in it (comments included) is kept.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        check_key(key)?;
        if key == "ssh_port" {
            let port: u16 = value
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("ssh_port must be a port number, not {value:?}"))?;
            self.doc[key] = toml_edit::value(i64::from(port));
        } else {
            self.doc[key] = toml_edit::value(value);
        }
        self.save()
    }

    /// Removes `key` and writes the file.
    pub fn unset(&mut self, key: &str) -> anyhow::Result<()> {
        check_key(key)?;
        self.doc.remove(key);
        self.save()
    }

    fn save(&self) -> anyhow::Result<()> {
        write_private(&self.path, &self.doc.to_string())
    }
}

fn check_key(key: &str) -> anyhow::Result<()> {
    if KEYS.iter().any(|(k, _)| *k == key) {
        return Ok(());
    }
    bail!(
        "unknown setting {key:?}; known settings: {}",
        KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
    )
}

fn create_dir_private(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // The umask may have taken bits away, never added any; set exactly 0700.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Writes `text` to `path` with mode 0600, through a temp file and a rename.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("toml.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}

/// The settings in force for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None` until a command that needs one finds it missing (see [`Settings::group`]).
    pub resource_group: Option<String>,
    pub region: String,
    pub vm_size: String,
    pub nfs_storage: Option<String>,
    pub image: String,
    pub ssh_key: PathBuf,
    pub ssh_user: String,
    /// From a flag or the file; a VM's `azsync-ssh-port` tag comes between the two.
    pub ssh_port_flag: Option<u16>,
    pub ssh_port_file: Option<u16>,
    pub home_dir: PathBuf,
    pub config_dir: PathBuf,
    pub dry_run: bool,
}

/// Flags for one command, from any subcommand: what the user typed, nothing resolved.
#[derive(Debug, Default, Clone)]
pub struct Overrides<'a> {
    pub azure: Option<&'a AzureFlags>,
    pub sync: Option<&'a PushSyncFlags>,
    pub vm_size: Option<&'a str>,
    pub image: Option<&'a str>,
}

impl Settings {
    /// Reads the settings file (creating it if missing) and resolves `flags` over it.
    pub fn load(flags: &Overrides<'_>) -> anyhow::Result<Settings> {
        let dir = config_dir()?;
        let file = SettingsFile::open(&dir)?;
        Settings::resolve(flags, &file, dir)
    }

    /// Flag, then file, then default, for each setting.
    pub fn resolve(
        flags: &Overrides<'_>,
        file: &SettingsFile,
        config_dir: PathBuf,
    ) -> anyhow::Result<Settings> {
        let azure = flags.azure.cloned().unwrap_or_default();
        let sync = flags.sync.cloned().unwrap_or_default();
        let pick = |flag: Option<String>, key: &str, default: &str| -> anyhow::Result<String> {
            Ok(match flag {
                Some(v) => v,
                None => file.string(key)?.unwrap_or_else(|| default.to_string()),
            })
        };
        let path = |flag: Option<PathBuf>, key: &str, default: &str| -> anyhow::Result<PathBuf> {
            match flag {
                Some(p) => Ok(p),
                None => expand(&file.string(key)?.unwrap_or_else(|| default.to_string())),
            }
        };
        Ok(Settings {
            resource_group: azure
                .resource_group
                .or(file.string("default_resource_group")?)
                .filter(|g| !g.is_empty()),
            region: pick(azure.region, "default_region", DEFAULT_REGION)?,
            vm_size: pick(
                flags.vm_size.map(str::to_string),
                "default_vm_size",
                DEFAULT_VM_SIZE,
            )?,
            nfs_storage: file.string("default_nfs_storage")?,
            image: pick(flags.image.map(str::to_string), "image", DEFAULT_IMAGE)?,
            ssh_key: path(azure.ssh.ssh_key, "ssh_key", "~/.ssh/azlin_key")?,
            ssh_user: pick(azure.ssh.ssh_user, "ssh_user", DEFAULT_SSH_USER)?,
            ssh_port_flag: azure.ssh.ssh_port,
            ssh_port_file: file.port("ssh_port")?,
            home_dir: path(sync.home, "home_dir", "~/.azlin/home")?,
            config_dir,
            dry_run: azure.dry_run,
        })
    }

    /// The resource group, or an error saying how to give one.
    pub fn group(&self) -> anyhow::Result<&str> {
        self.resource_group.as_deref().with_context(|| {
            format!(
                "no resource group: pass --resource-group NAME or run \
                 `azsync config set default_resource_group NAME` (settings: {})",
                self.config_dir.join(FILE_NAME).display()
            )
        })
    }

    /// The public key that `vm create` installs: the private key's path plus `.pub`.
    pub fn public_key(&self) -> PathBuf {
        let mut name = self.ssh_key.clone().into_os_string();
        name.push(".pub");
        PathBuf::from(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::VmSshFlags;
    use std::os::unix::fs::MetadataExt;

    fn file_with(dir: &Path, text: &str) -> SettingsFile {
        fs::write(dir.join(FILE_NAME), text).unwrap();
        SettingsFile::open(dir).unwrap()
    }

    #[test]
    fn a_missing_file_is_created_private() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("nested/.azlin");
        let file = SettingsFile::open(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&file.path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(file.string("default_resource_group").unwrap(), None);
    }

    #[test]
    fn comments_survive_a_write() {
        let t = tempfile::tempdir().unwrap();
        let text = "# my team's group\ndefault_resource_group = \"rg-a\" # keep\n\n\
                    # region below\ndefault_region = \"eastus\"\n";
        let mut file = file_with(t.path(), text);
        file.set("default_region", "westeurope").unwrap();
        file.set("ssh_port", "2222").unwrap();
        let after = fs::read_to_string(t.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            after,
            "# my team's group\ndefault_resource_group = \"rg-a\" # keep\n\n\
             # region below\ndefault_region = \"westeurope\"\nssh_port = 2222\n"
        );
        assert_eq!(
            fs::metadata(t.path().join(FILE_NAME)).unwrap().mode() & 0o777,
            0o600
        );
        file.unset("ssh_port").unwrap();
        assert!(!fs::read_to_string(t.path().join(FILE_NAME))
            .unwrap()
            .contains("ssh_port"));
        assert!(file.set("no_such_key", "x").is_err());
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let t = tempfile::tempdir().unwrap();
        let file = file_with(
            t.path(),
            "default_resource_group = \"rg-file\"\ndefault_region = \"eastus\"\n\
             default_vm_size = \"Standard_B2s\"\nssh_port = 2200\nssh_key = \"/keys/k\"\n",
        );
        let none = Settings::resolve(&Overrides::default(), &file, t.path().into()).unwrap();
        assert_eq!(none.resource_group.as_deref(), Some("rg-file"));
        assert_eq!(none.region, "eastus");
        assert_eq!(none.vm_size, "Standard_B2s");
        assert_eq!(none.image, DEFAULT_IMAGE);
        assert_eq!(none.ssh_user, DEFAULT_SSH_USER);
        assert_eq!(none.ssh_port_file, Some(2200));
        assert_eq!(none.ssh_key, PathBuf::from("/keys/k"));
        assert_eq!(none.public_key(), PathBuf::from("/keys/k.pub"));

        let azure = AzureFlags {
            resource_group: Some("rg-flag".into()),
            region: Some("northeurope".into()),
            dry_run: true,
            ssh: VmSshFlags {
                ssh_key: Some("/other".into()),
                ssh_port: Some(2222),
                ssh_user: Some("me".into()),
            },
        };
        let flags = Overrides {
            azure: Some(&azure),
            vm_size: Some("Standard_D2s_v5"),
            ..Overrides::default()
        };
        let s = Settings::resolve(&flags, &file, t.path().into()).unwrap();
        assert_eq!(s.resource_group.as_deref(), Some("rg-flag"));
        assert_eq!(s.region, "northeurope");
        assert_eq!(s.vm_size, "Standard_D2s_v5");
        assert_eq!(s.ssh_port_flag, Some(2222));
        assert_eq!(s.ssh_user, "me");
        assert_eq!(s.ssh_key, PathBuf::from("/other"));
        assert!(s.dry_run);
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_file() {
        let t = tempfile::tempdir().unwrap();
        let file = file_with(t.path(), "default_region = 5\nssh_port = \"http\"\n");
        let err = Settings::resolve(&Overrides::default(), &file, t.path().into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("default_region must be a string"), "{err}");
        assert!(err.contains(FILE_NAME), "{err}");
        assert!(file.port("ssh_port").is_err());
    }

    #[test]
    fn a_missing_group_says_how_to_set_one() {
        let t = tempfile::tempdir().unwrap();
        let file = file_with(t.path(), "");
        let s = Settings::resolve(&Overrides::default(), &file, t.path().into()).unwrap();
        let err = s.group().unwrap_err().to_string();
        assert!(err.contains("--resource-group"), "{err}");
        assert!(
            err.contains("azsync config set default_resource_group"),
            "{err}"
        );
    }
}
