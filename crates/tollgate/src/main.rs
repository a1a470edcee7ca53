//! The `tollgate` binary: command-line parsing and wiring only. Each subcommand lives in
//! its own module and calls into the library crates.

mod audit;
mod configfile;
mod demo;
mod handover;
mod import;
mod lint;
mod remote;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the proxy allocates small, short-lived buffers per request, which glibc's
/// allocator serves through slow consolidation paths under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "API gateway and API management in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: proxy, admin API and control loop.
    Serve(serve::ServeArgs),
    /// Run a node on a temporary data directory with a sample upstream and configuration.
    Demo(serve::ServeArgs),
    /// Apply a declarative configuration file to a running node.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Delete entities the file does not contain.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Write the live configuration (or a file's) as declarative YAML, JSON, or Kong decK.
    Export {
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// yaml (default), json, or kong (Kong decK 3.0 YAML).
        #[arg(long, default_value = "yaml")]
        format: String,
        /// Convert this configuration file instead of asking a node (no server needed).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// With `--format kong`: write the file even though some elements have no Kong
        /// equivalent (they are still listed).
        #[arg(long)]
        allow_unsupported: bool,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Check a configuration file without a server; errors name file:line:column.
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Convert another tool's document (OpenAPI, …) to declarative YAML.
    Import(import::ImportArgs),
    /// Check an OpenAPI document or a configuration against the governance rules.
    Lint(lint::LintArgs),
    /// Verify or export the audit log (reads the store directly).
    Audit(audit::AuditArgs),
}

/// Exit codes (CONTRACT §1): 0 success, 1 runtime failure, 2 usage or validation error.
pub enum Failure {
    Runtime(String),
    Invalid(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(format!("{e:#}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, None),
        Command::Demo(args) => demo::run(args),
        Command::Apply {
            file,
            dry_run,
            prune,
            remote,
        } => remote::apply(&file, dry_run, prune, &remote),
        Command::Export {
            output,
            format,
            file,
            allow_unsupported,
            remote,
        } => remote::export(
            output.as_deref(),
            &format,
            file.as_deref(),
            allow_unsupported,
            &remote,
        ),
        Command::Validate { file } => configfile::validate_command(&file),
        Command::Import(args) => import::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Audit(args) => audit::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Invalid(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}
