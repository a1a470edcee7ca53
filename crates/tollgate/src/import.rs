//! `tollgate import openapi|kong|aws FILE [-o FILE]`: another tool's document as declarative
//! YAML. Every element that has no Tollgate equivalent is listed; such a partial import is a
//! failure (exit 2, nothing written) unless `--allow-unsupported` accepts it.

use std::path::{Path, PathBuf};

use crate::Failure;

/// Formats `import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OpenAPI 2.0, 3.0 or 3.1 (YAML or JSON): one API version.
    Openapi,
    /// Kong declarative configuration (decK).
    Kong,
    /// AWS API Gateway: an OpenAPI export with x-amazon-apigateway extensions, or a
    /// CloudFormation template (usage plans, API keys).
    Aws,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// What the file is.
    #[arg(value_enum)]
    pub format: Format,
    /// The file to read.
    pub file: PathBuf,
    /// Where to write the YAML (standard output without it).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// The upstream URL, when the document names no absolute server (OpenAPI); for AWS,
    /// the origin every HTTP integration is sent to instead of its own.
    #[arg(long)]
    pub upstream: Option<String>,
    /// The API's name (default: a slug of the document's title).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the configuration even though some elements could not be mapped (they are
    /// still listed).
    #[arg(long)]
    pub allow_unsupported: bool,
}

/// Most bytes an input file may have.
const MAX_INPUT: u64 = 32 * 1024 * 1024;

pub fn run(args: ImportArgs) -> Result<(), Failure> {
    let text = read(&args.file)?;
    let opts = tollgate_import::openapi::Options {
        upstream: args.upstream.clone(),
        name: args.name.clone(),
    };
    let imported = match args.format {
        Format::Openapi => tollgate_import::openapi::import(&text, &opts),
        Format::Aws => tollgate_import::aws::import(&text, &opts),
        Format::Kong => tollgate_import::kong::import(&text),
    }
    .map_err(|e| Failure::Invalid(format!("{}: {e}", args.file.display())))?;
    let report = &imported.report;
    if !report.read.is_empty() {
        eprintln!("read {}: {}", args.file.display(), report.read_summary());
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    for u in &report.unsupported {
        eprintln!("unsupported: {u}");
    }
    if !report.unsupported.is_empty() && !args.allow_unsupported {
        return Err(Failure::Invalid(format!(
            "{}: not imported: {} element(s) above have no Tollgate equivalent (--allow-unsupported writes the rest)",
            args.file.display(),
            report.unsupported.len()
        )));
    }
    let yaml = imported.to_yaml();
    match &args.output {
        Some(out) => std::fs::write(out, &yaml)
            .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", out.display())))?,
        None => print!("{yaml}"),
    }
    eprintln!(
        "imported {}: {}{}",
        args.file.display(),
        report.summary(),
        if report.unsupported.is_empty() {
            String::new()
        } else {
            format!("; {} element(s) not imported", report.unsupported.len())
        }
    );
    Ok(())
}

fn read(file: &Path) -> Result<String, Failure> {
    let meta = std::fs::metadata(file)
        .map_err(|e| Failure::Invalid(format!("cannot read {}: {e}", file.display())))?;
    if meta.len() > MAX_INPUT {
        return Err(Failure::Invalid(format!(
            "{}: {} bytes is over the {MAX_INPUT}-byte limit",
            file.display(),
            meta.len()
        )));
    }
    std::fs::read_to_string(file)
        .map_err(|e| Failure::Invalid(format!("cannot read {}: {e}", file.display())))
}
