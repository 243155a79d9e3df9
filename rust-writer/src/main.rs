//! Entry point: parse the command line, run the chosen process, map failures to exit codes
//! (2 and one `error: ` line for start-up problems, 1 for anything else).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use neuralake_writer::config::{Cli, Command};
use neuralake_writer::errors::{STARTUP_EXIT_CODE, StartupError, one_line};
use neuralake_writer::{bench, compact, ingest, logging, vacuum};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message is several lines (usage, tip); the contract is ONE line.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first}: see neuralake-writer --help");
            return ExitCode::from(STARTUP_EXIT_CODE as u8);
        }
    };
    logging::init(cli.command.log_format());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ingest(args) => ingest::run(args).await,
            Command::Compact(args) => compact::run(args).await,
            Command::Vacuum(args) => vacuum::run(args).await,
            Command::BenchConsume(args) => bench::run(args).await,
        }
    });
    // Background tasks (metrics server, librdkafka callbacks) must not delay the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StartupError>().is_some() => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(STARTUP_EXIT_CODE as u8)
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
