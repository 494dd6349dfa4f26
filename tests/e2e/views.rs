//! What people look at: the live view during a run and report.html after it, each checked in a
//! real headless Chromium (Debian's `chromium`, which .ci/run installs). One scenario run serves
//! both checks, to keep CI short.

use std::path::Path;
use std::time::{Duration, Instant};

use outage_lab_ebs_events::{AlarmKind, Event, EventKind};
use outage_lab_viz::colour;

use crate::support::browser::{browser, finish};
use crate::support::{ScenarioRun, assert_passed, journal, run, wait_for_journal};

const RUN_LIMIT: Duration = Duration::from_secs(180);
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// A free loopback port for `--serve` (the kernel's choice, released just before use).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn the_live_view_shows_the_leak_during_the_run_and_report_html_draws_it_after() {
    let started = Instant::now();
    let serve = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{serve}/");
    let run_ = ScenarioRun::start(
        "ebs-2012-10-22.yaml",
        &["--servers", "6", "--seed", "11", "--serve", &serve],
    );
    let out = run_.out.clone();
    let profiles = tempfile::tempdir().expect("temp dir");

    // --- during the run: the live page ------------------------------------------------------
    let leak = |e: &outage_lab_ebs_events::JournalEntry| {
        matches!(
            &e.event,
            Event::Alarm {
                alarm: AlarmKind::Leak,
                ..
            }
        )
    };
    assert!(
        wait_for_journal(&out, RUN_LIMIT, leak),
        "no leak alarm in the journal"
    );
    let alarm_seen = started.elapsed();
    // One browser stays on the page until the run ends, following the server-sent events.
    let follower = browser(
        &profiles.path().join("follower"),
        &["--virtual-time-budget=600000", "--dump-dom"],
        &url,
    );
    // Another takes the page as it stands now.
    let now = finish(
        browser(&profiles.path().join("now"), &["--dump-dom"], &url),
        BROWSER_LIMIT,
    );
    let entries = journal(&out);
    assert!(
        !entries
            .iter()
            .any(|e| e.event.kind() == EventKind::RunFinished),
        "the run ended before the live page was read; the check would prove nothing"
    );
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).expect("plan.json"))
            .expect("plan parses");
    let stale: Vec<&str> = plan["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter(|s| s["stale"] == true)
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert!(!stale.is_empty(), "{plan}");
    for id in &stale {
        let tile = tile_tag(&now, id);
        assert!(
            tile.contains(r#"class="tile stale"#),
            "live page shows {id} as {tile:?}, not stale:\n{now}"
        );
    }
    assert_eq!(
        now.matches(r#"class="tile stale"#).count(),
        stale.len(),
        "one stale tile per stale server:\n{now}"
    );
    assert!(
        now.contains(r#"class="alarm leak""#),
        "live page lists no leak alarm:\n{now}"
    );
    let live_checked = started.elapsed();

    let (done, out, _tmp) = run_.finish(RUN_LIMIT);
    assert_passed(&done, &out);
    assert!(
        done.stdout.contains(&format!("live view: {url}")),
        "{}",
        done.output()
    );
    // A script finds the live view where it finds every other URL of the run.
    let endpoints = std::fs::read_to_string(out.join("endpoints.json")).expect("endpoints.json");
    assert!(
        endpoints.contains(&format!("\"url\": \"{url}\""))
            && endpoints.contains("\"kind\": \"live\""),
        "{endpoints}"
    );
    // Not a terminal: plain status lines, no live line and its control codes (CI logs).
    assert!(
        done.stdout.contains("agent RSS mean: stale"),
        "{}",
        done.output()
    );
    assert!(
        !done.stdout.contains('\x1b'),
        "terminal codes in a pipe: {:?}",
        done.stdout
    );
    let followed = finish(follower, BROWSER_LIMIT);
    // The follower loaded the page at the first leak alarm; the verdict and the DNS repair came
    // later, so they reached it through the event stream.
    assert!(
        followed.contains(r#"<span id="state" class="pass">PASS</span>"#),
        "the page following the stream did not get the verdict:\n{followed}"
    );
    assert!(followed.contains("dns_repair"), "{followed}");

    // --- after the run: report.html ---------------------------------------------------------
    let html_path = out.join("report.html");
    let html = std::fs::read_to_string(&html_path).expect("the run wrote report.html");
    assert_eq!(
        outage_lab_viz::outside_references(&html),
        Vec::<String>::new(),
        "report.html must reference nothing outside itself"
    );
    // Every journal line is read and used or deliberately left out: nothing is skipped as
    // unknown, and the DNS servers' answer counts are on the page.
    let read = outage_lab_viz::read_run(&out).expect("the run reads back");
    assert_eq!(
        read.skipped, 0,
        "journal lines of kinds the reader does not know"
    );
    assert!(
        !html.contains("this version does not know"),
        "report.html skipped lines"
    );
    assert!(html.contains("answers for the collector, by address"));
    for forbidden in ["<script", "<link", "<img", "<iframe", "http:", "https:"] {
        assert!(
            !html.contains(forbidden),
            "report.html contains {forbidden}"
        );
    }
    // `outage-lab report` rebuilds the same page from the journal.
    std::fs::remove_file(&html_path).expect("rm");
    let rebuilt = run(
        &["report", out.to_str().expect("utf-8")],
        Duration::from_secs(30),
    );
    assert_eq!(rebuilt.code(), Some(0), "{}", rebuilt.output());
    assert_eq!(std::fs::read_to_string(&html_path).expect("rebuilt"), html);

    let shot = profiles.path().join("report.png");
    let file_url = format!("file://{}", html_path.display());
    let _ = finish(
        browser(
            &profiles.path().join("shot"),
            &[
                "--window-size=1100,1200",
                &format!("--screenshot={}", shot.display()),
            ],
            &file_url,
        ),
        BROWSER_LIMIT,
    );
    let picture = Picture::read(&shot);
    let stale_px = picture.pixels_like(colour::STALE_AGENT);
    let fresh_px = picture.pixels_like(colour::FRESH_AGENT);
    assert!(
        stale_px.len() > 1_000,
        "the screenshot shows only {} pixels of the stale-agent colour: no memory plot?",
        stale_px.len()
    );
    assert!(
        fresh_px.len() > 500,
        "{} fresh-agent pixels",
        fresh_px.len()
    );
    // Stale agents climb: their line spans the run and reaches far above every fresh agent.
    let (min_x, max_x) = stale_px
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    assert!(
        max_x - min_x > 600,
        "stale line spans only {min_x}..{max_x}"
    );
    // The run passed, so its smallest stale growth was at least 8 MiB. On a debug build an
    // agent idles near 23 MiB and the axis ends 5% above the highest line, so that growth is at
    // least 8 / (1.05 * 31) = 25% of the plot's ~300 rows: about 74 rows (CI drew exactly 74
    // when a loaded machine made the agents fail fewer reports). 40 rows is a climb anyone sees
    // and that a line drawn at the wrong scale or upside down cannot fake.
    let top = |px: &[(u32, u32)]| px.iter().map(|p| p.1).min().unwrap_or(u32::MAX);
    assert!(
        top(&stale_px) + 40 < top(&fresh_px),
        "stale agents peak at row {}, fresh at row {}: no climb in the picture",
        top(&stale_px),
        top(&fresh_px)
    );
    eprintln!(
        "timings: leak alarm in the journal after {alarm_seen:?}, live page checked at {live_checked:?}, whole test {:?}; report.html {} bytes; {} stale-agent pixels; stale peak at row {}, fresh at row {}",
        started.elapsed(),
        html.len(),
        stale_px.len(),
        top(&stale_px),
        top(&fresh_px)
    );
}

#[test]
fn report_of_a_directory_without_a_run_exits_2_and_names_what_is_missing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_str().expect("utf-8");
    let missing = tmp.path().join("nope");
    let missing = missing.to_str().expect("utf-8");
    for format in ["html", "markdown"] {
        let report = |dir| {
            run(
                &["report", dir, "--format", format],
                Duration::from_secs(30),
            )
        };
        let done = report(dir);
        assert_eq!(done.code(), Some(2), "{format}: {}", done.output());
        assert!(
            done.stderr.contains(&format!("{dir}/report.json")),
            "{format}: {}",
            done.output()
        );

        let done = report(missing);
        assert_eq!(done.code(), Some(2), "{format}: {}", done.output());
        assert!(
            done.stderr
                .contains("is not a run directory (no such directory)"),
            "{format}: {}",
            done.output()
        );
    }
}

#[test]
fn serve_refuses_a_non_loopback_address_before_starting_anything() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let scenario = crate::support::scenario("ebs-2012-10-22.yaml");
    let done = run(
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--serve",
            "0.0.0.0:8080",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(done.code(), Some(2), "{}", done.output());
    assert!(
        done.stderr
            .contains("refusing to serve the live view on 0.0.0.0:8080")
    );
    assert!(!out.exists(), "nothing may start: {} exists", out.display());
}

/// The opening tag of the fleet tile of server `id` in a dumped DOM.
fn tile_tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(r#"data-server="{id}""#))
        .unwrap_or_else(|| panic!("no tile for {id}:\n{dom}"));
    let start = dom[..at].rfind('<').expect("inside a tag");
    let end = at + dom[at..].find('>').expect("tag closes");
    &dom[start..=end]
}

/// A decoded screenshot.
struct Picture {
    width: u32,
    rgb: Vec<(u8, u8, u8)>,
}

impl Picture {
    fn read(path: &Path) -> Self {
        let file = std::fs::File::open(path).expect("chromium wrote the screenshot");
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let step = info.color_type.samples();
        assert!(
            step >= 3,
            "colour screenshot expected, got {:?}",
            info.color_type
        );
        let rgb = buf[..info.buffer_size()]
            .chunks(step)
            .map(|c| (c[0], c[1], c[2]))
            .collect();
        Self {
            width: info.width,
            rgb,
        }
    }

    /// (x, y) of every pixel where a line of `colour` shows: at least half covered by it, over
    /// a light background. A 1.5-pixel line on a whole-pixel coordinate covers no pixel fully
    /// (two rows at 75% each), so an exact-colour match finds it only where lines overlap.
    fn pixels_like(&self, colour: (u8, u8, u8)) -> Vec<(u32, u32)> {
        self.rgb
            .iter()
            .enumerate()
            .filter(|(_, p)| coverage(**p, colour).is_some_and(|a| a >= 0.5))
            .map(|(i, _)| {
                let i = u32::try_from(i).expect("fits");
                (i % self.width, i / self.width)
            })
            .collect()
    }
}

/// How much of `pixel` is `colour` drawn over white (0 to 1), if it is that colour blended at
/// all: every channel must agree on the share, which a grey or another hue does not.
fn coverage(pixel: (u8, u8, u8), colour: (u8, u8, u8)) -> Option<f64> {
    let channels = [
        (pixel.0, colour.0),
        (pixel.1, colour.1),
        (pixel.2, colour.2),
    ];
    let shares: Vec<f64> = channels
        .iter()
        .filter(|(_, c)| *c < 215)
        .map(|(p, c)| (255.0 - f64::from(*p)) / (255.0 - f64::from(*c)))
        .collect();
    let (lo, hi) = shares
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let agrees = !shares.is_empty() && hi - lo <= 0.15 && lo > 0.0 && hi <= 1.1;
    agrees.then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}

#[cfg(test)]
mod pictures {
    use super::coverage;
    use outage_lab_viz::colour;

    fn over_white(c: (u8, u8, u8), alpha: f64) -> (u8, u8, u8) {
        let mix = |c: u8| (alpha * f64::from(c) + (1.0 - alpha) * 255.0).round() as u8;
        (mix(c.0), mix(c.1), mix(c.2))
    }

    #[test]
    fn a_line_three_quarters_over_a_pixel_counts_as_its_colour_and_nothing_else_does() {
        let half_row = over_white(colour::FRESH_AGENT, 0.75);
        let share = coverage(half_row, colour::FRESH_AGENT).expect("fresh");
        assert!((share - 0.75).abs() < 0.02, "{share}");
        assert!(coverage(half_row, colour::STALE_AGENT).is_none());
        for other in [
            colour::STALE_AGENT,
            colour::STORAGE,
            colour::LEAK_ALARM,
            (0x88, 0x88, 0x88),
        ] {
            assert!(
                coverage(over_white(other, 0.75), colour::FRESH_AGENT).is_none(),
                "{other:?}"
            );
        }
        assert!(coverage((255, 255, 255), colour::FRESH_AGENT).is_none());
    }
}
