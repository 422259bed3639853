//! The Azure commands against a fake `az` (see `common/az.rs`): the exact argument lists az
//! receives, dry runs that call nothing, the errors for az failing, missing, logged out or
//! answering garbage, the settings file, and an end-to-end `vm create` whose "VM" is a real
//! loopback sshd.

mod common;

use std::os::unix::fs::MetadataExt;

use common::az::*;
use common::sshd::TestSshd;
use common::*;
use serde_json::json;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

const ACCOUNT_SHOW: &[&str] = &["account", "show", "--output", "json"];

#[test]
fn vm_create_dry_run_prints_the_az_lines_and_calls_nothing() {
    let sb = Sandbox::new();
    let key = sb.key_pair();
    sb.config("default_resource_group = \"rg-test\"\ndefault_region = \"eastus\"\n");
    let run = sb.azsync([
        "vm",
        "create",
        "dev1",
        "--dry-run",
        "--size",
        "Standard_B2s",
    ]);
    run.expect_ok();
    let cloud_init = sb.config_dir.join("cloud-init.yaml");
    let expected = format!(
        "az group exists --name rg-test --output json\n\
         az group create --name rg-test --location eastus --output json\n\
         az vm create --resource-group rg-test --name dev1 --location eastus \
         --image Canonical:ubuntu-24_04-lts:server:latest --size Standard_B2s \
         --admin-username azureuser --ssh-key-values {key}.pub --public-ip-sku Standard \
         --vnet-name azlin-vnet --subnet azlin-subnet --os-disk-delete-option Delete \
         --nic-delete-option Delete --custom-data {cloud_init} --output json\n",
        key = key.display(),
        cloud_init = cloud_init.display(),
    );
    assert_eq!(run.stdout(), expected, "{}", run.describe());
    assert!(
        sb.calls().is_empty(),
        "a dry run called az: {:?}",
        sb.calls()
    );
    let text = std::fs::read_to_string(&cloud_init).unwrap();
    assert!(text.starts_with("#cloud-config\n") && text.contains("build-essential"));
}

#[test]
fn a_default_vm_name_is_a_utc_timestamp() {
    let sb = Sandbox::new();
    sb.key_pair();
    let run = sb.azsync(["vm", "create", "-n", "-g", "rg-test"]);
    run.expect_ok();
    let line = run.stdout().lines().nth(2).unwrap().to_string();
    let name = line
        .split(" --name ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(name.starts_with("azlin-") && name.len() == 21, "{line}");
    let digits: String = name[6..].replace('-', "");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{name}");
    assert!(sb.calls().is_empty());
}

#[test]
fn storage_create_dry_run_prints_the_az_lines_and_calls_nothing() {
    let sb = Sandbox::new();
    let run = sb.azsync([
        "storage",
        "create",
        "azlinhome",
        "--size-gb",
        "200",
        "--dry-run",
        "-g",
        "rg-test",
        "--region",
        "westeurope",
    ]);
    run.expect_ok();
    assert_eq!(
        run.stdout(),
        "az group exists --name rg-test --output json\n\
         az group create --name rg-test --location westeurope --output json\n\
         az storage account create --resource-group rg-test --name azlinhome --location \
         westeurope --kind FileStorage --sku Premium_ZRS --https-only false \
         --allow-blob-public-access false --default-action Deny --output json\n\
         az storage share-rm create --resource-group rg-test --storage-account azlinhome \
         --name home --enabled-protocols NFS --root-squash RootSquash --quota 200 --output json\n\
         az network vnet subnet update --resource-group rg-test --vnet-name azlin-vnet --name \
         azlin-subnet --service-endpoints Microsoft.Storage --output json\n\
         az storage account network-rule add --resource-group rg-test --account-name azlinhome \
         --subnet '<id of subnet azlin-subnet in VNet azlin-vnet>' --output json\n",
        "{}",
        run.describe()
    );
    assert!(
        sb.calls().is_empty(),
        "a dry run called az: {:?}",
        sb.calls()
    );
}

#[test]
fn storage_create_makes_a_premium_nfs_share_open_to_the_vm_subnet() {
    let mut sb = Sandbox::new();
    let subnet_id = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-test/\
                     providers/Microsoft.Network/virtualNetworks/azlin-vnet/subnets/azlin-subnet";
    sb.logged_in()
        .answer_raw(&["group", "exists"], "true\n")
        .answer(
            &["storage", "account", "create"],
            &json!({"name": "azlinhome", "kind": "FileStorage", "location": "westus2",
                    "sku": {"name": "Premium_ZRS", "tier": "Premium"},
                    "provisioningState": "Succeeded", "enableHttpsTrafficOnly": false}),
        )
        .answer(
            &["storage", "share-rm", "create"],
            &json!({"name": "home", "enabledProtocols": "NFS", "rootSquash": "RootSquash",
                    "shareQuota": 100, "type": "Microsoft.Storage/storageAccounts/fileServices/shares"}),
        )
        .answer(
            &["network", "vnet", "subnet", "update"],
            &json!({"id": subnet_id, "name": "azlin-subnet", "addressPrefix": "10.0.0.0/24",
                    "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westus2"]}]}),
        )
        .answer(
            &["storage", "account", "network-rule", "add"],
            &json!({"defaultAction": "Deny", "virtualNetworkRules": [
                {"virtualNetworkResourceId": subnet_id, "action": "Allow"}]}),
        );
    let run = sb.azsync(["storage", "create", "azlinhome", "-g", "rg-test"]);
    run.expect_ok();
    assert_eq!(
        run.stdout(),
        "azlinhome.file.core.windows.net:/azlinhome/home\n"
    );
    assert_eq!(
        sb.calls(),
        vec![
            strings(ACCOUNT_SHOW),
            strings(&["group", "exists", "--name", "rg-test", "--output", "json"]),
            strings(&[
                "storage",
                "account",
                "create",
                "--resource-group",
                "rg-test",
                "--name",
                "azlinhome",
                "--location",
                "westus2",
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
                "--output",
                "json"
            ]),
            strings(&[
                "storage",
                "share-rm",
                "create",
                "--resource-group",
                "rg-test",
                "--storage-account",
                "azlinhome",
                "--name",
                "home",
                "--enabled-protocols",
                "NFS",
                "--root-squash",
                "RootSquash",
                "--quota",
                "100",
                "--output",
                "json"
            ]),
            strings(&[
                "network",
                "vnet",
                "subnet",
                "update",
                "--resource-group",
                "rg-test",
                "--vnet-name",
                "azlin-vnet",
                "--name",
                "azlin-subnet",
                "--service-endpoints",
                "Microsoft.Storage",
                "--output",
                "json"
            ]),
            strings(&[
                "storage",
                "account",
                "network-rule",
                "add",
                "--resource-group",
                "rg-test",
                "--account-name",
                "azlinhome",
                "--subnet",
                subnet_id,
                "--output",
                "json"
            ]),
        ]
    );
}

#[test]
fn a_bad_account_name_is_refused_before_az_runs() {
    let mut sb = Sandbox::new();
    sb.logged_in();
    for name in ["Azlin-Home", "ab", "azlinhomeazlinhomeazlinho"] {
        let run = sb.azsync(["storage", "create", name, "-g", "rg-test"]);
        run.expect_code(2);
        assert!(
            run.stderr().contains(&format!(
                "invalid storage account name {name:?}: use 3 to 24 lowercase letters and digits"
            )),
            "{}",
            run.describe()
        );
        let run = sb.azsync(["storage", "mount", name, "--vm", "dev1", "-g", "rg-test"]);
        run.expect_code(2);
    }
    assert!(sb.calls().is_empty(), "az was called: {:?}", sb.calls());
}

#[test]
fn az_failing_is_an_error_that_quotes_its_stderr() {
    let mut sb = Sandbox::new();
    sb.logged_in().fail(
        &["vm", "list"],
        3,
        "ERROR: (ResourceGroupNotFound) Resource group 'rg-gone' could not be found.\n\
         Code: ResourceGroupNotFound\n",
    );
    let run = sb.azsync(["vm", "list", "-g", "rg-gone"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        "azsync: error: `az vm list -d --resource-group rg-gone --output json` failed (exit \
         status 3): ERROR: (ResourceGroupNotFound) Resource group 'rg-gone' could not be \
         found. / Code: ResourceGroupNotFound\n",
        "{}",
        run.describe()
    );
}

#[test]
fn az_missing_says_how_to_install_it() {
    let sb = Sandbox::new();
    let empty = sb.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let run = sb.azsync_with_path(["vm", "list", "-g", "rg-test"], empty.as_os_str());
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains("the Azure CLI (az) is not on PATH: install the Azure CLI")
            && err.contains("https://aka.ms/installazurecli")
            && err.contains("then run `az login`"),
        "{}",
        run.describe()
    );
}

#[test]
fn not_logged_in_says_to_run_az_login() {
    let mut sb = Sandbox::new();
    sb.fail(
        &["account", "show"],
        1,
        "ERROR: Please run 'az login' to setup account.\n",
    );
    let run = sb.azsync(["vm", "start", "dev1", "-g", "rg-test"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(
            "not logged in to Azure (`az account show` failed: ERROR: Please run 'az login' to \
             setup account.): run `az login`"
        ),
        "{}",
        run.describe()
    );
    assert_eq!(
        sb.calls(),
        vec![strings(ACCOUNT_SHOW)],
        "nothing after the check"
    );
}

#[test]
fn a_malformed_json_answer_is_an_error_naming_the_command() {
    let mut sb = Sandbox::new();
    sb.logged_in()
        .answer_raw(&["vm", "list"], "[{\"name\": \"dev1\", \"powerState\": ");
    let run = sb.azsync(["vm", "list", "-g", "rg-test"]);
    run.expect_code(1);
    assert!(
        run.stderr().starts_with(
            "azsync: error: `az vm list -d --resource-group rg-test --output json` printed \
             output azsync cannot read (EOF while parsing"
        ),
        "{}",
        run.describe()
    );
    // Valid JSON of the wrong shape too.
    let mut sb = Sandbox::new();
    sb.logged_in()
        .answer(&["vm", "list"], &json!({"value": []}));
    let run = sb.azsync(["vm", "list", "-g", "rg-test"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("printed output azsync cannot read (invalid type: map"),
        "{}",
        run.describe()
    );
}

#[test]
fn vm_list_shows_name_state_ip_and_size() {
    let mut sb = Sandbox::new();
    let mut list = vm_list(&[("dev1", 22), ("dev2", 22)]);
    list[1]["powerState"] = json!("VM deallocated");
    list[1]["publicIps"] = json!("");
    list[1]["hardwareProfile"]["vmSize"] = json!("Standard_B2s");
    sb.logged_in().answer(&["vm", "list", "-d"], &list);
    sb.config("default_resource_group = \"rg-test\"\n");
    let run = sb.azsync(["vm", "list"]);
    run.expect_ok();
    assert_eq!(
        run.stdout(),
        "NAME  STATE        IP         SIZE             REGION\n\
         dev1  running      127.0.0.1  Standard_D4s_v5  westus2\n\
         dev2  deallocated  -          Standard_B2s     westus2\n",
        "{}",
        run.describe()
    );
    assert_eq!(
        sb.calls()[1],
        strings(&[
            "vm",
            "list",
            "-d",
            "--resource-group",
            "rg-test",
            "--output",
            "json"
        ])
    );
}

#[test]
fn vm_start_stop_and_delete_send_these_arguments() {
    let mut sb = Sandbox::new();
    sb.logged_in()
        .answer_raw(&["vm", "start"], "")
        .answer_raw(&["vm", "deallocate"], "")
        .answer_raw(&["vm", "delete"], "");
    sb.azsync(["vm", "start", "dev1", "-g", "rg-test"])
        .expect_ok();
    sb.azsync(["vm", "stop", "dev1", "-g", "rg-test"])
        .expect_ok();
    let refused = sb.azsync(["vm", "delete", "dev1", "-g", "rg-test"]);
    refused.expect_code(2);
    assert!(
        refused.stderr().contains("add --yes"),
        "{}",
        refused.describe()
    );
    sb.azsync(["vm", "delete", "dev1", "--yes", "-g", "rg-test"])
        .expect_ok();
    let g = ["--resource-group", "rg-test", "--name", "dev1"];
    let call = |verb: &str, extra: &[&str]| {
        let mut v = strings(&["vm", verb]);
        v.extend(strings(&g));
        v.extend(strings(extra));
        v.extend(strings(&["--output", "json"]));
        v
    };
    // One login check per process.
    assert_eq!(
        sb.calls(),
        vec![
            strings(ACCOUNT_SHOW),
            call("start", &[]),
            strings(ACCOUNT_SHOW),
            call("deallocate", &[]),
            strings(ACCOUNT_SHOW),
            call("delete", &["--yes"]),
        ]
    );
}

#[test]
fn the_settings_file_is_private_keeps_comments_and_yields_to_flags() {
    let mut sb = Sandbox::new();
    sb.logged_in().answer(&["vm", "list"], &json!([]));
    // No file yet: the first command creates the folder and the file, private.
    let run = sb.azsync(["vm", "list", "-g", "rg-flag"]);
    run.expect_ok();
    let file = sb.config_dir.join("config.toml");
    assert_eq!(
        std::fs::metadata(&sb.config_dir).unwrap().mode() & 0o777,
        0o700
    );
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

    std::fs::write(
        &file,
        "# Team settings; ask Ana before changing.\ndefault_region = \"eastus\" # closest\n",
    )
    .unwrap();
    sb.azsync(["config", "set", "default_resource_group", "rg-file"])
        .expect_ok();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# Team settings; ask Ana before changing.\ndefault_region = \"eastus\" # closest\n\
         default_resource_group = \"rg-file\"\n"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

    sb.azsync(["vm", "list"]).expect_ok();
    sb.azsync(["vm", "list", "--resource-group", "rg-flag"])
        .expect_ok();
    let groups: Vec<String> = sb
        .calls()
        .into_iter()
        .filter(|c| c[0] == "vm")
        .map(|c| c[4].clone())
        .collect();
    assert_eq!(groups, ["rg-flag", "rg-file", "rg-flag"]);

    // AZLIN_CONFIG_DIR decides where the file is; HOME's ~/.azlin is never created.
    assert!(!sb.home.join(".azlin/config.toml").exists());
    let path = sb.azsync(["config", "path"]);
    assert_eq!(path.stdout().trim(), file.display().to_string());
}

#[test]
fn a_missing_resource_group_says_how_to_set_one() {
    let sb = Sandbox::new();
    let run = sb.azsync(["vm", "list"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("no resource group: pass --resource-group NAME or run `azsync config set default_resource_group NAME`"),
        "{}",
        run.describe()
    );
    assert!(sb.calls().is_empty());
}

/// The whole `vm create`: the fake az "creates" a VM at 127.0.0.1 whose SSH port is a real
/// sshd's; azsync waits for a login, polls a stub `cloud-init` until it says done, and pushes
/// the home profile, which arrives without secrets, caches or unsafe links.
#[test]
fn vm_create_waits_for_ssh_and_cloud_init_then_pushes_the_home() {
    let mut sb = Sandbox::new();
    let remote_bin = sb.path("remote-bin");
    std::fs::create_dir_all(&remote_bin).unwrap();
    // "running" on the first call, "done" after: azsync must poll, not take the first answer.
    write_script(
        &remote_bin.join("cloud-init"),
        &format!(
            "[ \"$1\" = status ] || exit 64\n\
             if [ -e {calls} ]; then echo 'status: done'; else : > {calls}; echo 'status: running'; fi\n",
            calls = remote_bin.join("called").display()
        ),
    );
    let sshd = TestSshd::start_with_env(&[&format!("PATH={}:/usr/bin:/bin", remote_bin.display())]);
    let home_profile = sb.home.join(".azlin/home");
    write_home(&home_profile);
    sb.logged_in()
        .answer_raw(&["group", "exists"], "false\n")
        .answer(
            &["group", "create"],
            &json!({"id": "/subscriptions/x/resourceGroups/rg-test", "location": "westus2",
                    "name": "rg-test", "properties": {"provisioningState": "Succeeded"}}),
        )
        .answer(
            &["vm", "create"],
            &json!({
                "fqdns": "",
                "id": "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachines/dev1",
                "location": "westus2",
                "macAddress": "00-0D-3A-00-00-01",
                "powerState": "VM running",
                "privateIpAddress": "10.0.0.4",
                "publicIpAddress": "127.0.0.1",
                "resourceGroup": "rg-test",
                "zones": ""
            }),
        );
    let key = sshd.client_key.display().to_string();
    let port = sshd.port.to_string();
    let run = sb.azsync([
        "vm",
        "create",
        "dev1",
        "-g",
        "rg-test",
        "--ssh-port",
        &port,
        "--ssh-user",
        &sshd.user,
        "--ssh-key",
        &key,
        "--json",
    ]);
    run.expect_ok();
    let calls = sb.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0], strings(ACCOUNT_SHOW));
    assert_eq!(
        calls[2],
        strings(&[
            "group",
            "create",
            "--name",
            "rg-test",
            "--location",
            "westus2",
            "--output",
            "json"
        ])
    );
    let create = &calls[3];
    assert_eq!(create[..2], strings(&["vm", "create"])[..]);
    for pair in [
        ["--admin-username", sshd.user.as_str()],
        ["--ssh-key-values", &format!("{key}.pub")],
        ["--public-ip-sku", "Standard"],
        ["--image", "Canonical:ubuntu-24_04-lts:server:latest"],
        [
            "--custom-data",
            &sb.config_dir.join("cloud-init.yaml").display().to_string(),
        ],
    ] {
        assert!(
            create
                .windows(2)
                .any(|w| w[0] == pair[0] && w[1] == pair[1]),
            "{pair:?} not in {create:?}"
        );
    }
    let stderr = run.stderr();
    for line in [
        "azsync: created VM dev1 at 127.0.0.1",
        &format!(
            "azsync: dev1: waiting for SSH on {}@127.0.0.1:{port}",
            sshd.user
        ),
        "azsync: dev1: waiting for cloud-init to install the tools",
        "azsync: dev1: cloud-init is done",
    ] {
        assert!(
            stderr.contains(line),
            "missing {line:?}\n{}",
            run.describe()
        );
    }
    assert!(remote_bin.join("called").exists());
    assert_home_pushed(&home_profile, &sshd.home);

    let summary = run.json();
    assert_eq!(summary["failed"], json!([]), "{summary}");
    assert_eq!(summary["vms"][0]["vm"], "dev1");
    assert_eq!(summary["vms"][0]["status"], "ok");
    let mut skipped = skipped(&summary["vms"][0]["report"]);
    skipped.sort();
    let want: Vec<(String, String)> = HOME_SKIPPED
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect();
    assert_eq!(skipped, want);
    // Each skip is named on stderr, once.
    for (path, reason) in HOME_SKIPPED {
        let line = format!("azsync: skipped {reason}: {path}\n");
        assert_eq!(
            stderr.matches(&line).count(),
            1,
            "{line:?}\n{}",
            run.describe()
        );
    }
}

/// `storage mount` finds the VM through az, logs in, and feeds the mount script to
/// `sudo -n sh -s` on stdin (a stub sudo records it: the real one would change this machine's
/// /etc/fstab). `--dry-run` prints the az line and the script instead.
#[test]
fn storage_mount_sends_the_mount_script_to_root_over_ssh() {
    let mut sb = Sandbox::new();
    let remote_bin = sb.path("remote-bin");
    std::fs::create_dir_all(&remote_bin).unwrap();
    let got = sb.path("script.sh");
    write_script(
        &remote_bin.join("sudo"),
        &format!(
            "[ \"$*\" = '-n sh -s' ] || {{ echo \"unexpected sudo $*\" >&2; exit 64; }}\n\
             cat > {got}\necho 'azsync: /home/x is mounted'\n",
            got = got.display()
        ),
    );
    let sshd = TestSshd::start_with_env(&[&format!("PATH={}:/usr/bin:/bin", remote_bin.display())]);
    let vm = vm_list(&[("dev1", sshd.port)])[0].clone();
    sb.logged_in().answer(&["vm", "show", "-d"], &vm);
    let key = sshd.client_key.display().to_string();
    let args = [
        "storage",
        "mount",
        "azlinhome",
        "--vm",
        "dev1",
        "-g",
        "rg-test",
        "--ssh-user",
        &sshd.user,
        "--ssh-key",
        &key,
    ];
    let run = sb.azsync(args);
    run.expect_ok();
    assert_eq!(
        sb.calls()[1],
        strings(&[
            "vm",
            "show",
            "-d",
            "--resource-group",
            "rg-test",
            "--name",
            "dev1",
            "--output",
            "json"
        ])
    );
    let script = std::fs::read_to_string(&got).unwrap();
    assert!(script.starts_with("set -eu\nsrc=azlinhome.file.core.windows.net:/azlinhome/home\n"));
    assert!(
        script.contains(&format!("home=/home/{}\n", sshd.user)),
        "{script}"
    );
    assert!(script.contains(r#"mount -t nfs -o "$opts" "$src" "$home""#));
    assert!(
        run.stderr().contains("dev1: azsync: /home/x is mounted"),
        "{}",
        run.describe()
    );

    // A dry run calls nothing and shows what would run where.
    let calls = sb.calls().len();
    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    let run = sb.azsync(dry);
    run.expect_ok();
    assert_eq!(sb.calls().len(), calls);
    let out = run.stdout();
    assert!(
        out.starts_with(
            "az vm show -d --resource-group rg-test --name dev1 --output json\n\
             # then, on dev1 over SSH, as root (sudo -n sh -s):\nset -eu\n"
        ),
        "{out}"
    );
}

#[test]
fn storage_list_status_and_vm_show_print_what_az_says() {
    let mut sb = Sandbox::new();
    let subnet = "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Network/\
                  virtualNetworks/azlin-vnet/subnets/azlin-subnet";
    let account = json!({
        "name": "azlinhome", "kind": "FileStorage", "location": "westus2",
        "sku": {"name": "Premium_ZRS", "tier": "Premium"},
        "networkRuleSet": {"defaultAction": "Deny", "bypass": "AzureServices",
            "virtualNetworkRules": [{"virtualNetworkResourceId": subnet, "action": "Allow"}]}
    });
    sb.logged_in()
        .answer(
            &["storage", "account", "list"],
            &json!([account.clone(), {"name": "logs", "kind": "StorageV2", "location": "westus2",
                                      "sku": {"name": "Standard_LRS"}}]),
        )
        .answer(&["storage", "account", "show"], &account)
        .answer(
            &["storage", "share-rm", "show"],
            &json!({"name": "home", "shareQuota": 100, "enabledProtocols": "NFS",
                    "rootSquash": "RootSquash"}),
        )
        .answer(&["vm", "show", "-d"], &vm_list(&[("dev1", 22)])[0]);
    sb.config("default_resource_group = \"rg-test\"\ndefault_nfs_storage = \"azlinhome\"\n");

    let run = sb.azsync(["storage", "list"]);
    run.expect_ok();
    assert_eq!(
        run.stdout(),
        "NAME                      REGION          SKU           NFS\n\
         azlinhome                 westus2         Premium_ZRS   \
         azlinhome.file.core.windows.net:/azlinhome/home\n",
        "only FileStorage accounts are listed\n{}",
        run.describe()
    );

    // The account name defaults to the setting.
    let run = sb.azsync(["storage", "status"]);
    run.expect_ok();
    let out = run.stdout();
    for line in [
        "account     azlinhome\n",
        "quota       100 GiB\n",
        "protocols   NFS\n",
        "root squash RootSquash\n",
        "network     default action Deny\n",
        &format!("subnets     {subnet}\n"),
        "mount       azlinhome.file.core.windows.net:/azlinhome/home\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }

    let run = sb.azsync(["vm", "show", "dev1"]);
    run.expect_ok();
    assert_eq!(
        run.stdout(),
        "name        dev1\nstate       VM running\npublic ip   127.0.0.1\nprivate ip  10.0.0.4\n\
         size        Standard_D4s_v5\nregion      westus2\n"
    );
    let calls: Vec<Vec<String>> = sb
        .calls()
        .into_iter()
        .filter(|c| c[..2] != ["account", "show"])
        .collect();
    assert_eq!(
        calls,
        vec![
            strings(&[
                "storage",
                "account",
                "list",
                "--resource-group",
                "rg-test",
                "--output",
                "json"
            ]),
            strings(&[
                "storage",
                "account",
                "show",
                "--resource-group",
                "rg-test",
                "--name",
                "azlinhome",
                "--output",
                "json"
            ]),
            strings(&[
                "storage",
                "share-rm",
                "show",
                "--resource-group",
                "rg-test",
                "--storage-account",
                "azlinhome",
                "--name",
                "home",
                "--output",
                "json"
            ]),
            strings(&[
                "vm",
                "show",
                "-d",
                "--resource-group",
                "rg-test",
                "--name",
                "dev1",
                "--output",
                "json"
            ]),
        ]
    );
}
