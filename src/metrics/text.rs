//! OpenMetrics text to the Prometheus text format.

/// The same samples in the Prometheus text format: a counter's HELP and TYPE
/// name its `_total` series (OpenMetrics names the family without it), and
/// there is no `# EOF` or `# UNIT`. prometheus-client writes OpenMetrics
/// only; this is the one difference we need, not a second encoder.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                out.push_str(&format!("{p}{name} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn openmetrics_counters_get_their_total_name_and_eof_goes() {
        let om = "# HELP castline_parts Parts.\n# TYPE castline_parts counter\ncastline_parts_total 3\n\
# HELP castline_live_streams Live.\n# TYPE castline_live_streams gauge\ncastline_live_streams 1\n# EOF\n";
        assert_eq!(
            super::openmetrics_to_prometheus(om),
            "# HELP castline_parts_total Parts.\n# TYPE castline_parts_total counter\ncastline_parts_total 3\n\
# HELP castline_live_streams Live.\n# TYPE castline_live_streams gauge\ncastline_live_streams 1\n"
        );
    }
}
