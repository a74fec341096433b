//! `quickmeet`: the administration CLI of Quick Meet. Everything lives in the library.

fn main() {
    std::process::exit(quickmeet_cli::run_std(std::env::args_os()));
}
