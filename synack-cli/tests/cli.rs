//! The `synack` binary as a user meets it: the default demo, the scenario list, JSON
//! output, and errors for bad arguments.

use std::process::Command;

fn synack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(args)
        .output()
        .expect("the synack binary runs")
}

const NAMES: [&str; 13] = [
    "handshake-and-close",
    "server-closes-first",
    "fast-open",
    "simultaneous-open",
    "simultaneous-close",
    "syn-lost",
    "refused",
    "fin-before-data",
    "time-wait-late-segment",
    "close-wait-leak",
    "fin-wait-1-unreachable",
    "fin-wait-2-timeout",
    "port-reuse",
];

#[test]
fn no_arguments_runs_the_handshake_demo_and_succeeds() {
    let out = synack(&[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("handshake-and-close"));
    for state in [
        "SYN_SENT",
        "SYN_RECEIVED",
        "ESTABLISHED",
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSED",
    ] {
        assert!(text.contains(state), "ladder lacks {state}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "no colours when piped");
}

#[test]
fn list_names_every_scenario() {
    let out = synack(&["demo", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, NAMES);
}

#[test]
fn every_scenario_runs_and_passes_its_checks() {
    for name in NAMES {
        let out = synack(&["demo", name]);
        assert!(
            out.status.success(),
            "{name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn json_lines_carry_the_documented_keys() {
    let out = synack(&["demo", "syn-lost", "--json", "--seed", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let (mut states, mut tx, mut rx, mut lost) = (0, 0, 0, 0);
    for v in &lines[..lines.len() - 1] {
        assert!(v["t_us"].is_u64());
        assert!(v["host"] == "client" || v["host"] == "server");
        match v["event"].as_str().unwrap() {
            "state" => {
                states += 1;
                assert!(v["from"].is_string() && v["to"].is_string());
            }
            e @ ("tx" | "rx") => {
                for key in ["flags", "seq", "ack", "len", "win"] {
                    assert!(!v[key].is_null(), "{e} lacks {key}: {v}");
                }
                if e == "tx" {
                    tx += 1;
                    if v["lost"] == true {
                        lost += 1;
                    }
                } else {
                    rx += 1;
                }
            }
            "note" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(states > 0 && tx > 0 && rx > 0);
    assert_eq!(lost, 1, "syn-lost loses exactly the first SYN");
    assert_eq!(tx, rx + lost);
    let result = lines.last().unwrap();
    assert_eq!(result["event"], "result");
    assert_eq!(result["scenario"], "syn-lost");
    assert_eq!(result["passed"], true);
    assert!(result["checks"].as_array().is_some_and(|c| !c.is_empty()));
}

#[test]
fn same_seed_prints_the_same_run() {
    let a = synack(&["demo", "--json", "--seed", "9", "--loss", "5"]).stdout;
    let b = synack(&["demo", "--json", "--seed", "9", "--loss", "5"]).stdout;
    assert_eq!(a, b);
}

#[test]
fn unknown_scenario_says_how_to_list_them() {
    let out = synack(&["demo", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no scenario called 'no-such-thing'") && err.contains("--list"),
        "{err}"
    );
}

#[test]
fn out_of_range_loss_is_rejected_with_a_reason() {
    let out = synack(&["demo", "--loss", "150"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside 0-100"));
}

#[test]
fn demo_transfer_json_reports_goodput_and_exactness() {
    let out = synack(&[
        "demo", "transfer", "--bytes", "2M", "--json", "--cc", "newreno",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "goodput_bps",
        "link_bps",
        "retransmits",
        "bytes_delivered",
        "byte_exact",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["bytes_delivered"], 2_000_000);
    assert_eq!(v["byte_exact"], true);
    assert_eq!(v["link_bps"], 100_000_000);
    let goodput = v["goodput_bps"].as_f64().unwrap();
    assert!(goodput > 10e6 && goodput <= 100e6, "{goodput}");
}

#[test]
fn demo_transfer_draws_cwnd_into_an_svg_file() {
    let path = std::env::temp_dir().join(format!("synack-cwnd-{}.svg", std::process::id()));
    let out = synack(&[
        "demo",
        "transfer",
        "--bytes",
        "5M",
        "--flows",
        "2",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("cwnd over time"));
    assert!(svg.contains("flow 1") && svg.contains("flow 2"));
    // Each flow's line has a point per 100 ms sample.
    let longest = svg
        .split("<polyline")
        .map(|p| p.matches(',').count())
        .max()
        .unwrap_or(0);
    assert!(longest > 5, "{longest} points");
}

#[test]
fn demo_transfer_prints_progress_a_chart_and_the_result() {
    let out = synack(&["demo", "transfer", "--bytes", "30M", "--loss", "0.1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("t=   1.0s"), "{text}");
    assert!(text.contains("cwnd (max"), "{text}");
    assert!(text.contains("byte-exact: true"), "{text}");
}

#[test]
fn drill_runs_scripts_and_sums_them_up() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../synack-drill/tests/drill");
    let good = format!("{dir}/passive-open-write-close.pkt");
    let bad = format!("{dir}/../must-fail/wrong-flags.pkt");
    let out = synack(&["drill", &good]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("1 passed, 0 failed\n"));
    let out = synack(&["drill", &good, &bad, "--verbose"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wrong-flags.pkt:7: flags: expected R. got S."),
        "{text}"
    );
    assert!(
        text.contains("> S. 0:0(0) ack 1"),
        "verbose shows the segments: {text}"
    );
    assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");
}

// The command, `synack drill tests/drill/**/*.pkt`: a pattern the shell leaves
// as it is (no globstar) is expanded by synack itself, and the whole corpus passes.
#[test]
fn drill_expands_a_recursive_pattern_and_the_corpus_passes() {
    let pattern = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../synack-drill/tests/drill/**/*.pkt"
    );
    let out = synack(&["drill", pattern]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let summary = text.lines().last().unwrap();
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(
        passed >= 150 && summary.ends_with(" passed, 0 failed"),
        "{summary}"
    );
}
