//! Reading a configuration file from disk: parse, inline the OpenAPI documents it points
//! to, and validate, with every error as `FILE:LINE:COLUMN: PATH: MESSAGE`.

use std::path::Path;

use tollgate_model::{Document, Located, parse_document, validate};

use crate::Failure;

/// Largest configuration or spec file read.
const MAX_FILE: u64 = 32 << 20;

fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{}: file is larger than {} MiB",
            path.display(),
            MAX_FILE >> 20
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn render(file: &Path, errors: &[Located]) -> String {
    let name = file.display().to_string();
    let mut out: Vec<String> = errors.iter().map(|e| e.render(&name)).collect();
    out.push(format!(
        "{name}: {} problem{} found; nothing applied",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    ));
    out.join("\n")
}

/// Loads a file for `apply` or `serve --config`. Without `stored`, references must
/// resolve inside the file; with it, the file is checked as it will be once merged onto
/// the stored configuration (a non-pruning apply), errors still pointing into the file.
pub fn load(file: &Path, stored: Option<&Document>) -> Result<Document, Failure> {
    let text = read_text(file).map_err(Failure::Invalid)?;
    let (mut doc, map) =
        parse_document(&text).map_err(|e| Failure::Invalid(render(file, e.errors())))?;
    let mut errors = inline_specs(&mut doc, file);
    let found = match stored {
        None => validate(&doc),
        Some(stored) => validate(&doc.merged_over(stored)),
    };
    errors.extend(found);
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(Failure::Invalid(render(file, &map.locate_all(errors))))
    }
}

/// `spec: path/to/openapi.yaml` is read relative to the configuration file; text with a
/// line break is already the document.
fn inline_specs(doc: &mut Document, file: &Path) -> Vec<tollgate_model::FieldError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    for (i, api) in doc.apis.iter_mut().enumerate() {
        for (j, version) in api.versions.iter_mut().enumerate() {
            let Some(spec) = &version.spec else { continue };
            if spec.contains('\n') {
                continue;
            }
            match read_text(&base.join(spec)) {
                Ok(text) => version.spec = Some(text),
                Err(message) => errors.push(tollgate_model::FieldError {
                    path: format!("apis[{i}].versions[{j}].spec"),
                    message: format!("cannot read the OpenAPI document: {message}"),
                }),
            }
        }
    }
    errors
}

pub fn validate_command(file: &Path) -> Result<(), Failure> {
    let doc = load(file, None)?;
    let versions: usize = doc.apis.iter().map(|a| a.versions.len()).sum();
    let routes: usize = doc
        .apis
        .iter()
        .flat_map(|a| &a.versions)
        .map(|v| v.routes.len())
        .sum();
    println!(
        "{}: valid ({} upstreams, {} APIs, {versions} versions, {routes} routes, {} global policies)",
        file.display(),
        doc.upstreams.len(),
        doc.apis.len(),
        doc.policies.len()
    );
    Ok(())
}
