//! Names azsync makes up or must check before az sees them.

use std::time::{SystemTime, UNIX_EPOCH};

/// A storage account name: 3 to 24 characters, lowercase letters and digits only (Azure's
/// rule; checked here so a typo costs no az round trip).
pub fn check_storage_account(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if (3..=24).contains(&name.len()) && ok_chars {
        return Ok(());
    }
    Err(format!(
        "invalid storage account name {name:?}: use 3 to 24 lowercase letters and digits \
         (no dashes, dots or capitals)"
    ))
}

/// A VM name that is also a valid Linux host name: 1 to 64 letters, digits and hyphens, not
/// starting or ending with a hyphen.
pub fn check_vm_name(name: &str) -> Result<(), String> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if (1..=64).contains(&name.len()) && ok_chars && !name.starts_with('-') && !name.ends_with('-')
    {
        return Ok(());
    }
    Err(format!(
        "invalid VM name {name:?}: use 1 to 64 letters, digits and hyphens, not starting or \
         ending with a hyphen"
    ))
}

/// `azlin-YYYYMMDD-HHMMSS` for the current UTC time.
pub fn default_vm_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    vm_name_at(secs)
}

/// `azlin-YYYYMMDD-HHMMSS` for `secs` after the Unix epoch, UTC.
pub fn vm_name_at(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "azlin-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Year, month, day of the proleptic Gregorian calendar for `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`: exact for every day, leap years included).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_account_names() {
        for good in ["abc", "azlinhome01", "a23456789012345678901234"] {
            assert!(check_storage_account(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Azlin",
            "azlin-home",
            "azlin.home",
            "a234567890123456789012345",
            "",
        ] {
            let err = check_storage_account(bad).unwrap_err();
            assert!(
                err.contains("3 to 24 lowercase letters and digits"),
                "{err}"
            );
        }
    }

    #[test]
    fn vm_names() {
        assert!(check_vm_name("azlin-20260101-000000").is_ok());
        for bad in ["", "-a", "a-", "a_b", "a b", &"a".repeat(65)] {
            assert!(check_vm_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_names_are_utc_timestamps() {
        assert_eq!(vm_name_at(0), "azlin-19700101-000000");
        // 2000-02-29 (a leap day of a year divisible by 400) 23:59:59.
        assert_eq!(vm_name_at(951_868_799), "azlin-20000229-235959");
        // 2026-11-26 04:36:01.
        assert_eq!(vm_name_at(1_795_667_761), "azlin-20261126-043601");
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(vm_name_at(4_107_542_400), "azlin-21000301-000000");
        let now = default_vm_name();
        assert!(check_vm_name(&now).is_ok(), "{now}");
        assert_eq!(now.len(), "azlin-YYYYMMDD-HHMMSS".len());
    }
}
