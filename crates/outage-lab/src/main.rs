//! The `outage-lab` binary. The program is the library beside this file (src/lib.rs), so that
//! the fuzz targets can reach its scenario loader; this only calls it.

fn main() -> std::process::ExitCode {
    outage_lab::command_line()
}
