//! `~/.ssh/known_hosts`, read and written the way OpenSSH does.
//!
//! Supported: plain host names and addresses, `[host]:port` for ports other than 22, comma
//! separated lists, `*`/`?` wildcards and `!negation`, hashed entries (`|1|salt|hash`, an
//! HMAC-SHA1 of the host string keyed by the salt, as written by `ssh-keygen -H` or
//! `HashKnownHosts yes`), and the `@revoked` marker. `@cert-authority` lines are skipped (host
//! certificates are not requested). Lines that cannot be parsed are skipped, as OpenSSH does.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// What a known_hosts file says about a host and the key it offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostStatus {
    /// The offered key is recorded for this host on that line.
    Known { line: usize },
    /// The file has a different key of the same type for this host (first such line).
    Changed { line: usize },
    /// The offered key is marked `@revoked` on that line.
    Revoked { line: usize },
    /// Nothing recorded for this host with a key of this type.
    Unknown,
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` elsewhere.
pub(crate) fn host_entry_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// A key's SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key type as OpenSSH names it in messages (`ED25519`, `ECDSA`, `RSA`).
pub(crate) fn key_type_label(key: &PublicKey) -> String {
    use russh::keys::Algorithm;
    match key.algorithm() {
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Dsa => "DSA".into(),
        other => other.as_str().to_ascii_uppercase(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One usable line of a known_hosts file.
#[derive(Debug)]
struct Line {
    number: usize,
    marker: Marker,
    key: PublicKey,
}

/// The lines of `path` whose host patterns match `name`. A missing file has none.
fn matching_lines(path: &Path, name: &str) -> io::Result<Vec<Line>> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    let mut found = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            m if m.starts_with('@') => continue,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = match fields.next() {
                Some(hosts) => hosts,
                None => continue,
            };
        }
        let (Some(_key_type), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, name) {
            continue;
        }
        let Ok(key) = russh::keys::parse_public_key_base64(blob) else {
            continue;
        };
        found.push(Line {
            number: index + 1,
            marker,
            key,
        });
    }
    Ok(found)
}

/// Checks `key`, offered by the host recorded as `name`, against the file at `path`.
pub(crate) fn check(path: &Path, name: &str, key: &PublicKey) -> io::Result<HostStatus> {
    let lines = matching_lines(path, name)?;
    if let Some(line) = lines
        .iter()
        .find(|l| l.marker == Marker::Revoked && l.key.key_data() == key.key_data())
    {
        return Ok(HostStatus::Revoked { line: line.number });
    }
    let plain = || lines.iter().filter(|l| l.marker == Marker::None);
    if let Some(line) = plain().find(|l| l.key.key_data() == key.key_data()) {
        return Ok(HostStatus::Known { line: line.number });
    }
    if let Some(line) = plain().find(|l| l.key.algorithm() == key.algorithm()) {
        return Ok(HostStatus::Changed { line: line.number });
    }
    Ok(HostStatus::Unknown)
}

/// The key algorithms recorded for `name`, in file order, so the client can ask the server for
/// a key it can check (as OpenSSH orders its HostKeyAlgorithms).
pub(crate) fn known_algorithms(path: &Path, name: &str) -> Vec<russh::keys::Algorithm> {
    let mut algorithms = Vec::new();
    for line in matching_lines(path, name).unwrap_or_default() {
        let algorithm = line.key.algorithm();
        if line.marker == Marker::None && !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    algorithms
}

/// Appends `name key` to the file, creating it (0600) and its directory (0700) if needed.
pub(crate) fn append(path: &Path, name: &str, key: &PublicKey) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut record = String::new();
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            record.push('\n');
        }
    }
    let bare = PublicKey::new(key.key_data().clone(), "");
    let openssh = bare
        .to_openssh()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    record.push_str(name);
    record.push(' ');
    record.push_str(openssh.trim());
    record.push('\n');
    // One write, so concurrent appenders do not interleave within a line.
    file.write_all(record.as_bytes())?;
    file.sync_data()
}

/// Whether the comma separated pattern list `patterns` matches `name`, with OpenSSH's rules: a
/// matching negated pattern wins over everything, otherwise any matching pattern matches.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64): HMAC-SHA1 keyed by the salt over the host name.
fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Shell-style wildcard match: `*` any run, `?` any one byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Where a host was recorded, for messages: `path:line`.
pub(crate) fn location(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
}

/// The default file, `~/.ssh/known_hosts` under `home`.
pub(crate) fn default_path(home: &Path) -> PathBuf {
    home.join(".ssh").join("known_hosts")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn ssh_known_hosts_globs() {
        assert!(glob(b"*.example.com", b"a.example.com"));
        assert!(!glob(b"*.example.com", b"example.com"));
        assert!(glob(b"10.0.?.1", b"10.0.3.1"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a", b""));
        assert!(hosts_match("foo,*.bar", "x.bar"));
        assert!(!hosts_match("*.bar,!x.bar", "x.bar"));
        assert!(hosts_match("[127.0.0.1]:2222", "[127.0.0.1]:2222"));
        assert!(!hosts_match("127.0.0.1", "[127.0.0.1]:2222"));
    }

    #[test]
    fn ssh_known_hosts_lines_markers_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "# comment\n\n[localhost]:13265 ssh-ed25519 {KEY_A}\n\
                 @cert-authority * ssh-ed25519 {KEY_B}\n\
                 garbage line\n\
                 |1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= ssh-ed25519 {KEY_B}\n\
                 @revoked bad.example ssh-ed25519 {KEY_A}\n\
                 tabbed.example\tssh-ed25519\t{KEY_A} a comment\n"
            ),
        )
        .unwrap();
        let name = host_entry_name("LOCALHOST", 13265);
        assert_eq!(name, "[localhost]:13265");
        assert_eq!(
            check(&path, &name, &key(KEY_A)).unwrap(),
            HostStatus::Known { line: 3 }
        );
        assert_eq!(
            check(&path, &name, &key(KEY_B)).unwrap(),
            HostStatus::Changed { line: 3 }
        );
        assert_eq!(
            check(&path, "example.com", &key(KEY_B)).unwrap(),
            HostStatus::Known { line: 6 }
        );
        assert_eq!(
            check(&path, "bad.example", &key(KEY_A)).unwrap(),
            HostStatus::Revoked { line: 7 }
        );
        assert_eq!(
            check(&path, "tabbed.example", &key(KEY_A)).unwrap(),
            HostStatus::Known { line: 8 }
        );
        assert_eq!(
            check(&path, "other", &key(KEY_A)).unwrap(),
            HostStatus::Unknown
        );
        assert_eq!(
            check(&dir.path().join("missing"), "other", &key(KEY_A)).unwrap(),
            HostStatus::Unknown
        );
    }

    #[test]
    fn ssh_known_hosts_append_creates_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/.ssh/known_hosts");
        append(&path, "[::1]:2222", &key(KEY_A)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"no-newline ssh-ed25519 AAAA")
            .unwrap();
        append(&path, "host", &key(KEY_B)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "[::1]:2222 ssh-ed25519 {KEY_A}\nno-newline ssh-ed25519 AAAA\nhost ssh-ed25519 {KEY_B}\n"
            )
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            check(&path, "host", &key(KEY_B)).unwrap(),
            HostStatus::Known { line: 3 }
        );
    }
}
