//! Reading class links and image URLs out of HTML.
use scraper::{ElementRef, Html};
use url::Url;

use crate::error::Result;
use crate::profile::{ClassLinks, Images, NameFrom, Rewrite, selector};

/// A class page found on the start page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPage {
    /// The class name (trimmed, inner whitespace collapsed).
    pub name: String,
    /// The page's absolute URL.
    pub url: Url,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Resolve a link against the page it is on (relative, root-relative and
/// protocol-relative `//host/x` links all work).
pub fn resolve(base: &Url, link: &str) -> Option<Url> {
    let link = link.trim();
    if link.is_empty()
        || link.starts_with('#')
        || link.starts_with("javascript:")
        || link.starts_with("data:")
    {
        return None;
    }
    base.join(link).ok()
}

/// The class pages linked from a start page, in page order, first link
/// per class name kept.
pub fn class_pages(html: &str, base: &Url, rule: &ClassLinks) -> Result<Vec<ClassPage>> {
    let sel = selector(&rule.selector)?;
    let doc = Html::parse_document(html);
    let mut out: Vec<ClassPage> = Vec::new();
    for a in doc.select(&sel) {
        let Some(url) = a.value().attr(&rule.attr).and_then(|h| resolve(base, h)) else { continue };
        let name = match &rule.name {
            NameFrom::Text => collapse(&a.text().collect::<String>()),
            NameFrom::Attr(attr) => collapse(a.value().attr(attr).unwrap_or_default()),
        };
        if name.is_empty() || out.iter().any(|c| c.name == name) {
            continue;
        }
        out.push(ClassPage { name, url });
    }
    Ok(out)
}

/// Apply the rewrites to a raw image reference.
pub fn rewrite(raw: &str, base: &Url, rules: &[Rewrite]) -> String {
    let mut s = raw.trim().to_string();
    for r in rules {
        match r {
            Rewrite::QueryParam { name } => {
                if let Some(u) = resolve(base, &s)
                    && let Some((_, v)) = u.query_pairs().find(|(k, _)| k == name)
                {
                    s = v.into_owned();
                }
            }
            Rewrite::StripPrefix { prefix } => {
                while !prefix.is_empty() && s.starts_with(prefix.as_str()) {
                    s = s[prefix.len()..].to_string();
                }
            }
            Rewrite::RemoveSuffix { suffix } => {
                // Only in the last path segment, just before its extension.
                let (path, query) = match s.find(['?', '#']) {
                    Some(i) => (s[..i].to_string(), s[i..].to_string()),
                    None => (s.clone(), String::new()),
                };
                let seg_start = path.rfind('/').map_or(0, |i| i + 1);
                let (stem_end, ext) = match path[seg_start..].rfind('.') {
                    Some(i) => (seg_start + i, &path[seg_start + i..]),
                    None => (path.len(), ""),
                };
                if path[..stem_end].ends_with(suffix.as_str()) && stem_end - suffix.len() > seg_start {
                    s = format!("{}{ext}{query}", &path[..stem_end - suffix.len()]);
                }
            }
            Rewrite::Replace { from, to } => {
                if !from.is_empty() {
                    s = s.replace(from.as_str(), to);
                }
            }
        }
    }
    s
}

/// The image URLs on a class page, rewritten and resolved, in page order,
/// without repeats.
pub fn image_urls(html: &str, base: &Url, rule: &Images) -> Result<Vec<Url>> {
    let sel = selector(&rule.selector)?;
    let doc = Html::parse_document(html);
    let mut out: Vec<Url> = Vec::new();
    for img in doc.select(&sel) {
        let Some(raw) = attr_of(&img, &rule.attr, &rule.fallback_attrs) else { continue };
        let Some(url) = resolve(base, &rewrite(raw, base, &rule.rewrites)) else { continue };
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

fn attr_of<'a>(el: &ElementRef<'a>, attr: &str, fallbacks: &[String]) -> Option<&'a str> {
    std::iter::once(attr)
        .chain(fallbacks.iter().map(String::as_str))
        .find_map(|a| el.value().attr(a).filter(|v| !v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SiteProfile;

    #[test]
    fn minerals_net_shaped_pages() {
        let p = SiteProfile::minerals_net();
        let base = Url::parse("https://www.minerals.net/GemStoneMain.aspx").unwrap();
        let list = r#"<html><body><a href="/other.aspx">Not a gem</a>
            <table id="ctl00_ContentPlaceHolder1_DataList1"><tr>
            <td><a href="gemstone/ruby_gemstone.aspx"> Ruby </a></td>
            <td><a href="gemstone/garnet.aspx">Garnet
               Red</a></td><td><a href="gemstone/ruby2.aspx">Ruby</a></td></tr></table></body></html>"#;
        let classes = class_pages(list, &base, &p.classes).unwrap();
        assert_eq!(classes.len(), 2);
        assert_eq!(classes[0].name, "Ruby");
        assert_eq!(classes[0].url.as_str(), "https://www.minerals.net/gemstone/ruby_gemstone.aspx");
        assert_eq!(classes[1].name, "Garnet Red");
        let page = Url::parse("https://www.minerals.net/gemstone/ruby_gemstone.aspx").unwrap();
        let html = r#"<table id="ctl00_ContentPlaceHolder1_DataList1"><tr>
            <td><img src="../GemStoneImages/ruby-burma-t.jpg"></td><td><img src="//cdn.minerals.net/x/ruby-2-t.JPG"></td>
            <td><img src="../GemStoneImages/ruby-burma-t.jpg"></td></tr></table><img src="/logo.png">"#;
        let urls = image_urls(html, &page, &p.images).unwrap();
        let urls: Vec<&str> = urls.iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            [
                "https://www.minerals.net/GemStoneImages/ruby-burma.jpg",
                "https://cdn.minerals.net/x/ruby-2.JPG"
            ]
        );
    }

    #[test]
    fn rewrites() {
        let base = Url::parse("https://a.example/dir/page.html").unwrap();
        let q = [Rewrite::QueryParam { name: "image".into() }, Rewrite::RemoveSuffix { suffix: "-t".into() }];
        assert_eq!(
            rewrite("thumbnail.aspx?image=GemStoneImages/x-t.jpg&size=120", &base, &q),
            "GemStoneImages/x.jpg"
        );
        let s = [Rewrite::RemoveSuffix { suffix: "-t".into() }];
        assert_eq!(rewrite("a-t/b.jpg?v=1", &base, &s), "a-t/b.jpg?v=1");
        assert_eq!(rewrite("a/-t.jpg", &base, &s), "a/-t.jpg");
        assert_eq!(rewrite("a/b-t.png?v=-t", &base, &s), "a/b.png?v=-t");
        assert_eq!(rewrite("../../x.jpg", &base, &[Rewrite::StripPrefix { prefix: "../".into() }]), "x.jpg");
        assert_eq!(resolve(&base, "//cdn.example/y.jpg").unwrap().as_str(), "https://cdn.example/y.jpg");
        assert!(resolve(&base, "javascript:void(0)").is_none());
    }

    #[test]
    fn bad_selector_is_named() {
        let e = selector("table[").unwrap_err().to_string();
        assert!(e.contains("table["), "{e}");
    }
}
