//! `outage-lab ctl RUN_DIR ...`: acts on a live workshop through its control API
//! (`workshop/control.rs`), with the token the run wrote beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{CtlAction, CtlArgs};
use crate::exit;
use crate::workshop::control::{self, Body, Located};

/// Why a `ctl` command did not do what it asked. [`Self::exit_code`] decides what each means.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The run directory has no `workshop.json`: not a workshop, or not a run directory at all.
    #[error(
        "{} is not a live workshop ({}: {source}); give the run directory `outage-lab workshop` printed",
        .run_dir.display(),
        .file.display()
    )]
    NotAWorkshop {
        /// The directory given.
        run_dir: PathBuf,
        /// Its `workshop.json`.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `workshop.json` is not what a workshop writes.
    #[error("{}: {source}; expected {{\"url\": .., \"pid\": ..}}", .file.display())]
    BadLocation {
        /// The file.
        file: PathBuf,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// The run's token cannot be read.
    #[error("cannot read the run's token {}: {source}", .file.display())]
    Token {
        /// The token file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime the call runs on did not start.
    #[error("cannot start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The workshop does not answer: it has ended, or the file is stale.
    #[error("the workshop at {url} does not answer ({source}); has it ended?")]
    Unreachable {
        /// Its control API.
        url: String,
        /// What the HTTP client found.
        source: reqwest::Error,
    },
    /// The workshop answered, but not with JSON.
    #[error("{url} answered something that is not JSON: {source}")]
    NotJson {
        /// Its control API.
        url: String,
        /// What the HTTP client found.
        source: reqwest::Error,
    },
    /// The workshop refused the request; its reason, as it gave it.
    #[error("{reason}")]
    Refused {
        /// The `error` of its answer.
        reason: String,
    },
}

impl CtlError {
    /// The exit code of a `ctl` command that failed this way: the workshop refused (1, as for an
    /// expectation that did not hold), the run directory or the workshop behind it cannot be used
    /// (2), the runtime did not start (3).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. } => exit::EXPECTATION_FAILED,
            Self::NotAWorkshop { .. }
            | Self::BadLocation { .. }
            | Self::Token { .. }
            | Self::Client(_)
            | Self::Unreachable { .. }
            | Self::NotJson { .. } => exit::BAD_INPUT,
            Self::Runtime(_) => exit::HARNESS_FAILED,
        }
    }
}

/// Runs one `ctl` command.
pub fn command(args: &CtlArgs) -> ExitCode {
    match run(args) {
        Ok(body) => {
            print_answer(&args.action, &body);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outage-lab ctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Finds the run's control API and calls it; the answer's body.
fn run(args: &CtlArgs) -> Result<serde_json::Value, CtlError> {
    let (located, token) = find(&args.run_dir)?;
    let runtime = outage_lab_engine::runtime::single_threaded().map_err(CtlError::Runtime)?;
    let who = (args.who.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "a participant".to_owned());
    runtime.block_on(call(&located.url, &token, &args.action, who))
}

/// Where the run's control API is, and its token.
fn find(run_dir: &Path) -> Result<(Located, String), CtlError> {
    let file = run_dir.join(control::FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(source) => {
            let run_dir = run_dir.to_owned();
            return Err(CtlError::NotAWorkshop {
                run_dir,
                file,
                source,
            });
        }
    };
    let located: Located = match serde_json::from_str(&text) {
        Ok(located) => located,
        Err(source) => return Err(CtlError::BadLocation { file, source }),
    };
    let file = run_dir.join(outage_lab_host::TOKEN_FILE);
    match std::fs::read_to_string(&file) {
        Ok(token) => Ok((located, token.trim().to_owned())),
        Err(source) => Err(CtlError::Token { file, source }),
    }
}

/// Calls the API; the body of its answer, or why it refused or could not be reached.
async fn call(
    url: &str,
    token: &str,
    action: &CtlAction,
    who: String,
) -> Result<serde_json::Value, CtlError> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(CtlError::Client)?;
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
    let response =
        (request.bearer_auth(token).send().await).map_err(|source| CtlError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    let ok = response.status().is_success();
    let body: serde_json::Value = response.json().await.map_err(|source| CtlError::NotJson {
        url: url.to_owned(),
        source,
    })?;
    if ok {
        return Ok(body);
    }
    let reason = body
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("refused");
    Err(CtlError::Refused {
        reason: reason.to_owned(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_is_no_workshop_exits_2_and_a_refusal_1() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = find(dir.path()).expect_err("no workshop.json");
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert!(e.to_string().contains("is not a live workshop"), "{e}");
        std::fs::write(dir.path().join(control::FILE), "nope").expect("write");
        let e = find(dir.path()).expect_err("not JSON");
        assert!(
            e.to_string()
                .ends_with(r#"; expected {"url": .., "pid": ..}"#),
            "{e}"
        );
        let refused = CtlError::Refused {
            reason: "the run is not at a stop".into(),
        };
        assert_eq!(refused.exit_code(), exit::EXPECTATION_FAILED);
        assert_eq!(refused.to_string(), "the run is not at a stop");
    }
}
