//! The `lookout` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use lookout::cli::{self, Cli};

fn main() -> ExitCode {
    // One crypto provider for every TLS client (reqwest, lettre): ring, never OpenSSL. An
    // error means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    cli::execute(cli)
}
