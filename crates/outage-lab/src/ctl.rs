//! `outage-lab ctl RUN_DIR ...`: acts on a live workshop through its control API
//! (`workshop/control.rs`), with the token the run wrote beside it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{CtlAction, CtlArgs};
use crate::exit;
use crate::workshop::control::{self, Body, Located};

/// Runs one `ctl` command.
pub fn command(args: &CtlArgs) -> ExitCode {
    let (located, token) = match find(&args.run_dir) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("outage-lab ctl: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let runtime = match crate::single_threaded_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outage-lab: cannot start a runtime: {e}");
            return ExitCode::from(exit::HARNESS_FAILED);
        }
    };
    let who = (args.who.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "a participant".to_owned());
    match runtime.block_on(call(&located.url, &token, &args.action, who)) {
        Ok((true, body)) => {
            print_answer(&args.action, &body);
            ExitCode::SUCCESS
        }
        Ok((false, body)) => {
            let why = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("refused");
            eprintln!("outage-lab ctl: {why}");
            ExitCode::from(exit::EXPECTATION_FAILED)
        }
        Err(e) => {
            eprintln!("outage-lab ctl: {e}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

/// Where the run's control API is, and its token.
fn find(run_dir: &Path) -> Result<(Located, String), String> {
    let file = run_dir.join(control::FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{} is not a live workshop ({}: {e}); give the run directory `outage-lab workshop` printed",
            run_dir.display(),
            file.display()
        )
    })?;
    let located: Located = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: {e}; expected {{\"url\": .., \"pid\": ..}}",
            file.display()
        )
    })?;
    let token_file = run_dir.join(outage_lab_host::TOKEN_FILE);
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("cannot read the run's token {}: {e}", token_file.display()))?;
    Ok((located, token.trim().to_owned()))
}

/// Calls the API; `(succeeded, body)`, or why it could not be reached.
async fn call(
    url: &str,
    token: &str,
    action: &CtlAction,
    who: String,
) -> Result<(bool, serde_json::Value), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let post = |path: &str, targets: Vec<String>| {
        let body = Body {
            who: Some(who.clone()),
            targets,
        };
        http.post(format!("{url}{path}")).json(&body)
    };
    let request = match action {
        CtlAction::Status { .. } => http.get(format!("{url}/workshop/status")),
        CtlAction::Next => post("/workshop/next", Vec::new()),
        CtlAction::Repair { dns } => post("/workshop/repair", dns.clone()),
        CtlAction::Restart { servers } => post("/workshop/restart", servers.clone()),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("the workshop at {url} does not answer ({e}); has it ended?"))?;
    let ok = response.status().is_success();
    let body = response
        .json()
        .await
        .map_err(|e| format!("{url} answered something that is not JSON: {e}"))?;
    Ok((ok, body))
}

fn print_answer(action: &CtlAction, body: &serde_json::Value) {
    match action {
        CtlAction::Status { json: true } => println!("{body:#}"),
        CtlAction::Status { json: false } => print!("{}", status_text(body)),
        _ => println!(
            "{}",
            body.get("done").and_then(|d| d.as_str()).unwrap_or("done")
        ),
    }
}

/// `ctl status` for people: where the run is, the current stop and what was done.
fn status_text(body: &serde_json::Value) -> String {
    let t = body["t_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    let mut out = format!(
        "t={t:.1}s, {}; {} of {} links reached\n",
        if body["frozen"].as_bool() == Some(true) {
            "frozen"
        } else {
            "running"
        },
        body["reached"].as_array().map_or(0, Vec::len),
        body["links"].as_u64().unwrap_or(0)
    );
    if let Some(stop) = body["stop"].as_object() {
        out += &format!(
            "stop {}: {}\n  this run: {}\n  question: {}\n",
            stop["number"],
            stop["narration"]["title"].as_str().unwrap_or(""),
            stop["evidence"].as_str().unwrap_or(""),
            stop["narration"]["question"].as_str().unwrap_or("")
        );
    }
    for a in body["actions"].as_array().into_iter().flatten() {
        out += &format!(
            "  t={:.1}s {} {} {}\n",
            a["t_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            a["who"].as_str().unwrap_or(""),
            a["action"].as_str().unwrap_or(""),
            a["targets"]
        );
    }
    for c in body["commands"].as_array().into_iter().flatten() {
        out += &format!("  $ {}\n", c.as_str().unwrap_or(""));
    }
    out
}
