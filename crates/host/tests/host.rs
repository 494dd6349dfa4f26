//! The launcher against real child processes (`/bin/sh` stands in for the outage-lab binary).

use std::time::Duration;

use outage_lab_host::{
    Config, ExitLine, Listeners, PID_HEADER, SignalRequest, SpawnRequest, StderrLine,
};
use outage_lab_proto::EventSink;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Launcher {
    base: String,
    log_dir: tempfile::TempDir,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Launcher {
    async fn start(token: Option<&str>) -> Self {
        Self::start_with_agent(token, None).await
    }

    async fn start_with_agent(token: Option<&str>, agent: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let log_dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            exe: "/bin/sh".into(),
            admin_token: token.map(str::to_owned),
            child_env: vec![("LAUNCHED_BY".into(), "test".into())],
            advertise: None,
            agent: agent.map(str::to_owned),
            identity: None,
            work_dir: log_dir.path().join("work"),
        };
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                outage_lab_host::run(
                    config,
                    Listeners { http: listener },
                    shutdown,
                    EventSink::discard(),
                )
                .await
                .expect("launcher");
            }
        });
        Self {
            base,
            log_dir,
            http: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    fn request(&self, name: &str, script: &str) -> SpawnRequest {
        SpawnRequest {
            name: name.into(),
            args: vec!["-c".into(), script.into()],
            files: Default::default(),
            log: None,
            program: None,
        }
    }

    async fn spawn(&self, name: &str, script: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/processes", self.base))
            .json(&self.request(name, script))
            .send()
            .await
            .expect("spawn request")
    }

    async fn signal(&self, name: &str, body: &str) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/processes/{name}/signal", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("signal request")
            .status()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("launcher stops")
            .expect("launcher task");
    }
}

fn pid_of(response: &reqwest::Response) -> u32 {
    response
        .headers()
        .get(PID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("pid header")
}

async fn body_lines(response: reqwest::Response) -> Vec<String> {
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("body ends")
        .expect("body");
    text.lines().map(str::to_owned).collect()
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_spawned_process_streams_its_stdout_then_how_it_ended() {
    let launcher = Launcher::start(None).await;
    let response = launcher
        .spawn(
            "echoer",
            "echo first; echo \"env $LAUNCHED_BY $OUTAGE_LAB_PROCESS\"; echo oops >&2; exit 3",
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(pid_of(&response) > 1);
    let mut lines = body_lines(response).await;
    let exit: ExitLine = serde_json::from_str(&lines.pop().expect("a last line")).expect("exit");
    assert_eq!(exit.host_exit, "exit code 3");
    let (stderr, stdout): (Vec<String>, Vec<String>) =
        (lines.into_iter()).partition(|l| serde_json::from_str::<StderrLine>(l).is_ok());
    assert_eq!(stdout, ["first", "env test echoer"]);
    let said: StderrLine = serde_json::from_str(&stderr[0]).expect("stderr line");
    assert_eq!((stderr.len(), said.host_stderr.as_str()), (1, "oops"));
    launcher.stop().await;
}

#[tokio::test]
async fn a_role_runs_in_a_directory_of_its_own_holding_the_files_its_request_carried() {
    let launcher = Launcher::start(None).await;
    let script = "cat storage.json; echo; basename \"$PWD\"; sleep 0.3; cat ../reader.pid";
    let mut request = launcher.request("reader", script);
    request.files = [("storage.json".to_owned(), "{\"id\":\"s03\"}".to_owned())].into();
    let response = (launcher.http.post(format!("{}/processes", launcher.base)))
        .json(&request)
        .send()
        .await
        .expect("spawn");
    assert_eq!(response.status(), 200);
    let pid = pid_of(&response);
    let lines = body_lines(response).await;
    assert_eq!(lines[..2], ["{\"id\":\"s03\"}", "reader"]);
    assert_eq!(
        lines[2],
        pid.to_string(),
        "its pid, where a neighbour finds it"
    );
    request.files = [("../escape".to_owned(), String::new())].into();
    let refused = (launcher.http.post(format!("{}/processes", launcher.base)))
        .json(&request)
        .send()
        .await
        .expect("spawn");
    assert_eq!(refused.status(), 400);
    launcher.stop().await;
}

#[tokio::test]
async fn sigterm_through_the_api_stops_the_process_and_its_name_is_free_again() {
    let launcher = Launcher::start(None).await;
    let response = launcher.spawn("sleeper", "exec sleep 30").await;
    let pid = pid_of(&response);
    assert!(alive(pid));
    let again = launcher.spawn("sleeper", "exec sleep 30").await;
    assert_eq!(again.status(), 409, "a running name is taken");

    let body = serde_json::to_string(&SignalRequest {
        signal: outage_lab_host::Signal::Term,
    })
    .expect("encode");
    assert_eq!(launcher.signal("sleeper", &body).await, 204);
    let lines = body_lines(response).await;
    let exit: ExitLine = serde_json::from_str(&lines[0]).expect("exit line");
    assert_eq!(exit.host_exit, "killed by signal 15");
    assert!(!alive(pid));
    assert_eq!(launcher.signal("sleeper", &body).await, 404);
    assert_eq!(
        launcher.signal("sleeper", r#"{"signal":"STOP"}"#).await,
        422
    );

    let restarted = launcher.spawn("sleeper", "exit 0").await;
    assert_eq!(restarted.status(), 200, "the name is free once reaped");
    launcher.stop().await;
}

#[tokio::test]
async fn a_harness_that_goes_away_takes_its_processes_with_it() {
    let launcher = Launcher::start(None).await;
    let response = launcher.spawn("orphan", "exec sleep 30").await;
    let pid = pid_of(&response);
    assert!(alive(pid));
    drop(response);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive(pid),
        "the child outlived the connection that started it"
    );
    launcher.stop().await;
}

#[tokio::test]
async fn stopping_the_launcher_stops_its_children() {
    let launcher = Launcher::start(None).await;
    let response = launcher.spawn("worker", "exec sleep 30").await;
    let pid = pid_of(&response);
    launcher.stop().await;
    assert!(!alive(pid));
}

#[tokio::test]
async fn with_a_token_every_request_but_health_needs_it() {
    let launcher = Launcher::start(Some("s3cret")).await;
    let health = reqwest::get(format!("{}/health", launcher.base))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let refused = launcher.spawn("nope", "exit 0").await;
    assert_eq!(refused.status(), 401);
    let admitted = launcher
        .http
        .post(format!("{}/processes", launcher.base))
        .bearer_auth("s3cret")
        .json(&launcher.request("yes", "exit 0"))
        .send()
        .await
        .expect("spawn");
    assert_eq!(admitted.status(), 200);
    launcher.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_reason() {
    let launcher = Launcher::start_with_agent(None, Some("/bin/sh")).await;
    let bad_name = launcher.spawn("../x", "exit 0").await;
    assert_eq!(bad_name.status(), 400);
    let bad_log = launcher
        .http
        .post(format!("{}/processes", launcher.base))
        .json(&SpawnRequest {
            name: "agent-x".into(),
            args: vec![],
            files: Default::default(),
            log: Some("/nonexistent-dir/x.log".into()),
            program: Some(outage_lab_host::ProgramRequest {
                argv: vec!["/bin/sh".into()],
                env: Default::default(),
                workdir: "/".into(),
            }),
        })
        .send()
        .await
        .expect("spawn");
    assert_eq!(bad_log.status(), 422);
    assert!(
        bad_log
            .text()
            .await
            .expect("text")
            .contains("/nonexistent-dir/x.log")
    );
    let unknown = launcher
        .http
        .post(format!("{}/processes", launcher.base))
        .header("content-type", "application/json")
        .body(r#"{"name":"x","args":[],"log":"/tmp/x","shell":true}"#)
        .send()
        .await
        .expect("spawn");
    assert_eq!(unknown.status(), 422);
    launcher.stop().await;
}

fn program(launcher: &Launcher, argv: &[&str], workdir: &std::path::Path) -> SpawnRequest {
    SpawnRequest {
        name: "agent-s001".into(),
        args: vec![],
        files: Default::default(),
        log: Some(launcher.log_dir.path().join("agent-s001.log")),
        program: Some(outage_lab_host::ProgramRequest {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            env: [("AGENT_SAYS".to_owned(), "hello".to_owned())].into(),
            workdir: workdir.to_owned(),
        }),
    }
}

#[tokio::test]
async fn a_launcher_starts_only_the_agent_program_it_was_given() {
    let launcher = Launcher::start(None).await;
    let work = tempfile::tempdir().expect("tempdir");
    let asked = program(&launcher, &["/bin/sh", "-c", "exit 0"], work.path());
    let refused = (launcher.http.post(format!("{}/processes", launcher.base)))
        .json(&asked)
        .send()
        .await
        .expect("spawn");
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.expect("text").contains("--agent"));
    launcher.stop().await;
}

/// A launcher allowed to run /bin/sh as the agent, running `script` in a directory of its own.
async fn start_shell_agent(script: &str) -> (Launcher, tempfile::TempDir, reqwest::Response) {
    let launcher = Launcher::start_with_agent(None, Some("/bin/sh")).await;
    let work = tempfile::tempdir().expect("tempdir");
    let asked = program(&launcher, &["/bin/sh", "-c", script], work.path());
    let response = (launcher.http.post(format!("{}/processes", launcher.base)))
        .json(&asked)
        .send()
        .await
        .expect("spawn");
    assert_eq!(response.status(), 200);
    (launcher, work, response)
}

#[tokio::test]
async fn the_agent_program_runs_in_its_directory_with_its_environment_and_logs_its_output() {
    let script = "echo \"out $AGENT_SAYS in $(pwd)\"; echo err >&2; [ -z \"$LAUNCHED_BY\" ]";
    let (launcher, work, response) = start_shell_agent(script).await;
    let body = response.text().await.expect("the stream to its end");
    let exit: ExitLine = serde_json::from_str(body.trim()).expect("only the exit line");
    assert_eq!(
        exit.host_exit, "exit code 0",
        "no role environment leaked in"
    );
    let log = std::fs::read_to_string(launcher.log_dir.path().join("agent-s001.log")).expect("log");
    let dir = work.path().canonicalize().expect("dir");
    assert!(
        log.contains(&format!("out hello in {}", dir.display())),
        "{log}"
    );
    assert!(log.contains("err"), "{log}");
    launcher.stop().await;
}

#[tokio::test]
async fn a_signal_to_the_agent_program_reaches_what_it_forked() {
    let (launcher, work, response) =
        start_shell_agent("sleep 300 & echo $! > child.pid; wait").await;
    let pid_file = work.path().join("child.pid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let child: u32 = loop {
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if let Ok(pid) = text.trim().parse() {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never forked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        launcher.signal("agent-s001", r#"{"signal":"TERM"}"#).await,
        204
    );
    let _ = response.text().await;
    let gone = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !gone(child) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone(child), "the agent's child {child} outlived the signal");
    launcher.stop().await;
}
