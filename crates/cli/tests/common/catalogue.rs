//! The metrics catalogue (`docs/metrics.md`) against what `/metrics` really exports.

use std::collections::{BTreeMap, BTreeSet};

/// A metric family: its type and the names of its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

/// The families of a Prometheus text exposition: types from `# TYPE`, labels from the samples
/// (a histogram's `le` is the format's, not the metric's).
pub fn exported(exposition: &str) -> BTreeMap<String, Family> {
    let mut families = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration.split_once(' ').expect("`# TYPE name kind`");
            families.insert(name.to_owned(), Family { kind: kind.to_owned(), labels: BTreeSet::new() });
        }
    }
    for line in exposition.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let series = line.rsplit_once(' ').expect("`series value`").0;
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| families.get(*base).is_some_and(|f: &Family| f.kind == "histogram"))
            .unwrap_or(name);
        let family = families.get_mut(family).unwrap_or_else(|| panic!("{name} has no # TYPE line"));
        for pair in labels.trim_end_matches('}').split(',').filter(|pair| !pair.is_empty()) {
            let label = pair.split_once('=').expect("`label=\"value\"`").0;
            if label != "le" {
                family.labels.insert(label.to_owned());
            }
        }
    }
    families
}

/// One row of the catalogue.
#[derive(Debug)]
pub struct Entry {
    pub family: Family,
    /// `always`, or the setting under which the metric appears (`TLS`).
    pub exported: String,
}

/// The catalogue's table rows: `| \`name\` | type | \`label\`, ... | exported | meaning |`.
pub fn catalogue(markdown: &str) -> BTreeMap<String, Entry> {
    let cell = |text: &str| text.trim().trim_matches('`').to_owned();
    markdown
        .lines()
        .filter(|line| line.starts_with("| `streamspace_"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let labels = cells[2].split(',').map(cell).filter(|label| !label.is_empty()).collect();
            let entry = Entry { family: Family { kind: cell(cells[1]), labels }, exported: cell(cells[3]) };
            (cell(cells[0]), entry)
        })
        .collect()
}

/// Every way `exposition` and the catalogue disagree, one line each.
pub fn disagreements(exposition: &str, markdown: &str) -> Vec<String> {
    let (exported, catalogue) = (exported(exposition), catalogue(markdown));
    let mut found = Vec::new();
    for (name, family) in &exported {
        match catalogue.get(name) {
            None => {
                found.push(format!("{name} ({} {:?}) is exported but not in the catalogue", family.kind, family.labels))
            }
            Some(entry) if entry.family != *family => {
                found.push(format!("{name} is exported as {family:?}, catalogued as {:?}", entry.family))
            }
            Some(_) => {}
        }
    }
    for (name, entry) in &catalogue {
        if entry.exported == "always" && !exported.contains_key(name) {
            found.push(format!("{name} is catalogued as always exported but is not"));
        }
    }
    found
}

pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");

/// Fails the test with every disagreement between the binary's `/metrics` and `docs/metrics.md`.
pub fn assert_catalogued(exposition: &str) {
    let markdown = std::fs::read_to_string(PATH).expect("docs/metrics.md");
    let found = disagreements(exposition, &markdown);
    assert!(found.is_empty(), "docs/metrics.md and /metrics disagree:\n{}", found.join("\n"));
}
