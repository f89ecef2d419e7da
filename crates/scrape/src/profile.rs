//! Site profiles: where the class pages are, where the images are, how to
//! turn a thumbnail URL into the photograph's URL.
use std::path::Path;

use serde::{Deserialize, Serialize};
use url::Url;

use scraper::Selector;

use crate::error::{Error, IoContext, Result};

/// How a site's pages are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Plain HTTP: the HTML as the server sends it.
    #[default]
    Static,
    /// A real browser through WebDriver: the HTML after JavaScript ran.
    WebDriver,
}

/// Where a class's name comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameFrom {
    /// The link's text, trimmed (and inner whitespace collapsed).
    #[default]
    Text,
    /// An attribute of the link (e.g. `title`).
    Attr(String),
}

/// How to find the class pages on the start page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLinks {
    /// CSS selector of the links (`<a>` elements).
    pub selector: String,
    /// Attribute holding the page URL.
    #[serde(default = "href")]
    pub attr: String,
    /// Where the class name comes from.
    #[serde(default)]
    pub name: NameFrom,
}

fn href() -> String {
    "href".into()
}

fn src() -> String {
    "src".into()
}

/// A rewrite applied to every image URL before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Rewrite {
    /// Use the value of a query parameter as the URL (thumbnail scripts
    /// like `thumbnail.aspx?image=photos/x-t.jpg&size=120`).
    QueryParam {
        /// The parameter.
        name: String,
    },
    /// Remove a leading string (such as `../`), repeatedly.
    StripPrefix {
        /// The prefix.
        prefix: String,
    },
    /// Remove a suffix just before the file extension (such as the `-t` of
    /// `ruby-t.jpg`).
    RemoveSuffix {
        /// The suffix.
        suffix: String,
    },
    /// Replace every occurrence of a string.
    Replace {
        /// What to replace.
        from: String,
        /// The replacement.
        to: String,
    },
}

/// How to find the images on a class page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    /// CSS selector of the images (`<img>` elements).
    pub selector: String,
    /// Attribute holding the URL.
    #[serde(default = "src")]
    pub attr: String,
    /// Attributes tried when `attr` is missing (lazy loading: `data-src`).
    #[serde(default)]
    pub fallback_attrs: Vec<String>,
    /// Rewrites, in order.
    #[serde(default)]
    pub rewrites: Vec<Rewrite>,
}

/// A site: how to find classes and images, and which hosts may be fetched.
///
/// ```
/// let p = gemstones_scrape::SiteProfile::minerals_net();
/// assert_eq!(p.images.rewrites.len(), 1);
/// let toml = toml::to_string(&p).unwrap();
/// let back: gemstones_scrape::SiteProfile = toml::from_str(&toml).unwrap();
/// assert_eq!(back, p);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProfile {
    /// A short name.
    pub name: String,
    /// The page that lists the classes.
    pub start_url: Url,
    /// Static HTTP or a browser.
    #[serde(default)]
    pub source: SourceKind,
    /// The class links on the start page.
    pub classes: ClassLinks,
    /// The images on a class page.
    pub images: Images,
    /// On browser-rendered pages, wait for this element before reading.
    #[serde(default)]
    pub wait_for: Option<String>,
    /// Hosts pages and images may come from (empty: the start URL's host).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl SiteProfile {
    /// The tutorial's static scraper of minerals.net: the gem list and each
    /// gem's images sit in `table#ctl00_ContentPlaceHolder1_DataList1`;
    /// image sources are relative (`../`) thumbnails whose names carry `-t`
    /// (dropped to get the photograph).
    pub fn minerals_net() -> Self {
        // A constant URL: parsing cannot fail.
        Self::minerals_net_at(Url::parse("https://www.minerals.net/GemStoneMain.aspx").expect("constant URL"))
    }

    /// The minerals.net profile pointed at another start URL (a mirror, or
    /// the loopback demo site).
    pub fn minerals_net_at(start_url: Url) -> Self {
        let table = "table#ctl00_ContentPlaceHolder1_DataList1";
        Self {
            name: "minerals-net".into(),
            start_url,
            source: SourceKind::Static,
            classes: ClassLinks { selector: format!("{table} a"), attr: href(), name: NameFrom::Text },
            images: Images {
                selector: format!("{table} img"),
                attr: src(),
                fallback_attrs: vec![],
                // The tutorial stripped the leading `../` and glued the rest
                // to the site root; resolving the link against its page does
                // that properly.
                rewrites: vec![Rewrite::RemoveSuffix { suffix: "-t".into() }],
            },
            wait_for: None,
            allowed_hosts: vec![],
        }
    }

    /// The tutorial's Selenium scraper of rasavgems.com: categories are the
    /// links of `ul#leftNavigation`; the product list is rendered by
    /// JavaScript into `#Product_List`; images are `div.product-one img`.
    pub fn rasavgems() -> Self {
        // A constant URL: parsing cannot fail.
        Self::rasavgems_at(Url::parse("https://www.rasavgems.com/").expect("constant URL"))
    }

    /// The rasavgems profile pointed at another start URL.
    pub fn rasavgems_at(start_url: Url) -> Self {
        Self {
            name: "rasavgems".into(),
            start_url,
            source: SourceKind::WebDriver,
            classes: ClassLinks {
                selector: "ul#leftNavigation a".into(),
                attr: href(),
                name: NameFrom::Text,
            },
            images: Images {
                selector: "div.product-one img".into(),
                attr: src(),
                fallback_attrs: vec!["data-src".into()],
                rewrites: vec![],
            },
            wait_for: Some("#Product_List".into()),
            allowed_hosts: vec![],
        }
    }

    /// A built-in profile by name (`minerals-net`, `rasavgems`).
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "minerals-net" => Some(Self::minerals_net()),
            "rasavgems" => Some(Self::rasavgems()),
            _ => None,
        }
    }

    /// Read a profile from a TOML or JSON file (by extension).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let bad = |reason: String| Error::Profile { path: path.to_path_buf(), reason };
        let p: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| bad(e.to_string()))?
        };
        p.validate().map_err(|e| bad(e.to_string()))?;
        Ok(p)
    }

    /// Check the selectors parse.
    pub fn validate(&self) -> Result<()> {
        selector(&self.classes.selector)?;
        selector(&self.images.selector)?;
        if let Some(w) = &self.wait_for {
            selector(w)?;
        }
        Ok(())
    }

    /// Whether `url` may be fetched: http(s) on an allowed host.
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = url.host_str() else { return false };
        if self.allowed_hosts.is_empty() {
            self.start_url.host_str() == Some(host)
        } else {
            self.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
        }
    }
}

/// Parse a CSS selector, with a clear error.
pub(crate) fn selector(css: &str) -> Result<Selector> {
    Selector::parse(css).map_err(|e| Error::Selector { selector: css.to_string(), reason: e.to_string() })
}
