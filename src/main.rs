//! The `sluice` command: see `sluice --help`.

fn main() {
    std::process::exit(sluice::cli::main(sluice::registry()));
}
