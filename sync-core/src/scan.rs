//! The content scan: credentials that no file-name rule catches.
//!
//! [`SECRET_RULES`](crate::SECRET_RULES) know where credentials usually live; this scan finds
//! them where they do not: an AWS key pasted into `notes.txt`, a PEM private key saved as
//! `backup.txt`, a GitHub token in a shell script. It also drops symlinks that lead into a
//! credential directory (`~/.ssh`, `~/.aws`, `~/.azure`, `~/.config/gcloud`), which would
//! otherwise carry the way to a key across.
//!
//! It runs before the sync starts, as its own parallel pass over the tree, and turns each hit
//! into an anchored exclude pattern. That keeps the engine's walk untouched and gives scanned
//! secrets what every excluded path has: the receiver protects them from `--delete`, and one
//! scan serves any number of destinations ([`SyncBuilder::run_many`](crate::SyncBuilder)).
//!
//! Limits, on purpose: only the first [`SCAN_LIMIT`] bytes of a file are read (a credential
//! sits near the top of the files that hold one; a 2 GiB log is not read whole), and a file
//! with a NUL byte in its first 8 KiB is taken for binary and not scanned. Each file is read
//! once, into a per-thread buffer.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use regex::bytes::Regex;

use crate::entry;
use crate::error::{Error, Result};
use crate::filter::{Filter, Verdict};
use crate::progress::{SkipReason, Skipped};
use crate::walk;

/// Bytes read from the start of each file.
pub const SCAN_LIMIT: usize = 1 << 20;

/// Bytes checked for a NUL to tell a binary file.
const BINARY_PROBE: usize = 8 << 10;

/// Credential directories (relative to a home) that no symlink may lead into.
const CREDENTIAL_DIRS: &[&[&str]] = &[&[".ssh"], &[".aws"], &[".azure"], &[".config", "gcloud"]];

/// Credential patterns, one alternation so the regex engine's literal prefilter skips most
/// text at memchr speed. Each branch is tight enough that prose about credentials
/// ("Authorization: Bearer <token>") does not match.
const PATTERNS: &[&str] = &[
    // AWS access key ids (long-term AKIA, temporary ASIA, and the rarer prefixes).
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    // An AWS secret access key assigned in a config or script.
    r"(?i)aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+]{40}\b",
    // PEM private keys of every flavour (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP, plain PKCS#8).
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    // Azure storage account keys: 64 bytes, base64 (88 characters), in connection strings.
    r"AccountKey=[A-Za-z0-9+/]{86}==",
    // GitHub tokens: personal, OAuth, user-to-server, server-to-server, refresh; fine-grained.
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{50,}\b",
    // OAuth bearer tokens in headers and token caches.
    r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{20,}=*",
    r#"(?i)"(?:access|refresh|id)_token"\s*:\s*"[^"\s]{20,}""#,
    // Google OAuth access tokens, Slack tokens.
    r"\bya29\.[0-9A-Za-z\-_]{20,}",
    r"\bxox[abposr]-[0-9A-Za-z-]{10,}",
];

fn credentials() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let joined = PATTERNS
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        // The patterns are constants covered by tests; failing here is a bug in this file.
        #[allow(clippy::expect_used)]
        Regex::new(&joined).expect("the credential patterns compile")
    })
}

/// Whether `text` holds something that looks like a credential.
pub fn looks_like_credential(text: &[u8]) -> bool {
    credentials().is_match(text)
}

/// What a scan found: paths to report and patterns that keep them out of the sync.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// In path order.
    pub skipped: Vec<Skipped>,
    /// One anchored exclude pattern per skipped path.
    pub patterns: Vec<String>,
}

/// Scans the tree at `root` as the sync will see it: paths `filter` excludes are not entered
/// or read, and links the walk itself drops (with `safe_links`) are left to it.
pub(crate) fn scan_tree(root: &Path, filter: &Filter, safe_links: bool) -> Result<Found> {
    let hits = Mutex::new(Vec::new());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let ctx = Ctx {
        root,
        filter,
        safe_links,
        home: home.as_deref(),
        hits: &hits,
    };
    // The root must be listable; a subdirectory that is not is the walk's to report.
    fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    rayon::scope(|s| visit(s, &ctx, Vec::new()));
    let mut hits = hits.into_inner().unwrap_or_else(|p| p.into_inner());
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits.dedup_by(|a, b| a.0 == b.0);
    Ok(Found {
        patterns: hits.iter().map(|(rel, _)| anchored_pattern(rel)).collect(),
        skipped: hits
            .into_iter()
            .map(|(rel, reason)| Skipped::new(&rel, reason))
            .collect(),
    })
}

struct Ctx<'a> {
    root: &'a Path,
    filter: &'a Filter,
    safe_links: bool,
    home: Option<&'a Path>,
    hits: &'a Mutex<Vec<(Vec<u8>, SkipReason)>>,
}

impl Ctx<'_> {
    fn hit(&self, rel: Vec<u8>, reason: SkipReason) {
        self.hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((rel, reason));
    }
}

fn visit<'s>(s: &rayon::Scope<'s>, ctx: &'s Ctx<'s>, dir_rel: Vec<u8>) {
    let dir = if dir_rel.is_empty() {
        ctx.root.to_path_buf()
    } else {
        ctx.root.join(entry::as_path(&dir_rel))
    };
    // Unreadable directories and files are the sync's to report (as file errors), not ours.
    let Ok(items) = fs::read_dir(&dir) else {
        return;
    };
    let mut buf = Vec::new();
    for item in items.flatten() {
        let name = item.file_name();
        let rel = entry::join(&dir_rel, name.as_bytes());
        let Ok(ft) = item.file_type() else { continue };
        let verdict = ctx.filter.check(entry::as_path(&rel), ft.is_dir());
        if verdict != Verdict::Include {
            continue;
        }
        let path = dir.join(&name);
        if ft.is_dir() {
            s.spawn(move |s| visit(s, ctx, rel));
        } else if ft.is_file() {
            if let Ok(true) = file_has_credential(&path, &mut buf) {
                ctx.hit(rel, SkipReason::Secret);
            }
        } else if ft.is_symlink() {
            let Ok(target) = fs::read_link(&path) else {
                continue;
            };
            let target = target.as_os_str().as_bytes();
            if ctx.safe_links && !walk::is_safe_link(&dir_rel, target) {
                continue; // The walk drops and reports it.
            }
            if link_into_credentials(&dir_rel, target)
                || fs::canonicalize(&path).is_ok_and(|real| under_credentials(&real, ctx.home))
            {
                ctx.hit(rel, SkipReason::UnsafeLink);
            }
        }
    }
}

/// Reads up to [`SCAN_LIMIT`] bytes of a regular file (never through a symlink) and checks
/// them, unless the file looks binary.
fn file_has_credential(path: &Path, buf: &mut Vec<u8>) -> io::Result<bool> {
    let file = walk::open_source(path)?;
    buf.clear();
    file.take(SCAN_LIMIT as u64).read_to_end(buf)?;
    let probe = &buf[..buf.len().min(BINARY_PROBE)];
    if memchr_nul(probe) {
        return Ok(false);
    }
    Ok(looks_like_credential(buf))
}

fn memchr_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

/// Whether a link in `dir_rel` (relative to the root of the tree, which is a home) pointing at
/// `target` leads into a credential directory, judged from the link's text alone: a relative
/// target is resolved inside the tree, an absolute one is searched for a credential directory
/// anywhere in it (`/home/me/.ssh/id_rsa`, `/root/.aws`).
pub fn link_into_credentials(dir_rel: &[u8], target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        let parts: Vec<&[u8]> = target.split(|&b| b == b'/').collect();
        return (0..parts.len()).any(|i| starts_with_credential_dir(&parts[i..]));
    }
    let mut parts: Vec<&[u8]> = if dir_rel.is_empty() {
        Vec::new()
    } else {
        dir_rel.split(|&b| b == b'/').collect()
    };
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                // Above the root is outside the tree: `--safe-links` territory, and no
                // credential directory of this home.
                if parts.pop().is_none() {
                    return false;
                }
            }
            c => parts.push(c),
        }
    }
    starts_with_credential_dir(&parts)
}

fn starts_with_credential_dir(parts: &[&[u8]]) -> bool {
    CREDENTIAL_DIRS.iter().any(|dir| {
        dir.len() <= parts.len() && dir.iter().zip(parts).all(|(d, p)| d.as_bytes() == *p)
    })
}

/// Whether a resolved path lies in a credential directory of `home` (the user's real home,
/// where the keys are) or of any other home it passes through.
fn under_credentials(real: &Path, home: Option<&Path>) -> bool {
    if let Some(rest) = home.and_then(|h| real.strip_prefix(h).ok()) {
        let parts: Vec<&[u8]> = rest.iter().map(|c| c.as_bytes()).collect();
        if starts_with_credential_dir(&parts) {
            return true;
        }
    }
    link_into_credentials(b"", real.as_os_str().as_bytes())
}

/// An exclude pattern that matches exactly the path `rel` (relative to the root): anchored with
/// a leading `/`, glob characters escaped. A byte that is not UTF-8 becomes `?` (any one
/// character), which may also exclude a sibling that differs only there: on the safe side.
pub(crate) fn anchored_pattern(rel: &[u8]) -> String {
    let text = String::from_utf8_lossy(rel);
    let mut out = String::with_capacity(text.len() + 8);
    out.push('/');
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match c {
            '\\' | '*' | '?' | '[' | ']' | '{' | '}' => {
                out.push('\\');
                out.push(*c);
            }
            // Gitignore trims trailing spaces unless escaped.
            ' ' if chars[i + 1..].iter().all(|c| *c == ' ') => out.push_str("\\ "),
            '\u{FFFD}' => out.push('?'),
            c => out.push(*c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn credential_patterns_match_real_shapes() {
        let hits: &[&str] = &[
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
            "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=\
             Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;",
            "token: ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "GH=gho_0123456789abcdefghijABCDEFGHIJ012345",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
            r#"{"access_token": "ya29.a0AfH6SMBx-abcdefghijklmnopqrstuvwxyz"}"#,
            "SLACK=xoxb-123456789012-abcdefghij",
        ];
        for text in hits {
            assert!(looks_like_credential(text.as_bytes()), "{text}");
        }
        let misses: &[&str] = &[
            "Authorization: Bearer <token>",
            "set AWS_SECRET_ACCESS_KEY in your environment",
            "-----BEGIN PUBLIC KEY-----\n",
            "-----BEGIN CERTIFICATE-----\n",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG azureuser@vm",
            "see https://github.com/settings/tokens (ghp_...)",
            "AKIA is the prefix of an access key id",
            "fn main() { println!(\"hello\"); }",
        ];
        for text in misses {
            assert!(!looks_like_credential(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn links_into_credential_dirs_are_recognised() {
        assert!(link_into_credentials(b"", b".ssh/id_rsa"));
        assert!(link_into_credentials(b"", b".ssh"));
        assert!(link_into_credentials(b"bin", b"../.aws/credentials"));
        assert!(link_into_credentials(b"a/b", b"../../.config/gcloud"));
        assert!(link_into_credentials(
            b"",
            b"/home/me/.azure/msal_token_cache.json"
        ));
        assert!(link_into_credentials(b"", b"/root/.ssh"));
        assert!(!link_into_credentials(b"", b".sshrc"));
        assert!(!link_into_credentials(b"", b".config/git"));
        assert!(!link_into_credentials(b"", b"/etc/ssh/ssh_config"));
        assert!(!link_into_credentials(b"a", b"../notes/.ssh-tips"));
        assert!(
            !link_into_credentials(b"", b"../.ssh/id_rsa"),
            "outside the tree"
        );
    }

    #[test]
    fn anchored_patterns_match_only_their_path() {
        let names: &[&[u8]] = &[
            b"notes.txt",
            b"a dir/we*ird?[x].txt",
            b"trailing ",
            b"!bang",
            b"#hash",
            b"back\\slash",
            b"bad\xffbyte",
            b"br{a,b}ce",
        ];
        let t = tempfile::tempdir().unwrap();
        for name in names {
            let pattern = anchored_pattern(name);
            let f = Filter::new(&[pattern.as_str()], true).unwrap();
            let p = entry::as_path(name);
            assert_eq!(f.check(p, false), Verdict::Excluded, "{pattern}");
            assert_eq!(
                f.check(Path::new("other"), false),
                Verdict::Include,
                "{pattern}"
            );
        }
        let f = Filter::new(&[anchored_pattern(b"a/we*ird").as_str()], true).unwrap();
        assert_eq!(f.check(Path::new("a/weXird"), false), Verdict::Include);
        assert_eq!(f.check(Path::new("b/a/we*ird"), false), Verdict::Include);
        drop(t);
    }

    #[test]
    fn scan_finds_credentials_and_credential_links_and_respects_the_filter() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["notes", ".ssh", "node_modules/pkg", "bin"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("notes/aws.txt"), "key AKIAIOSFODNN7EXAMPLE\n").unwrap();
        fs::write(root.join("notes/plain.txt"), "nothing here\n").unwrap();
        let mut binary = vec![0u8; 16];
        binary.extend_from_slice(b"AKIAIOSFODNN7EXAMPLE");
        fs::write(root.join("notes/blob.bin"), binary).unwrap();
        // Past the read limit: not seen, by design.
        let mut big = vec![b'x'; SCAN_LIMIT];
        big.extend_from_slice(b" ghp_0123456789abcdefghijABCDEFGHIJ012345");
        fs::write(root.join("notes/big.log"), big).unwrap();
        // Excluded by the filter: never read.
        fs::write(
            root.join("node_modules/pkg/fixture.js"),
            "-----BEGIN PRIVATE KEY-----",
        )
        .unwrap();
        fs::write(
            root.join(".ssh/id_ed25519"),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        )
        .unwrap();
        symlink("../.ssh/id_ed25519", root.join("bin/key")).unwrap();
        symlink("../notes/plain.txt", root.join("bin/ok")).unwrap();

        let filter = Filter::new(&["node_modules/"], false).unwrap();
        let found = scan_tree(root, &filter, true).unwrap();
        let got: Vec<(String, SkipReason)> = found
            .skipped
            .iter()
            .map(|s| (s.path.display().to_string(), s.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bin/key".to_string(), SkipReason::UnsafeLink),
                ("notes/aws.txt".to_string(), SkipReason::Secret),
            ]
        );
        assert_eq!(found.patterns, vec!["/bin/key", "/notes/aws.txt"]);
    }
}
