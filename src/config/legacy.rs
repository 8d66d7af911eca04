//! The last release's duration keys, accepted for one more release: each was an integer
//! (or, for a few, a decimal) with its unit in its name (`lease_ms = 30000`,
//! `max_wait_s = 60`); today's key has no suffix and takes a human duration
//! (`lease = "30s"`). [`upgrade`] rewrites the old keys of a parsed file into the new
//! ones and says, key by key, what to write instead. A file naming both forms of one
//! key is left alone, and the old key is then refused as unknown.

/// Old keys counted in milliseconds.
const MILLIS: &[&str] = &[
    "asleep_max_period_ms",
    "base_ms",
    "body_timeout_ms",
    "busy_period_ms",
    "cap_ms",
    "deadline_ms",
    "delivery_tick_ms",
    "header_timeout_ms",
    "idle_in_transaction_ms",
    "lease_ms",
    "max_poll_interval_ms",
    "max_wait_ms",
    "min_period_ms",
    "open_ms",
    "pushed_quiet_ms",
    "redis_timeout_ms",
    "relock_backoff_ms",
    "sweep_ms",
    "tick_ms",
    "timeout_ms",
    "wake_poll_ms",
    "webhook_backoff_ms",
    "webhook_timeout_ms",
];

/// Old keys counted in seconds.
const SECONDS: &[&str] = &[
    "command_timeout_s",
    "command_window_s",
    "leeway_s",
    "location_ttl_s",
    "max_wait_s",
    "max_watch_s",
    "max_window_s",
    "per_s",
    "request_timeout_s",
    "security_ttl_s",
    "state_lag_s",
    "token_refresh_skew_s",
    "wake_timeout_s",
];

/// Rewrites every old duration key in `table` (and the tables and arrays of tables
/// under it) into its new form; returns one deprecation notice per key rewritten.
pub(super) fn upgrade(table: &mut toml::Table) -> Vec<String> {
    let mut notes = Vec::new();
    walk(table, "", &mut notes);
    notes
}

fn walk(table: &mut toml::Table, path: &str, notes: &mut Vec<String>) {
    let old: Vec<String> = table
        .keys()
        .filter(|k| MILLIS.contains(&k.as_str()) || SECONDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in old {
        let (new, millis) = match key.strip_suffix("_ms") {
            Some(stem) => (stem.to_string(), table[&key].as_integer()),
            None => {
                let stem = key.strip_suffix("_s").unwrap_or(&key).to_string();
                let millis = match &table[&key] {
                    toml::Value::Integer(s) => s.checked_mul(1000),
                    toml::Value::Float(s) if s.is_finite() => Some((s * 1000.0).round() as i64),
                    _ => None,
                };
                (stem, millis)
            }
        };
        let Some(millis) = millis.filter(|m| *m >= 0) else {
            continue; // not a count: left for the type check to name
        };
        if table.contains_key(&new) {
            continue;
        }
        let human = humantime::format_duration(std::time::Duration::from_millis(millis as u64));
        table.remove(&key);
        table.insert(new.clone(), toml::Value::String(human.to_string()));
        notes.push(format!(
            "`{path}{key}` is deprecated and will be refused in the next release; \
             write `{new} = \"{human}\"`"
        ));
    }
    for (key, value) in table.iter_mut() {
        match value {
            toml::Value::Table(t) => walk(t, &format!("{path}{key}."), notes),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(t) = item {
                        walk(t, &format!("{path}{key}[]."), notes);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_keys_become_human_durations_with_a_notice() {
        let mut t: toml::Table = toml::from_str(
            "[cluster]\nlease_ms = 30000\n[commands]\nmax_wait_s = 60\n\
             [oems.tesla.reads]\nsecurity_ttl_s = 2.5\n\
             [[oems.tesla.limits.requests]]\nmax = 5\nper_s = 1\n\
             [inbound]\ncaller_per_s = 50\n",
        )
        .unwrap();
        let notes = upgrade(&mut t);
        assert_eq!(t["cluster"]["lease"].as_str(), Some("30s"));
        assert_eq!(t["commands"]["max_wait"].as_str(), Some("1m"));
        assert_eq!(
            t["oems"]["tesla"]["reads"]["security_ttl"].as_str(),
            Some("2s 500ms")
        );
        assert_eq!(
            t["oems"]["tesla"]["limits"]["requests"][0]["per"].as_str(),
            Some("1s")
        );
        // A rate is no duration: left as it is.
        assert_eq!(t["inbound"]["caller_per_s"].as_integer(), Some(50));
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[0].contains("`cluster.lease_ms` is deprecated")
                && notes[0].contains("lease = \"30s\""),
            "{notes:?}"
        );
    }

    #[test]
    fn a_file_with_both_forms_or_a_bad_value_is_left_to_the_type_check() {
        let mut t: toml::Table =
            toml::from_str("[cluster]\nlease_ms = 1\nlease = \"2s\"\nsweep_ms = \"x\"\n").unwrap();
        assert!(upgrade(&mut t).is_empty());
        assert_eq!(t["cluster"]["lease_ms"].as_integer(), Some(1));
        assert_eq!(t["cluster"]["sweep_ms"].as_str(), Some("x"));
    }
}
