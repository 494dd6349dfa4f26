//! Where a run keeps what it leaves: its default directory, named by scenario, UTC time and
//! seed, the same for every incident; and how a file in it is written (a process's config).

use std::path::{Path, PathBuf};

use crate::error::HarnessError;

/// Writes `value` as pretty JSON to `path` (a role's config in `<run>/config/`).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), HarnessError> {
    let json = serde_json::to_string_pretty(value).map_err(|e| {
        HarnessError::io(
            format!("encode {}", path.display()),
            std::io::Error::other(e),
        )
    })?;
    std::fs::write(path, json).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// The head of the `scenario.yaml` a run keeps: the file it ran and the command-line settings
/// it ran with (`--set PATH=VALUE`, `--fix NAME`), one per comment line. The experiment runner
/// reads them back ([`settings_of`]) to know whether a cell's earlier run is the same cell.
pub fn settings_header(source: &str, settings: &[String]) -> String {
    let lines: String = (settings.iter()).map(|s| format!("# {s}\n")).collect();
    format!("# The scenario {source} as run, with these command-line settings:\n{lines}")
}

/// The settings a kept `scenario.yaml` names in its head ([`settings_header`]).
pub fn settings_of(scenario_yaml: &str) -> Vec<&str> {
    (scenario_yaml.lines())
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with("--"))
        .collect()
}

/// `runs/<scenario>-<YYYYmmddTHHMMSSZ>-seed<seed>`, the directory a run writes by default.
pub fn default_run_dir(name: &str, seed: u64) -> PathBuf {
    PathBuf::from("runs").join(format!("{name}-{}-seed{seed}", utc_stamp(now_secs())))
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats Unix seconds as `YYYYmmddTHHMMSSZ` (proleptic Gregorian, UTC).
pub fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), shifted so March is month 0.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_a_run_kept_in_its_head_are_read_back_as_given() {
        let settings = ["--fix some_fix".to_owned(), "--set dns.ttl=5s".to_owned()];
        let kept = settings_header("s.yaml", &settings) + "name: s\n# not a setting\n";
        assert_eq!(settings_of(&kept), ["--fix some_fix", "--set dns.ttl=5s"]);
        assert!(settings_of("name: s\n").is_empty());
    }

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // The incident: 2012-10-22 17:00:00 UTC (10:00 PDT).
        assert_eq!(utc_stamp(1_350_925_200), "20121022T170000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn a_default_run_directory_names_the_scenario_and_the_seed() {
        let dir = default_run_dir("dns-race", 7);
        let name = dir.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(dir.starts_with("runs"), "{}", dir.display());
        assert!(
            name.starts_with("dns-race-") && name.ends_with("Z-seed7"),
            "{name}"
        );
    }
}
