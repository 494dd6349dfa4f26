//! The runtime every process of outage-lab uses.

/// One thread: children get `PR_SET_PDEATHSIG`, which fires when the *thread* that forked them
/// exits, so the harness forks from the thread that lives as long as it does; a role process
/// needs no more. Each caller says what failing to start it means for its command.
pub fn single_threaded() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
