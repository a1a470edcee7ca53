//! `tollgate lint SPEC [--ruleset FILE] [--format text|json|sarif]`: the governance rules
//! over an OpenAPI document, or over a Tollgate configuration (organisation rules, and the
//! OpenAPI rules on each version's `spec`). Exit code 2 when a finding is at `error`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tollgate_lint::report::{self, Counts, Entry};
use tollgate_lint::{Finding, Format, Ruleset};
use tollgate_model::SourceMap;

use crate::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per finding: FILE:LINE:COLUMN SEVERITY RULE MESSAGE (PLACE).
    Text,
    /// `{ findings: [...], summary: {...} }`.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

#[derive(clap::Args)]
pub struct LintArgs {
    /// An OpenAPI document (2.0, 3.0 or 3.1; YAML or JSON) or a Tollgate configuration.
    pub spec: PathBuf,
    /// A ruleset file: severities, rules turned off, changed or added, over the built-in
    /// rules (and the configuration's `governance.rules`).
    #[arg(long, env = "TOLLGATE_RULESET")]
    pub ruleset: Option<PathBuf>,
    /// How findings are written to standard output.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

/// Largest file read.
const MAX_FILE: u64 = 32 << 20;

fn read(path: &Path) -> Result<String, Failure> {
    let fail = |e: String| Failure::Invalid(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_FILE {
        return Err(fail(format!("file is larger than {} MiB", MAX_FILE >> 20)));
    }
    std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))
}

fn ruleset_errors(file: &str, errors: &[tollgate_lint::RulesetError]) -> Failure {
    let mut lines: Vec<String> = errors.iter().map(|e| format!("{file}: {e}")).collect();
    lines.push(format!(
        "{file}: the ruleset cannot be used; nothing linted"
    ));
    Failure::Invalid(lines.join("\n"))
}

/// A version's spec read from its own file (`spec: openapi.yaml`).
struct SpecFile {
    name: String,
    text: String,
}

pub fn run(args: LintArgs) -> Result<(), Failure> {
    let name = args.spec.display().to_string();
    let text = read(&args.spec)?;
    let mut root = tollgate_model::lenient::parse(&text)
        .map_err(|e| Failure::Invalid(format!("{name}: not YAML or JSON: {e}")))?;
    let format = Format::detect(&root).ok_or_else(|| {
        Failure::Invalid(format!(
            "{name}: neither an OpenAPI document (`openapi: 3.0.x`, `openapi: 3.1.x`, `swagger: \"2.0\"`) nor a Tollgate configuration (`format_version`)"
        ))
    })?;
    let map = SourceMap::build(&text);

    let mut ruleset = Ruleset::builtin();
    let mut spec_files = HashMap::new();
    if format == Format::Tollgate {
        let (doc, _) = tollgate_model::parse_document(&text).map_err(|e| {
            let mut lines: Vec<String> = e.errors().iter().map(|l| l.render(&name)).collect();
            lines.push(format!(
                "{name}: the configuration cannot be read; nothing linted"
            ));
            Failure::Invalid(lines.join("\n"))
        })?;
        ruleset = tollgate_lint::ruleset_for(&doc.governance).map_err(|errors| {
            let mut lines: Vec<String> = errors
                .iter()
                .map(|e| {
                    let path = tollgate_lint::config::governance_path(e);
                    let (line, col) = map.locate(&path).unwrap_or((1, 1));
                    format!("{name}:{line}:{col}: {path}: {}", e.message)
                })
                .collect();
            lines.push(format!(
                "{name}: the governance rules cannot be used; nothing linted"
            ));
            Failure::Invalid(lines.join("\n"))
        })?;
        spec_files = inline_specs(&mut root, &args.spec)?;
    }
    if let Some(file) = &args.ruleset {
        let rules = read(file)?;
        ruleset = ruleset
            .extended_by(&rules)
            .map_err(|e| ruleset_errors(&file.display().to_string(), &e))?;
    }

    let findings = if format == Format::Tollgate {
        tollgate_lint::lint_config(&ruleset, &root)
    } else {
        tollgate_lint::lint(&ruleset, &root, format)
    };
    let mut placer = Placer {
        name: &name,
        text: &text,
        map: &map,
        root: &root,
        spec_files: &spec_files,
        spec_maps: HashMap::new(),
    };
    let mut entries: Vec<Entry> = findings.into_iter().map(|f| placer.place(f)).collect();
    report::sort(&mut entries);

    let out = match args.format {
        OutputFormat::Text => report::text(&entries),
        OutputFormat::Json => pretty(&report::json(&entries)),
        OutputFormat::Sarif => pretty(&report::sarif(&ruleset, &entries)),
    };
    print!("{out}");
    let counts = Counts::of(&entries);
    let active = ruleset
        .rules()
        .iter()
        .filter(|r| r.severity != tollgate_lint::Severity::Off && r.applies_to(format))
        .count();
    let summary = format!("{name}: {} ({active} rules)", counts.summary());
    if counts.errors > 0 {
        return Err(Failure::Invalid(summary));
    }
    eprintln!("{summary}");
    Ok(())
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// `spec: path/to/openapi.yaml` is read relative to the configuration (as `validate` and
/// `apply` do); findings in it point into that file. Text with a line break is the
/// document itself.
fn inline_specs(
    root: &mut Value,
    file: &Path,
) -> Result<HashMap<(usize, usize), SpecFile>, Failure> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut files = HashMap::new();
    let Some(apis) = root.get_mut("apis").and_then(Value::as_array_mut) else {
        return Ok(files);
    };
    for (i, api) in apis.iter_mut().enumerate() {
        let Some(versions) = api.get_mut("versions").and_then(Value::as_array_mut) else {
            continue;
        };
        for (j, v) in versions.iter_mut().enumerate() {
            let Some(Value::String(spec)) = v.get_mut("spec") else {
                continue;
            };
            if spec.contains('\n') {
                continue;
            }
            let path = base.join(&*spec);
            let text = read(&path).map_err(|e| match e {
                Failure::Invalid(m) => Failure::Invalid(format!(
                    "{}: apis[{i}].versions[{j}].spec: cannot read the OpenAPI document: {m}",
                    file.display()
                )),
                other => other,
            })?;
            *spec = text.clone();
            files.insert(
                (i, j),
                SpecFile {
                    name: path.display().to_string(),
                    text,
                },
            );
        }
    }
    Ok(files)
}

/// Turns findings into file, line and column.
struct Placer<'a> {
    name: &'a str,
    text: &'a str,
    map: &'a SourceMap,
    root: &'a Value,
    spec_files: &'a HashMap<(usize, usize), SpecFile>,
    /// Per version (API index, version index): its spec's source map.
    spec_maps: HashMap<(usize, usize), SpecMap>,
}

/// A version's spec, indexed: its source map, and the line and column offsets of its text
/// in the file the findings are reported in (`None`: not mappable line for line).
struct SpecMap {
    map: SourceMap,
    offset: Option<(usize, usize)>,
}

impl Placer<'_> {
    fn place(&mut self, finding: Finding) -> Entry {
        let (file, pos) = match &finding.spec {
            None => (self.name.to_string(), locate(self.map, &finding.location)),
            Some(of) => {
                let key = version_index(&of.at);
                let spec_key = format!("{}.spec", of.at.dotted());
                let text = self.text;
                let map = self.map;
                let root = self.root;
                let own_file = self.spec_files.get(&key);
                let spec = self.spec_maps.entry(key).or_insert_with(|| {
                    let spec_text = own_file.map(|f| f.text.as_str()).unwrap_or_else(|| {
                        root.pointer(&format!("/apis/{}/versions/{}/spec", key.0, key.1))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    });
                    let offset = match own_file {
                        Some(_) => Some((0, 0)),
                        None => map
                            .locate(&spec_key)
                            .and_then(|(line, _)| report::embedded_offset(text, line, spec_text)),
                    };
                    SpecMap {
                        map: SourceMap::build(spec_text),
                        offset,
                    }
                });
                let inside = locate(&spec.map, &finding.location);
                match (own_file, spec.offset, inside) {
                    (Some(f), _, pos) => (f.name.clone(), pos),
                    (None, Some((dl, dc)), Some((l, c))) => {
                        (self.name.to_string(), Some((l + dl, c + dc)))
                    }
                    // Not a literal block: the `spec` key stands for the whole document.
                    (None, ..) => (self.name.to_string(), map.locate(&spec_key)),
                }
            }
        };
        Entry {
            file,
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            finding,
        }
    }
}

/// Line and column of a place in a document; the document itself starts at 1:1.
fn locate(map: &SourceMap, at: &tollgate_lint::Location) -> Option<(usize, usize)> {
    if at.0.is_empty() {
        Some((1, 1))
    } else {
        map.locate(&at.dotted())
    }
}

/// (API index, version index) of `apis[i].versions[j]`.
fn version_index(at: &tollgate_lint::Location) -> (usize, usize) {
    use tollgate_lint::path::Seg;
    match at.0.as_slice() {
        [_, Seg::Index(i), _, Seg::Index(j)] => (*i, *j),
        _ => (0, 0),
    }
}
