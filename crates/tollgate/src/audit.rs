//! `tollgate audit verify` and `tollgate audit export`: read the audit log straight from
//! the store (no running node needed), so a check does not depend on the node it checks.

use std::path::{Path, PathBuf};

use tollgate_store::Store;

use crate::Failure;

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; exit 2 naming each edited or removed entry.
    Verify(StoreArgs),
    /// Write every entry as JSON lines (for archiving outside the database).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct StoreArgs {
    /// The node's data directory (its SQLite database).
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `postgres://…` for a cluster's database.
    #[arg(long, env = "TOLLGATE_DATABASE")]
    database: Option<String>,
}

pub fn run(args: AuditArgs) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    rt.block_on(async {
        match args.command {
            AuditCommand::Verify(store) => verify(&open(&store).await?).await,
            AuditCommand::Export { store, output } => {
                export(&open(&store).await?, output.as_deref()).await
            }
        }
    })
}

/// Opens an existing store; a data directory without a database is an error, not a new
/// empty log that would verify.
async fn open(args: &StoreArgs) -> Result<Store, Failure> {
    let url = match &args.database {
        Some(url) => url.clone(),
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./tollgate-data"));
            let db = dir.join("tollgate.db");
            if !db.is_file() {
                return Err(Failure::Invalid(format!(
                    "no Tollgate database at {} (give --data-dir or --database)",
                    db.display()
                )));
            }
            format!("sqlite:{}", db.display())
        }
    };
    Store::connect(&url)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot open the store: {e}")))
}

async fn verify(store: &Store) -> Result<(), Failure> {
    let check = store
        .verify_audit()
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if check.is_intact() {
        println!("audit log intact: {} entries", check.entries);
        return Ok(());
    }
    for problem in &check.problems {
        eprintln!("{problem}");
    }
    Err(Failure::Invalid(format!(
        "audit log NOT intact: {} problem(s) in {} entries",
        check.problems.len(),
        check.entries
    )))
}

async fn export(store: &Store, output: Option<&Path>) -> Result<(), Failure> {
    let out = store
        .audit_jsonl(0)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    match output {
        Some(path) => std::fs::write(path, out)
            .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display()))),
        None => {
            print!("{out}");
            Ok(())
        }
    }
}
