//! A fake `az` for tests of the Azure commands, and a sandbox to run azsync in.
//!
//! The fake is a small Python 3 script put first on PATH. Each call appends its argv, as one
//! JSON array per line, to `calls.log`, then answers from `fixtures.json`: the fixture whose
//! `prefix` is the longest prefix of the argv gives stdout, stderr and the exit code. A call
//! with no fixture fails with exit code 2, like az's own usage errors, so a test notices an
//! unexpected call. Fixtures are shaped like the real az output.
//!
//! The sandbox points HOME and AZLIN_CONFIG_DIR at temp dirs (never the real home) and drops
//! SSH_AUTH_SOCK, so no key of the person running the tests is ever offered.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::{run_with_timeout, Run, RUN_TIMEOUT};

const SCRIPT: &str = r#"
import json, os, sys
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
with open(os.path.join(root, "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
with open(os.path.join(root, "fixtures.json")) as f:
    fixtures = json.load(f)
best = None
for fx in fixtures:
    p = fx["prefix"]
    if args[:len(p)] == p and (best is None or len(p) > len(best["prefix"])):
        best = fx
if best is None:
    sys.stderr.write("ERROR: fake az has no fixture for %s\n" % json.dumps(args))
    sys.exit(2)
sys.stdout.write(best["stdout"])
sys.stderr.write(best["stderr"])
sys.exit(best["code"])
"#;

/// A temp HOME, config folder and fake az.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    /// `$HOME` for azsync.
    pub home: PathBuf,
    /// `$AZLIN_CONFIG_DIR`.
    pub config_dir: PathBuf,
    /// Holds `az`.
    pub bin: PathBuf,
    fixtures: Vec<Value>,
}

fn python3() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
        .expect("python3 is needed for the fake az (apt-get install python3)")
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("azsync-az-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let az = bin.join("az");
        std::fs::write(&az, format!("#!{}\n{SCRIPT}", python3().display())).unwrap();
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sandbox = Sandbox {
            config_dir: tmp.path().join("config"),
            home,
            bin,
            tmp,
            fixtures: Vec::new(),
        };
        sandbox.save();
        sandbox
    }

    fn save(&self) {
        std::fs::write(
            self.tmp.path().join("fixtures.json"),
            serde_json::to_vec(&self.fixtures).unwrap(),
        )
        .unwrap();
    }

    /// Calls starting with `prefix` print `stdout` and succeed.
    pub fn answer(&mut self, prefix: &[&str], stdout: &Value) -> &mut Self {
        self.answer_raw(prefix, &format!("{stdout:#}\n"))
    }

    /// Calls starting with `prefix` print exactly `stdout` and succeed.
    pub fn answer_raw(&mut self, prefix: &[&str], stdout: &str) -> &mut Self {
        self.fixtures.push(json!({
            "prefix": prefix, "stdout": stdout, "stderr": "", "code": 0
        }));
        self.save();
        self
    }

    /// Calls starting with `prefix` print `stderr` and exit with `code`.
    pub fn fail(&mut self, prefix: &[&str], code: i32, stderr: &str) -> &mut Self {
        self.fixtures.push(json!({
            "prefix": prefix, "stdout": "", "stderr": stderr, "code": code
        }));
        self.save();
        self
    }

    /// A logged-in account, as `az account show` prints it.
    pub fn logged_in(&mut self) -> &mut Self {
        self.answer(
            &["account", "show"],
            &json!({
                "environmentName": "AzureCloud",
                "homeTenantId": "00000000-0000-0000-0000-000000000001",
                "id": "00000000-0000-0000-0000-0000000000aa",
                "isDefault": true,
                "managedByTenants": [],
                "name": "Dev Subscription",
                "state": "Enabled",
                "tenantId": "00000000-0000-0000-0000-000000000001",
                "user": {"name": "dev@example.com", "type": "user"}
            }),
        )
    }

    /// Every argv the fake az received, in order.
    pub fn calls(&self) -> Vec<Vec<String>> {
        match std::fs::read_to_string(self.tmp.path().join("calls.log")) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Writes the settings file.
    pub fn config(&self, text: &str) {
        std::fs::create_dir_all(&self.config_dir).unwrap();
        std::fs::write(self.config_dir.join("config.toml"), text).unwrap();
    }

    /// A key pair (contents do not matter to the fake az) at `home/.ssh/azlin_key`.
    pub fn key_pair(&self) -> PathBuf {
        let dir = self.home.join(".ssh");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("azlin_key");
        std::fs::write(&key, "not a real key\n").unwrap();
        std::fs::write(
            dir.join("azlin_key.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAzsyncTestKeyOnly azsync-test\n",
        )
        .unwrap();
        key
    }

    /// Runs azsync in the sandbox with the fake az first on PATH.
    pub fn azsync<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut path = OsString::from(&self.bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        self.azsync_with_path(args, &path)
    }

    /// Runs azsync in the sandbox with exactly this PATH.
    pub fn azsync_with_path<I, S>(&self, args: I, path: &OsStr) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(super::azsync_bin());
        cmd.args(args)
            .env("HOME", &self.home)
            .env("AZLIN_CONFIG_DIR", &self.config_dir)
            .env("PATH", path)
            .env_remove("SSH_AUTH_SOCK");
        let cmdline = format!("{cmd:?}");
        let out = run_with_timeout(cmd, RUN_TIMEOUT);
        Run { cmdline, out }
    }

    /// A directory inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// `az vm list -d` output for VMs named `name`, each `VM running` at 127.0.0.1 and tagged with
/// its SSH port.
pub fn vm_list(vms: &[(&str, u16)]) -> Value {
    Value::Array(
        vms.iter()
            .map(|(name, port)| {
                json!({
                    "id": format!("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachines/{name}"),
                    "location": "westus2",
                    "name": name,
                    "powerState": "VM running",
                    "privateIps": "10.0.0.4",
                    "publicIps": "127.0.0.1",
                    "fqdns": "",
                    "resourceGroup": "rg-test",
                    "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                    "storageProfile": {"osDisk": {"osType": "Linux"}},
                    "tags": {"azsync-ssh-port": port.to_string()}
                })
            })
            .collect(),
    )
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Paths of [`write_home`]'s tree that must arrive.
pub const HOME_KEPT: &[&str] = &[
    "notes/todo.txt",
    ".bashrc",
    ".ssh/config",
    ".ssh/id_ed25519.pub",
    ".rustup/settings.toml",
    ".cargo/config.toml",
    "projects/app/src/main.rs",
    "bin/notes",
];

/// Paths that must not arrive: secrets by name, secrets by content, links to credentials or out
/// of the tree, caches and toolchains, `.azsyncignore` matches.
pub const HOME_LEFT_OUT: &[&str] = &[
    ".ssh/id_ed25519",
    ".aws/credentials",
    "notes/aws.txt",
    "projects/app/deploy.sh",
    "bin/key",
    "bin/passwd",
    ".cache/pip/wheel.whl",
    "projects/app/node_modules/left-pad/index.js",
    ".rustup/toolchains/stable/bin/rustc",
    ".cargo/registry/index/crate",
    ".npm/_cacache/x",
    "projects/app/.venv/bin/python",
    "build.log",
];

/// Reported skips of [`write_home`]'s tree: (path, reason) as in `--json`.
pub const HOME_SKIPPED: &[(&str, &str)] = &[
    (".aws/credentials", "secret"),
    (".ssh/id_ed25519", "secret"),
    ("bin/key", "unsafe-link"),
    ("bin/passwd", "unsafe-link"),
    ("notes/aws.txt", "secret"),
    ("projects/app/deploy.sh", "secret"),
];

/// A home profile with something of every kind the home profile keeps or leaves out.
pub fn write_home(root: &Path) {
    let files: &[(&str, &str)] = &[
        ("notes/todo.txt", "ship it\n"),
        (".bashrc", "export EDITOR=vim\n"),
        (".ssh/config", "Host *\n  ServerAliveInterval 30\n"),
        (".ssh/id_ed25519.pub", "ssh-ed25519 AAAA me@laptop\n"),
        (
            ".ssh/id_ed25519",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n",
        ),
        (".aws/credentials", "[default]\naws_access_key_id = x\n"),
        ("notes/aws.txt", "prod key: AKIAIOSFODNN7EXAMPLE\n"),
        (
            "projects/app/deploy.sh",
            "#!/bin/sh\nGH_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345 gh release create\n",
        ),
        ("projects/app/src/main.rs", "fn main() {}\n"),
        (".rustup/settings.toml", "default_toolchain = \"stable\"\n"),
        (".rustup/toolchains/stable/bin/rustc", "ELF"),
        (".cargo/config.toml", "[build]\n"),
        (".cargo/registry/index/crate", "index"),
        (".cache/pip/wheel.whl", "zip"),
        (
            "projects/app/node_modules/left-pad/index.js",
            "module.exports = 1\n",
        ),
        (".npm/_cacache/x", "x"),
        ("projects/app/.venv/bin/python", "py"),
        ("build.log", "log\n"),
        (".azsyncignore", "*.log\n"),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::os::unix::fs::symlink("../.ssh/id_ed25519", root.join("bin/key")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("bin/passwd")).unwrap();
    std::os::unix::fs::symlink("../notes", root.join("bin/notes")).unwrap();
}

/// Asserts that `dest` got [`write_home`]'s tree as the home profile sends it.
pub fn assert_home_pushed(src: &Path, dest: &Path) {
    for rel in HOME_KEPT {
        let (s, d) = (src.join(rel), dest.join(rel));
        let sm = std::fs::symlink_metadata(&s).unwrap();
        let dm = std::fs::symlink_metadata(&d)
            .unwrap_or_else(|e| panic!("{rel} did not arrive in {}: {e}", dest.display()));
        if sm.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&s).unwrap(),
                std::fs::read_link(&d).unwrap()
            );
        } else {
            assert_eq!(
                std::fs::read(&s).unwrap(),
                std::fs::read(&d).unwrap(),
                "{rel}"
            );
            assert!(dm.is_file());
        }
    }
    for rel in HOME_LEFT_OUT {
        assert!(
            std::fs::symlink_metadata(dest.join(rel)).is_err(),
            "{rel} must not arrive in {}",
            dest.display()
        );
    }
}
