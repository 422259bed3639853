//! Text that runs on a VM: the cloud-init of a new VM and the NFS home (un)mount scripts.
//!
//! The scripts are generated here and sent over SSH to `sudo -n sh -s` on stdin, so no value
//! in them passes through a second shell on the way. Every value is shell-quoted where it is
//! set, once, and used only as `"$var"` after that. Each script can be run again after a
//! failure or a success and ends in the same state (idempotent): it checks before it moves,
//! mounts or appends.

use shell_words::quote;

/// The cloud-init user data of a new VM: the developer tools, installed as root before azsync
/// pushes the home (`cloud-init status` says `done` when this has run).
pub fn cloud_init(user: &str) -> String {
    let user_q = quote(user);
    format!(
        r#"#cloud-config
# Written by azsync vm create: developer tools for {user}.
package_update: true
package_upgrade: false
packages:
  - git
  - tmux
  - build-essential
  - pkg-config
  - libssl-dev
  - curl
  - unzip
  - jq
  - python3
  - python3-pip
  - python3-venv
  - docker.io
  - docker-compose-v2
  - nodejs
  - npm
  - golang-go
  - gh
  - nfs-common
runcmd:
  - [sh, -c, "usermod -aG docker {user_q}"]
  - [sh, -c, "systemctl enable --now docker"]
  - [sh, -c, "curl -sL https://aka.ms/InstallAzureCLIDeb | bash"]
  - [sh, -c, "su - {user_q} -c 'curl --proto =https --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal'"]
"#
    )
}

/// The NFS source of a share: `<account>.file.core.windows.net:/<account>/<share>`.
pub fn nfs_source(account: &str, share: &str) -> String {
    format!("{account}.file.core.windows.net:/{account}/{share}")
}

/// The mount options: NFS 4.1 with AUTH_SYS, what Azure Files NFS speaks.
pub const NFS_OPTIONS: &str = "vers=4,minorversion=1,sec=sys";

/// Mounts `source` as `user`'s home (`/home/<user>`): installs nfs-common if needed, moves an
/// existing home aside to `/home/<user>.azsync-local`, mounts, adds one fstab line (with
/// `_netdev,nofail`, so a VM whose share is unreachable still boots) if there is none for this
/// source and mount point, and copies the old home in if the share is empty.
pub fn mount_script(source: &str, user: &str) -> String {
    let home = format!("/home/{user}");
    format!(
        r#"set -eu
src={src}
home={home}
user={user}
aside="$home.azsync-local"
opts={opts}

if ! command -v mount.nfs >/dev/null 2>&1; then
    echo "azsync: installing nfs-common" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q nfs-common >&2
fi

current=$(findmnt -n -o SOURCE --mountpoint "$home" 2>/dev/null || true)
if [ -n "$current" ] && [ "$current" != "$src" ]; then
    echo "azsync: $home is already a mount of $current; unmount it first" >&2
    exit 1
fi
if [ -z "$current" ]; then
    # Move the local home aside once; a rerun finds it there and leaves it.
    if [ -d "$home" ] && [ ! -e "$aside" ]; then
        mv "$home" "$aside"
    fi
    mkdir -p "$home"
    mount -t nfs -o "$opts" "$src" "$home"
fi

if ! awk -v s="$src" -v h="$home" '$1 == s && $2 == h {{ found = 1 }} END {{ exit !found }}' /etc/fstab; then
    printf '%s %s nfs %s,_netdev,nofail 0 0\n' "$src" "$home" "$opts" >> /etc/fstab
fi

# A new share is empty: give it the old home, as the user (root is squashed on the share).
if [ -d "$aside" ] && [ -z "$(ls -A "$home")" ]; then
    chown "$user": "$home" 2>/dev/null || true
    echo "azsync: copying the old home into the share" >&2
    sudo -u "$user" cp -a "$aside"/. "$home"/
fi
echo "azsync: $home is $src"
"#,
        src = quote(source),
        home = quote(&home),
        user = quote(user),
        opts = quote(NFS_OPTIONS),
    )
}

/// Undoes [`mount_script`]: unmounts the share from `/home/<user>`, removes its fstab line and
/// puts the home that was moved aside back (the share keeps its files).
pub fn unmount_script(source: &str, user: &str) -> String {
    let home = format!("/home/{user}");
    format!(
        r#"set -eu
src={src}
home={home}
aside="$home.azsync-local"

current=$(findmnt -n -o SOURCE --mountpoint "$home" 2>/dev/null || true)
if [ "$current" = "$src" ]; then
    umount "$home"
elif [ -n "$current" ]; then
    echo "azsync: $home is a mount of $current, not of $src; leaving it" >&2
    exit 1
fi

if awk -v s="$src" -v h="$home" '$1 == s && $2 == h {{ found = 1 }} END {{ exit !found }}' /etc/fstab; then
    tmp=$(mktemp /etc/fstab.azsync.XXXXXX)
    awk -v s="$src" -v h="$home" '!($1 == s && $2 == h)' /etc/fstab > "$tmp"
    chmod 644 "$tmp"
    mv "$tmp" /etc/fstab
fi

# The empty mount point goes; the old home comes back.
if [ -d "$aside" ]; then
    rmdir "$home" 2>/dev/null || true
    if [ ! -e "$home" ]; then
        mv "$aside" "$home"
    else
        echo "azsync: $home is not empty; the old home stays at $aside" >&2
    fi
fi
echo "azsync: $home is local again"
"#,
        src = quote(source),
        home = quote(&home),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh_parses(script: &str) {
        let out = Command::new("sh")
            .args(["-n", "-c", script])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "sh -n: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_mount_script_mounts_nfs_41_with_one_fstab_line() {
        let src = nfs_source("azlinhome", "home");
        assert_eq!(src, "azlinhome.file.core.windows.net:/azlinhome/home");
        let script = mount_script(&src, "azureuser");
        sh_parses(&script);
        for needle in [
            "src=azlinhome.file.core.windows.net:/azlinhome/home\n",
            "home=/home/azureuser\n",
            "opts='vers=4,minorversion=1,sec=sys'\n",
            "apt-get install -y -q nfs-common",
            r#"mv "$home" "$aside""#,
            r#"mount -t nfs -o "$opts" "$src" "$home""#,
            r#"printf '%s %s nfs %s,_netdev,nofail 0 0\n' "$src" "$home" "$opts" >> /etc/fstab"#,
            r#"sudo -u "$user" cp -a "$aside"/. "$home"/"#,
        ] {
            assert!(script.contains(needle), "missing {needle:?} in\n{script}");
        }
        // The fstab line is appended only behind a check for an existing one.
        let check = script.find("if ! awk").unwrap();
        let append = script.find(">> /etc/fstab").unwrap();
        assert!(check < append);
        sh_parses(&unmount_script(&src, "azureuser"));
    }

    #[test]
    fn values_are_quoted_once_and_used_only_as_variables() {
        let script = mount_script("x:/a b/c'd", "we ird");
        sh_parses(&script);
        assert!(script.contains("src='x:/a b/c'\\''d'\n"), "{script}");
        assert!(script.contains("home='/home/we ird'\n"), "{script}");
        assert!(!script.contains("a b/c") || script.matches("a b/c").count() == 1);
    }

    /// The fstab logic of both scripts, run for real on a scratch copy: the line is added
    /// once, however often the mount part runs, and removed by the unmount part.
    #[test]
    fn fstab_edits_are_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let fstab = t.path().join("fstab");
        std::fs::write(&fstab, "UUID=1 / ext4 defaults 0 1\n").unwrap();
        let src = nfs_source("acct", "home");
        let pick = |script: &str, from: &str, to: &str| {
            let start = script.find(from).unwrap();
            let end = start + script[start..].find(to).unwrap() + to.len();
            script[start..end].replace("/etc/fstab", &fstab.display().to_string())
        };
        let mount = mount_script(&src, "u");
        let add = format!(
            "src={}\nhome=/home/u\nopts={}\n{}",
            quote(&src),
            NFS_OPTIONS,
            pick(&mount, "if ! awk", "\nfi")
        );
        for _ in 0..3 {
            let out = Command::new("sh").args(["-c", &add]).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&fstab).unwrap();
        assert_eq!(
            text,
            format!(
                "UUID=1 / ext4 defaults 0 1\n{src} /home/u nfs \
                 vers=4,minorversion=1,sec=sys,_netdev,nofail 0 0\n"
            )
        );
        let unmount = unmount_script(&src, "u");
        // The temp file lands beside the scratch fstab (the path was rewritten with it).
        let remove = format!(
            "src={}\nhome=/home/u\n{}",
            quote(&src),
            pick(&unmount, "if awk", "\nfi")
        );
        let out = Command::new("sh").args(["-c", &remove]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&fstab).unwrap(),
            "UUID=1 / ext4 defaults 0 1\n"
        );
    }

    #[test]
    fn cloud_init_installs_the_tools() {
        let text = cloud_init("azureuser");
        assert!(text.starts_with("#cloud-config\n"));
        for tool in [
            "git",
            "tmux",
            "build-essential",
            "docker.io",
            "python3",
            "nodejs",
            "golang-go",
            "gh",
            "InstallAzureCLIDeb",
            "sh.rustup.rs",
        ] {
            assert!(text.contains(tool), "{tool}");
        }
    }
}
