//! The catalog's template icons, built into the binary and served by `api::icons`.

/// The icons under `crates/server/icons/`, by file name.
const ICONS: &[(&str, &str)] = &[
    ("chromium.svg", include_str!("../icons/chromium.svg")),
    ("firefox.svg", include_str!("../icons/firefox.svg")),
    ("desktop.svg", include_str!("../icons/desktop.svg")),
    ("vscode.svg", include_str!("../icons/vscode.svg")),
];

/// Where `api::icons` serves the icon of that file name, as a template's `icon`.
pub fn icon_url(file: &str) -> String {
    format!("/api/v1/icons/{file}")
}

/// The SVG of that file name, if it is one of the icons.
pub fn svg(file: &str) -> Option<&'static str> {
    ICONS.iter().find(|(name, _)| *name == file).map(|(_, svg)| *svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icon_is_an_svg_that_runs_and_loads_nothing() {
        for (name, svg) in ICONS {
            assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}");
            for banned in ["<script", "href", "<foreignObject", "<image", "url(http"] {
                assert!(!svg.contains(banned), "{name} contains {banned}");
            }
            let handlers = svg.split_whitespace().filter(|word| word.starts_with("on") && word.contains('='));
            assert_eq!(handlers.count(), 0, "{name} has an event handler");
        }
    }
}
