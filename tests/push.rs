//! `azsync push` to several real loopback sshds at once (the fake az maps VM names to them),
//! and the content scan as an opt-in of `azsync sync`.

mod common;

use std::path::Path;

use common::az::*;
use common::sshd::TestSshd;
use common::*;
use serde_json::Value;

/// Three servers that all accept the first one's client key (the push uses one key, as with
/// real VMs made by `vm create`).
fn three_servers() -> Vec<TestSshd> {
    let servers: Vec<TestSshd> = (0..3).map(|_| TestSshd::start()).collect();
    let key = std::fs::read_to_string(servers[0].client_key.with_extension("pub")).unwrap();
    for s in &servers[1..] {
        let file = s.dir.path().join("authorized_keys");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&key);
        std::fs::write(&file, text).unwrap();
    }
    servers
}

fn push_args(sb: &Sandbox, servers: &[TestSshd], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "push",
        "--json",
        "-g",
        "rg-test",
        "--ssh-user",
        servers[0].user.as_str(),
        "--ssh-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(servers[0].client_key.display().to_string());
    args.push("--home".into());
    args.push(sb.path("profile").display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn vm_status(summary: &Value, vm: &str) -> String {
    summary["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm"] == vm)
        .unwrap_or_else(|| panic!("no {vm} in {summary}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn push_reaches_three_vms_at_once_and_one_down_fails_alone() {
    let mut servers = three_servers();
    let mut sb = Sandbox::new();
    let profile = sb.path("profile");
    write_home(&profile);
    let vms: Vec<(&str, u16)> = ["vm1", "vm2", "vm3"]
        .iter()
        .zip(&servers)
        .map(|(n, s)| (*n, s.port))
        .collect();
    sb.logged_in().answer(&["vm", "list", "-d"], &vm_list(&vms));

    let run = sb.azsync(push_args(&sb, &servers, &["--all"]));
    run.expect_ok();
    for s in &servers {
        assert_home_pushed(&profile, &s.home);
    }
    let summary = run.json();
    assert_eq!(summary["failed"], serde_json::json!([]), "{summary}");
    for vm in ["vm1", "vm2", "vm3"] {
        assert_eq!(vm_status(&summary, vm), "ok");
    }
    assert_eq!(
        sb.calls()[1],
        [
            "vm",
            "list",
            "-d",
            "--resource-group",
            "rg-test",
            "--output",
            "json"
        ]
    );
    // Skips are named once on stderr, not once per VM.
    let stderr = run.stderr();
    assert_eq!(
        stderr
            .matches("azsync: skipped secret: notes/aws.txt\n")
            .count(),
        1,
        "{}",
        run.describe()
    );

    // vm2 goes down; a change still reaches the other two, and the run says vm2 failed.
    servers[1].stop();
    write_file(
        &profile.join("notes/todo.txt"),
        b"ship it today\n",
        0o644,
        at(1_800_000_000, 5),
    );
    let run = sb.azsync(push_args(&sb, &servers, &["vm1", "vm2", "vm3"]));
    run.expect_code(1);
    let summary = run.json();
    assert_eq!(summary["failed"], serde_json::json!(["vm2"]), "{summary}");
    assert_eq!(vm_status(&summary, "vm1"), "ok");
    assert_eq!(vm_status(&summary, "vm2"), "failed");
    assert_eq!(vm_status(&summary, "vm3"), "ok");
    let vm2 = summary["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm"] == "vm2")
        .unwrap();
    assert!(
        vm2["error"].as_str().unwrap().contains("127.0.0.1"),
        "{summary}"
    );
    for (s, expect) in servers.iter().zip([
        b"ship it today\n".as_slice(),
        b"ship it\n",
        b"ship it today\n",
    ]) {
        assert_eq!(
            std::fs::read(s.home.join("notes/todo.txt")).unwrap(),
            expect
        );
    }
    let stderr = run.stderr();
    assert!(
        stderr.contains("azsync: vm2: FAILED: ")
            && stderr.contains("azsync: error: push failed for 1 of 3 VM(s): vm2\n"),
        "{}",
        run.describe()
    );
}

#[test]
fn push_refuses_unknown_and_stopped_vms_by_name() {
    let servers = vec![TestSshd::start()];
    let mut sb = Sandbox::new();
    write_home(&sb.path("profile"));
    let mut list = vm_list(&[("vm1", servers[0].port), ("vm9", 1)]);
    list[1]["powerState"] = serde_json::json!("VM deallocated");
    list[1]["publicIps"] = serde_json::json!("");
    sb.logged_in().answer(&["vm", "list", "-d"], &list);

    let run = sb.azsync(push_args(&sb, &servers, &["vm1", "nope"]));
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("no VM named nope in resource group rg-test"),
        "{}",
        run.describe()
    );
    assert!(
        !servers[0].home.join("notes").exists(),
        "nothing is pushed when a name is wrong"
    );

    // A stopped VM fails on its own; the running one is synced.
    let run = sb.azsync(push_args(&sb, &servers, &["vm1", "vm9"]));
    run.expect_code(1);
    let summary = run.json();
    assert_eq!(summary["failed"], serde_json::json!(["vm9"]), "{summary}");
    assert!(
        summary["vms"][1]["error"].as_str().unwrap().contains(
            "VM vm9 is not running (VM deallocated): start it with `azsync vm start vm9`"
        ),
        "{summary}"
    );
    assert_home_pushed(&sb.path("profile"), &servers[0].home);

    // --dry-run says what would change and changes nothing.
    write_file(
        &sb.path("profile/notes/todo.txt"),
        b"changed\n",
        0o644,
        at(1_800_000_000, 7),
    );
    let run = sb.azsync(push_args(&sb, &servers, &["vm1", "--dry-run"]));
    run.expect_ok();
    let report = &run.json()["vms"][0]["report"];
    assert_eq!(report["dry_run"], true, "{report}");
    assert_eq!(num(report, "files_transferred"), 1, "{report}");
    assert_eq!(
        std::fs::read(servers[0].home.join("notes/todo.txt")).unwrap(),
        b"ship it\n"
    );

    // No VM named and no --all is a usage error.
    let run = sb.azsync(["push", "-g", "rg-test"]);
    run.expect_code(2);
}

/// `sync` scans contents only when asked; then the file is skipped, named, and protected on
/// the destination from --delete like any excluded path.
#[test]
fn sync_scans_contents_for_credentials_only_with_scan_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, plain, scanned) = (
        tmp.path().join("src"),
        tmp.path().join("plain"),
        tmp.path().join("scanned"),
    );
    std::fs::create_dir_all(src.join("notes")).unwrap();
    std::fs::write(src.join("notes/aws.txt"), "AKIAIOSFODNN7EXAMPLE\n").unwrap();
    std::fs::write(src.join("notes/todo.txt"), "ship it\n").unwrap();
    std::os::unix::fs::symlink("../.ssh/id_rsa", src.join("notes/key")).unwrap();

    let (run, report) = azsync_sync_json(&src, &plain, &[]);
    run.expect_ok();
    assert!(plain.join("notes/aws.txt").exists());
    assert!(skipped(&report).is_empty(), "{report}");

    let (run, report) = azsync_sync_json(&src, &scanned, &["--scan-secrets"]);
    run.expect_ok();
    assert!(!scanned.join("notes/aws.txt").exists());
    assert!(std::fs::symlink_metadata(scanned.join("notes/key")).is_err());
    assert!(scanned.join("notes/todo.txt").exists());
    assert_eq!(
        skipped(&report),
        [
            ("notes/aws.txt".to_string(), "secret".to_string()),
            ("notes/key".to_string(), "unsafe-link".to_string())
        ]
    );
    assert!(
        run.stderr()
            .contains("azsync: skipped secret: notes/aws.txt"),
        "{}",
        run.describe()
    );

    // The plain replica's copy of the secret is not deleted by a scanning --delete run.
    let (run, _) = azsync_sync_json(&src, &plain, &["--scan-secrets", "--delete"]);
    run.expect_ok();
    assert!(plain.join("notes/aws.txt").exists());
    assert!(Path::new(&plain.join("notes/todo.txt")).exists());
}
