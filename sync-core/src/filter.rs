//! Exclude rules: the built-in secret rules, the home profile's cache and toolchain rules, and
//! the user's gitignore-syntax patterns.
//!
//! Both sides build the same [`Filter`] from the same pattern list (the sender sends its patterns
//! to the receiver during the handshake, in bounded frames, however many there are). The sender
//! uses it to decide what to send; the receiver uses it to protect excluded destination paths
//! from `--delete`.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};

/// Built-in rules that keep credentials out of a sync, in gitignore syntax. Later `!` lines
/// re-include what is safe to copy.
pub const SECRET_RULES: &[&str] = &[
    // SSH: everything in ~/.ssh is private unless listed as safe below, plus stray keys anywhere.
    "**/.ssh/*",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_ecdsa_sk",
    "id_ed25519_sk",
    "*.ppk",
    // Cloud credentials.
    "**/.aws/credentials",
    "**/.aws/sso/cache/",
    "**/.aws/cli/cache/",
    "**/.azure/accessTokens.json",
    "**/.azure/msal_token_cache.*",
    "**/.azure/msal_http_cache*",
    "**/.azure/service_principal_entries.*",
    "**/.config/gcloud/",
    "**/.kube/config",
    "**/.docker/config.json",
    // Keys and certificates with private parts.
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "**/.gnupg/private-keys-v1.d/",
    "**/.gnupg/secring.gpg",
    // Token files.
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".env",
    ".env.*",
    // Safe to copy.
    "!**/.ssh/config",
    "!**/.ssh/config.d/",
    "!**/.ssh/known_hosts",
    "!**/.ssh/known_hosts.old",
    "!**/.ssh/authorized_keys",
    "!**/.ssh/*.pub",
    "!.env.example",
    "!.env.sample",
    "!.env.template",
    "!.env.dist",
];

/// The home profile's rules (`azsync push`), in gitignore syntax: caches, toolchains, package
/// stores and build output that a VM rebuilds or downloads itself. Copying them costs time and
/// disk and can break the VM (a toolchain built for another machine). They are ordinary
/// excludes: put first, so a user's `!pattern` (in `.azsyncignore` or `--exclude`) can bring
/// one back, and protected on the destination from `--delete` like any excluded path.
pub const HOME_PROFILE_RULES: &[&str] = &[
    // Generic caches (XDG and macOS-style).
    "/.cache/",
    "/Library/Caches/",
    // Rust: toolchains and the registry; `rustup`'s downloads and tmp.
    "/.rustup/toolchains/",
    "/.rustup/downloads/",
    "/.rustup/tmp/",
    "/.cargo/registry/",
    "/.cargo/git/",
    // JavaScript.
    "node_modules/",
    "/.npm/",
    "/.pnpm-store/",
    "/.yarn/cache/",
    "/.bun/install/cache/",
    // Python.
    ".venv/",
    "__pycache__/",
    "*.pyc",
    "/.pyenv/versions/",
    "/.conda/pkgs/",
    ".tox/",
    ".mypy_cache/",
    ".pytest_cache/",
    // Go, Java, .NET.
    "/go/pkg/mod/",
    "/.gradle/caches/",
    "/.m2/repository/",
    "/.nuget/packages/",
    // Local state that belongs to this machine, or to the VM.
    "/.local/share/Trash/",
    "/.vscode-server/",
];

/// Why a path is not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Synced.
    Include,
    /// Excluded by a user pattern (`--exclude`, `--exclude-from`, `.azsyncignore`).
    Excluded,
    /// Excluded by a built-in secret rule.
    Secret,
}

/// A compiled set of rules.
#[derive(Debug)]
pub struct Filter {
    user: Gitignore,
    secrets: Option<Gitignore>,
}

impl Filter {
    /// Compiles the user's patterns (gitignore syntax, later lines win) and, unless
    /// `allow_secrets`, the built-in secret rules.
    pub fn new<S: AsRef<str>>(patterns: &[S], allow_secrets: bool) -> Result<Filter> {
        let user = build(patterns.iter().map(AsRef::as_ref))?;
        let secrets = if allow_secrets {
            None
        } else {
            Some(build(SECRET_RULES.iter().copied())?)
        };
        Ok(Filter { user, secrets })
    }

    /// The verdict for `rel`, a path relative to the root of the sync.
    pub fn check(&self, rel: &Path, is_dir: bool) -> Verdict {
        if let Match::Ignore(_) = self.user.matched(rel, is_dir) {
            return Verdict::Excluded;
        }
        if let Some(secrets) = &self.secrets {
            if let Match::Ignore(_) = secrets.matched(rel, is_dir) {
                return Verdict::Secret;
            }
        }
        Verdict::Include
    }
}

fn build<'a>(patterns: impl Iterator<Item = &'a str>) -> Result<Gitignore> {
    // An empty root: every path we match is already relative to the root of the sync.
    let mut builder = GitignoreBuilder::new("");
    for pattern in patterns {
        builder.add_line(None, pattern).map_err(|e| Error::Filter {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
    }
    builder.build().map_err(|e| Error::Filter {
        pattern: String::new(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(f: &Filter, p: &str) -> Verdict {
        f.check(Path::new(p), false)
    }

    #[test]
    fn secrets_are_excluded_and_safe_files_kept() {
        let f = Filter::new::<&str>(&[], false).unwrap();
        for secret in [
            ".ssh/id_ed25519",
            ".ssh/azlin_key",
            ".aws/credentials",
            "x.pem",
            "deep/dir/server.key",
            ".env",
            "app/.env.production",
            "id_rsa",
        ] {
            assert_eq!(verdict(&f, secret), Verdict::Secret, "{secret}");
        }
        for safe in [
            ".ssh/config",
            ".ssh/known_hosts",
            ".ssh/id_ed25519.pub",
            ".env.example",
            "src/main.rs",
            ".aws/config",
        ] {
            assert_eq!(verdict(&f, safe), Verdict::Include, "{safe}");
        }
        assert_eq!(f.check(Path::new(".config/gcloud"), true), Verdict::Secret);
    }

    #[test]
    fn allow_secrets_turns_the_rules_off() {
        let f = Filter::new::<&str>(&[], true).unwrap();
        assert_eq!(verdict(&f, ".ssh/id_ed25519"), Verdict::Include);
    }

    #[test]
    fn user_patterns_use_gitignore_syntax() {
        let f = Filter::new(&["*.log", "build/", "/top.txt", "!keep.log"], false).unwrap();
        assert_eq!(verdict(&f, "a/b.log"), Verdict::Excluded);
        assert_eq!(verdict(&f, "keep.log"), Verdict::Include);
        assert_eq!(f.check(Path::new("x/build"), true), Verdict::Excluded);
        assert_eq!(verdict(&f, "x/build"), Verdict::Include);
        assert_eq!(verdict(&f, "top.txt"), Verdict::Excluded);
        assert_eq!(verdict(&f, "a/top.txt"), Verdict::Include);
    }

    #[test]
    fn home_profile_rules_drop_caches_and_toolchains_only() {
        let f = Filter::new(HOME_PROFILE_RULES, false).unwrap();
        for (path, is_dir) in [
            (".cache", true),
            (".rustup/toolchains", true),
            (".cargo/registry", true),
            ("src/app/node_modules", true),
            (".npm", true),
            ("proj/.venv", true),
            ("proj/pkg/__pycache__", true),
            ("go/pkg/mod", true),
        ] {
            assert_eq!(
                f.check(Path::new(path), is_dir),
                Verdict::Excluded,
                "{path}"
            );
        }
        for (path, is_dir) in [
            (".rustup/settings.toml", false),
            (".cargo/config.toml", false),
            (".cargo/bin", true),
            ("src/app/package.json", false),
            ("notes/.cache", false),
            (".bashrc", false),
        ] {
            assert_eq!(f.check(Path::new(path), is_dir), Verdict::Include, "{path}");
        }
        // A user's later `!` line brings an excluded directory back.
        let mut patterns = HOME_PROFILE_RULES.to_vec();
        patterns.push("!/.npm/");
        let f = Filter::new(&patterns, false).unwrap();
        assert_eq!(f.check(Path::new(".npm"), true), Verdict::Include);
    }

    #[test]
    fn a_user_negation_cannot_reinclude_a_secret() {
        let f = Filter::new(&["!*.pem"], false).unwrap();
        assert_eq!(verdict(&f, "x.pem"), Verdict::Secret);
    }
}
