//! What az prints, as typed structs: only the fields azsync reads, each optional where az
//! leaves it out (a deallocated VM has no public IP; `powerState` needs `-d`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `az account show`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The subscription id.
    pub id: String,
    /// The subscription name.
    pub name: String,
    pub tenant_id: String,
    pub user: Option<AccountUser>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct AccountUser {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `az vm create`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VmCreated {
    pub id: String,
    pub location: Option<String>,
    pub power_state: Option<String>,
    #[serde(default)]
    pub public_ip_address: String,
    #[serde(default)]
    pub private_ip_address: String,
    #[serde(default)]
    pub fqdns: String,
    pub mac_address: Option<String>,
    pub resource_group: Option<String>,
}

/// One element of `az vm list -d`, or `az vm show -d`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Vm {
    pub name: String,
    pub id: Option<String>,
    pub location: Option<String>,
    pub resource_group: Option<String>,
    /// `VM running`, `VM deallocated`, ... (only with `-d`).
    pub power_state: Option<String>,
    /// Comma-separated when there are several; empty when there are none.
    #[serde(default)]
    pub public_ips: String,
    #[serde(default)]
    pub private_ips: String,
    #[serde(default)]
    pub fqdns: String,
    pub hardware_profile: Option<HardwareProfile>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    pub vm_size: Option<String>,
}

/// The tag that gives a VM's SSH port when it is not 22.
pub const SSH_PORT_TAG: &str = "azsync-ssh-port";

impl Vm {
    pub fn is_running(&self) -> bool {
        self.power_state.as_deref() == Some("VM running")
    }

    /// The first public IP, if any.
    pub fn public_ip(&self) -> Option<&str> {
        self.public_ips
            .split(',')
            .map(str::trim)
            .find(|ip| !ip.is_empty())
    }

    pub fn size(&self) -> &str {
        self.hardware_profile
            .as_ref()
            .and_then(|h| h.vm_size.as_deref())
            .unwrap_or("-")
    }

    /// The `azsync-ssh-port` tag; a tag that is not a port is an error naming the VM.
    pub fn ssh_port_tag(&self) -> anyhow::Result<Option<u16>> {
        let Some(value) = self.tags.as_ref().and_then(|t| t.get(SSH_PORT_TAG)) else {
            return Ok(None);
        };
        value
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "VM {}: tag {SSH_PORT_TAG}={value:?} is not a port number",
                    self.name
                )
            })
    }
}

/// `az storage account create|show|list`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccount {
    pub name: String,
    pub id: Option<String>,
    pub location: Option<String>,
    pub kind: Option<String>,
    pub sku: Option<Sku>,
    pub provisioning_state: Option<String>,
    pub network_rule_set: Option<NetworkRuleSet>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Sku {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRuleSet {
    pub default_action: Option<String>,
    #[serde(default)]
    pub virtual_network_rules: Vec<VirtualNetworkRule>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetworkRule {
    /// The subnet's resource id.
    #[serde(alias = "id")]
    pub virtual_network_resource_id: String,
}

/// `az storage share-rm create|show`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Share {
    pub name: String,
    pub share_quota: Option<u64>,
    pub enabled_protocols: Option<String>,
    pub root_squash: Option<String>,
}

/// `az network vnet subnet update`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub id: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::az::parse;

    #[test]
    fn real_shaped_vm_list_output_parses() {
        let out = br#"[{
            "id": "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/a",
            "name": "a", "location": "westus2", "resourceGroup": "RG",
            "powerState": "VM running", "publicIps": "20.1.2.3", "privateIps": "10.0.0.4",
            "fqdns": "", "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "tags": {"azsync-ssh-port": "2222"},
            "storageProfile": {"osDisk": {"osType": "Linux"}}
        }, {
            "name": "b", "powerState": "VM deallocated", "publicIps": "", "tags": null,
            "hardwareProfile": {"vmSize": "Standard_B2s"}
        }]"#;
        let vms: Vec<Vm> = parse("az vm list -d", out).unwrap();
        assert_eq!(vms.len(), 2);
        assert!(vms[0].is_running());
        assert_eq!(vms[0].public_ip(), Some("20.1.2.3"));
        assert_eq!(vms[0].size(), "Standard_D4s_v5");
        assert_eq!(vms[0].ssh_port_tag().unwrap(), Some(2222));
        assert!(!vms[1].is_running());
        assert_eq!(vms[1].public_ip(), None);
        assert_eq!(vms[1].ssh_port_tag().unwrap(), None);
    }

    #[test]
    fn real_shaped_vm_create_and_account_output_parse() {
        let created: VmCreated = parse(
            "az vm create",
            br#"{"fqdns": "", "id": "/subscriptions/s/x", "location": "westus2",
                "macAddress": "00-0D-3A-00-00-00", "powerState": "VM running",
                "privateIpAddress": "10.0.0.4", "publicIpAddress": "20.1.2.3",
                "resourceGroup": "RG", "zones": ""}"#,
        )
        .unwrap();
        assert_eq!(created.public_ip_address, "20.1.2.3");
        let account: Account = parse(
            "az account show",
            br#"{"environmentName": "AzureCloud", "id": "0000", "isDefault": true,
                "name": "Dev", "state": "Enabled", "tenantId": "t",
                "user": {"name": "me@example.com", "type": "user"}}"#,
        )
        .unwrap();
        assert_eq!(account.user.unwrap().name, "me@example.com");
    }

    #[test]
    fn a_bad_port_tag_names_the_vm() {
        let vm: Vm = parse("x", br#"{"name": "v", "tags": {"azsync-ssh-port": "ssh"}}"#).unwrap();
        let err = vm.ssh_port_tag().unwrap_err().to_string();
        assert!(
            err.contains("VM v") && err.contains("azsync-ssh-port"),
            "{err}"
        );
    }
}
